"""The README stays short, its links and docs/'s lead somewhere, and its excerpts are live.

Fast and server-free: it reads markdown and source files only. An excerpt is checked line by
line (indentation and ``...`` elisions aside) against the file the text before it names, so
a change to the code that the README quotes fails here until the README follows.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 320

LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SOURCE_PATH = re.compile(r"`([\w/]+\.py)`")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {_slug(heading) for heading in HEADING.findall(text)}


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md is {lines} lines; depth belongs in docs/"


def test_readme_links_to_docs() -> None:
    docs_links = [link for link in _relative_links(README) if link.startswith("docs/")]
    assert docs_links, "the README links its docs/ pages"


@pytest.mark.parametrize("page", _pages(), ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_readme_excerpts_are_live() -> None:
    """Each python excerpt matches, in order, lines of the last source file named before it."""
    text = README.read_text()
    for match in FENCE.finditer(text):
        named = SOURCE_PATH.findall(text[: match.start()])
        assert named, f"name the file before the excerpt:\n{match.group(1)}"
        source = [line.strip() for line in (ROOT / named[-1]).read_text().splitlines()]
        position = 0
        for line in match.group(1).splitlines():
            wanted = line.strip()
            if not wanted or wanted == "...":
                continue
            assert wanted in source[position:], f"{named[-1]} no longer has: {wanted}"
            position = source.index(wanted, position) + 1
