"""Every relative link in README.md and docs/*.md points at a file that exists.

Markdown links and images (``[x](path)``, ``![x](path)``) and HTML ``<img src=...>`` are checked;
http(s) and mailto links are not. For ``path#anchor`` the file must exist and, when it is a
Markdown file, the anchor must be the slug of one of its headings, as GitHub makes them. Links
inside code (fenced or indented blocks, inline code spans) are not links and are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) or ![alt](target), target up to the first space or ")"; an optional "title".
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_IMG = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
EXTERNAL = ("http://", "https://", "mailto:")


def prose_lines(text: str, strip_code_spans: bool = True) -> list[tuple[int, str]]:
    """(line number, line) of the text outside code blocks (inline code spans removed unless
    ``strip_code_spans`` is False)."""
    out: list[tuple[int, str]] = []
    in_fence = False
    in_indented = False
    previous_blank = True
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            previous_blank = False
            continue
        if in_fence:
            continue
        blank = not line.strip()
        # An indented code block starts after a blank line and runs while lines stay indented.
        if line.startswith(("    ", "\t")) and (previous_blank or in_indented):
            in_indented = True
        elif not blank:
            in_indented = False
        if not in_indented:
            out.append((number, INLINE_CODE.sub("", line) if strip_code_spans else line))
        previous_blank = blank
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), strip_code_spans=False):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image in a Markdown file."""
    text = path.read_text(encoding="utf-8")
    found = []
    for number, line in prose_lines(text):
        found += [(number, m.group(1)) for m in MD_LINK.finditer(line)]
        found += [(number, m.group(1)) for m in HTML_IMG.finditer(line)]
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """A message for every relative link of ``path`` (named relative to ``root``) that does not
    resolve."""
    problems = []
    for number, target in links(path):
        if target.lower().startswith(EXTERNAL):
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(root)}:{number}: {target}"
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{where}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    return problems


def test_pages_exist():
    assert (ROOT / "docs" / "index.md").exists()
    assert len(PAGES) > 2


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    problems = broken_links(page)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_checker_catches_broken_links(tmp_path: Path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading, with `code`!\n\n## Twice\n\n## Twice\n")
    (tmp_path / "fig.png").write_bytes(b"")
    page.write_text(
        "# Page\n\n"
        "[ok](there.md) [ok](there.md#a-heading-with-code) [ok](there.md#twice-1) ![ok](fig.png)\n"
        "[ok](#page) [web](https://example.org/x) <img src=\"fig.png\">\n"
        "[bad](missing.md) ![bad](missing.png) [bad](there.md#nope) <img src=\"gone.png\">\n"
        "`[code](not-a-link.md)`\n\n```\n[code](not-a-link.md)\n```\n\n    [code](not-a-link.md)\n"
    )
    problems = broken_links(page, root=tmp_path)
    targets = sorted(p.split(": ")[1] for p in problems)
    assert targets == ["gone.png", "missing.md", "missing.png", "there.md#nope"], problems
