"""mkdocs hook: the site's home page is README.md, with its links made relative to docs/."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    text = README.read_text()
    return text.replace("](docs/", "](").replace("](src/", "](../src/").replace(
        "](CHANGELOG.md)", "](../CHANGELOG.md)"
    ).replace("](LICENSE)", "](../LICENSE)")
