"""The package type-checks: mypy over src/ddpm with the project's settings (``[tool.mypy]`` in
pyproject.toml), as ``make lint`` runs it. The package ships ``py.typed``, so its annotations are
what users' checkers see."""

import subprocess

from conftest import PYTHON, REPO


def test_mypy_finds_no_errors(tmp_path):
    proc = subprocess.run(
        [PYTHON, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout


def test_the_package_ships_its_types():
    assert (REPO / "src" / "ddpm" / "py.typed").is_file()
