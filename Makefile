# Two commands do everything: `make train` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test test-fast lint docs bench clean

# Re-install when pyproject.toml or constraints.txt is newer than the last install.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]' -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) train.py

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks train.py sample.py evaluate.py
	$(VENV)/bin/ruff format --check src tests benchmarks train.py sample.py evaluate.py
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) outputs multirun
