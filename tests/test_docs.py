"""The docs are kept true: the site builds with warnings as errors, every relative link and
anchor resolves, every file the docs name exists, and every entry point, module and config option
in a command block is one the project has."""

import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from conftest import PYTHON, REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
NAMED_FILE = re.compile(r"`((?:src|conf|benchmarks|tests|docs|results)/[\w./-]+)`")
CONF = REPO / "src" / "ddpm" / "conf"


def _text_outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", _text_outside_code(page.read_text()), flags=re.M)
    return {slugify(h.strip(), "-") for h in headings}


def _blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    proc = subprocess.run(
        [PYTHON, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page):
    bad = []
    for target in LINK.findall(_text_outside_code(page.read_text())):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading #{anchor}")
    assert not bad, f"{page.name}: {bad}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_files_the_docs_name_exist(page):
    missing = [
        name for name in NAMED_FILE.findall(page.read_text())
        if not any(c in name for c in "*<>") and not name.endswith("/")
        and not re.search(r"[A-Z]{3,}", name)  # a placeholder: RUN/..., NAME.yaml
        and not (REPO / name).exists()
    ]  # fmt: skip
    assert not missing, f"{page.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_name_real_entry_points_modules_and_options(page):
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    bad = []
    for block in _blocks(page.read_text()):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line.startswith("python "):
                continue
            words = line.split()
            if re.fullmatch(r"[\w/]+\.py", words[1]) and not (REPO / words[1]).is_file():
                bad.append(f"{words[1]}: no such script")
            if words[1] == "-m" and importlib.util.find_spec(words[2].split()[0]) is None:
                bad.append(f"python -m {words[2]}: no such module")
            if words[1] not in ("train.py", "sample.py", "evaluate.py") and words[1:3] != [
                "-m",
                "ddpm.evaluation.reference",
            ]:
                continue
            for word in words[2:]:
                key, eq, value = word.partition("=")
                if eq and key in groups and re.fullmatch(r"[\w]+(,[\w]+)*", value):
                    for option in value.split(","):
                        if not (CONF / key / f"{option}.yaml").is_file():
                            bad.append(f"{key}={option}: no such option")
    assert not bad, f"{page.name}: {sorted(set(bad))}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_names_the_docs_give_exist(page):
    """Every `ddpm.module.name` in the docs is a module or an attribute of one."""

    def is_module(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a name inside a module, not a submodule
            return False

    missing = []
    names = set(re.findall(r"`(ddpm(?:\.\w+)+)`", page.read_text()))
    for dotted in sorted(n for n in names if not re.search(r"\.[A-Z]{3,}\b", n)):  # .NAME
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            if is_module(".".join(parts[:cut])):
                obj = importlib.import_module(".".join(parts[:cut]))
                try:
                    for name in parts[cut:]:
                        obj = getattr(obj, name)
                except AttributeError:
                    missing.append(dotted)
                break
    assert not missing, f"{page.name}: {missing}"
