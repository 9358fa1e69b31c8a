"""Check the built book the way a reader's browser shows it.

Usage::

    python tests/check_html.py _build/html

It reads every page of the book (``<html>/book/*.html``; the redirect
``index.html``, the search and index pages are skipped) and reports, per page:

- **errors**: cell outputs that are errors or tracebacks (myst-nb's
  ``output error`` / ``output traceback`` classes) and docutils error boxes
  (``system-message``);
- **figures**: every ``<img>`` whose file is missing; and, for a page that
  has cell outputs (an executed build), a chapter with no figure at all;
- **math**: raw ``$$`` or ``$\\`` left in the text (math that was not parsed),
  and math on a page without the MathJax script;
- **internal references**: the document the project's conventions forbid
  citing ("SPEC"), "seed document(s)" and issue numbers, anywhere in the page;
- **solutions**: exercise solutions shown in the page. A solution is a cell
  tagged ``hide-*`` or ``*solution*``, a code cell that opens with a
  ``# Solution`` / ``# Exercise N`` comment, a paragraph that opens with
  "Solution", or a paragraph (not a list item) that opens with "Exercise N"
  in a section titled "Exercises" or "Solutions" (where the statements are a
  list). Each must sit inside a collapsed element: a ``<details>`` that is not
  ``open``, or a ``toggle`` / ``dropdown`` element of sphinx-togglebutton or
  sphinx-design;
- **links**: every relative ``href`` and its ``#anchor`` resolves to a file
  and an id of the build.

Exit status 0 when every page passes, 1 otherwise (each problem is printed as
``page: kind: detail``), 2 on bad usage. ``tests/test_check_html.py`` runs it
on ``_build/html`` when a built book exists, and tests the checks themselves.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup, Tag

SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
# Text that must not reach a reader: the internal reference document, the
# documents the project was seeded from, and tracker issue numbers.
FORBIDDEN = [
    ("SPEC", re.compile(r"\bSPEC\b")),
    ("seed document", re.compile(r"\bseed\s+documents?\b", re.IGNORECASE)),
    ("issue number", re.compile(r"\bissues?\s+#?\d+\b", re.IGNORECASE)),
]
RAW_MATH = re.compile(r"\$\$|\$\\[A-Za-z]")
CODE_SOLUTION = re.compile(r"^\s*#\s*(solution|exercise\s+\d+)\b", re.IGNORECASE)
TEXT_SOLUTION = re.compile(r"^\s*(solutions?\b|answer\s+\d+)", re.IGNORECASE)
TEXT_EXERCISE = re.compile(r"^\s*exercise\s+\d+", re.IGNORECASE)
EXERCISE_SECTION = re.compile(r"^\s*(exercises?|solutions?)\b", re.IGNORECASE)
COLLAPSING_CLASSES = {"toggle", "toggle-hidden", "dropdown", "sd-dropdown"}
NON_TEXT = ("script", "style")


@dataclass(frozen=True)
class Problem:
    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


def _classes(el: Tag) -> list[str]:
    return list(el.get("class") or [])


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _collapsed(el: Tag) -> bool:
    """Whether ``el`` sits inside an element a reader must open to see it."""
    for parent in [el, *el.parents]:
        if not isinstance(parent, Tag):
            continue
        if parent.name == "details" and not parent.has_attr("open"):
            return True
        if COLLAPSING_CLASSES.intersection(_classes(parent)):
            return True
    return False


def _visible_text(soup: BeautifulSoup) -> str:
    body = soup.body or soup
    parts = []
    for s in body.find_all(string=True):
        if s.parent is not None and s.parent.name in NON_TEXT:
            continue
        parts.append(str(s))
    return " ".join(parts)


def _prose_strings(soup: BeautifulSoup) -> list[str]:
    """Text nodes outside code, preformatted blocks, scripts and rendered math.

    Destructive: removes those elements from ``soup``.
    """
    body = soup.body or soup
    for el in body.find_all(["pre", "code", "script", "style", "textarea"]):
        el.decompose()
    for el in body.select(".math, .highlight"):
        el.decompose()
    return [str(s) for s in body.find_all(string=True)]


@lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset[str]:
    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    return frozenset(el["id"] for el in soup.find_all(id=True)) | frozenset(
        el["name"] for el in soup.find_all("a", attrs={"name": True})
    )


def _solution_elements(soup: BeautifulSoup) -> list[tuple[Tag, str]]:
    found: list[tuple[Tag, str]] = []
    seen: set[int] = set()

    def add(el: Tag, why: str) -> None:
        if id(el) not in seen:
            seen.add(id(el))
            found.append((el, why))

    for cell in soup.select("div.cell"):
        tags = [c[len("tag_"):] for c in _classes(cell) if c.startswith("tag_")]
        hidden_tags = [t for t in tags if t.startswith("hide") or "solution" in t]
        if hidden_tags:
            # What the tags promise to hide: hide-input the input, hide-output the outputs, the others both
            # (a hide-input cell shows its output on purpose, e.g. the sizes a chapter runs at).
            if all(t == "hide-input" for t in hidden_tags):
                selector = ".cell_input"
            elif all(t == "hide-output" for t in hidden_tags):
                selector = ".cell_output"
            else:
                selector = ".cell_input, .cell_output"
            parts = cell.select(selector) or ([cell] if selector != ".cell_output" else [])
            for part in parts:
                add(part, f"cell tagged {', '.join(hidden_tags)} ({'input' if 'cell_input' in _classes(part) else 'output'})")
            continue
        code = cell.select_one(".cell_input pre")
        if code is not None:
            first = code.get_text().lstrip().splitlines()[:1]
            if first and CODE_SOLUTION.match(first[0]):
                add(cell, f"code cell '{_short(first[0])}'")
    for p in soup.select("article p, main p, div.body p"):
        text = p.get_text(" ", strip=True)
        if TEXT_SOLUTION.match(text):
            add(p, f"paragraph '{_short(text)}'")
            continue
        if TEXT_EXERCISE.match(text) and p.find_parent("li") is None:
            section = p.find_parent("section")
            heading = section.find(re.compile(r"^h[1-6]$")) if section is not None else None
            if heading is not None and EXERCISE_SECTION.match(heading.get_text(" ", strip=True)):
                add(p, f"paragraph '{_short(text)}' in section '{_short(heading.get_text(' ', strip=True), 30)}'")
    return found


def check_page(path: Path, root: Path) -> list[Problem]:
    """All problems of one page of the built book at ``root``."""
    name = path.relative_to(root).as_posix()
    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    problems: list[Problem] = []

    def report(kind: str, detail: str) -> None:
        problems.append(Problem(name, kind, detail))

    # Errors in cell outputs, and docutils error boxes.
    for el in soup.select("div.output, div.cell_output > div"):
        cls = set(_classes(el))
        if cls & {"error", "traceback"}:
            report("error output", _short(el.get_text(" ", strip=True)))
    for el in soup.select(".system-message, .problematic"):
        report("error output", "docutils: " + _short(el.get_text(" ", strip=True)))

    # Figures.
    images = soup.find_all("img")
    for img in images:
        src = img.get("src", "")
        parts = urlsplit(src)
        if not src or parts.scheme in ("data", "http", "https") or src.startswith("//"):
            continue
        target = (path.parent / unquote(parts.path)).resolve()
        if not target.is_file():
            report("missing image", src)
    has_outputs = soup.select_one("div.cell_output") is not None
    chapter = re.match(r"\d\d_", path.name) is not None
    if chapter and has_outputs and not [i for i in images if "logo" not in " ".join(_classes(i))]:
        report("no figure", "the chapter has cell outputs but no image")

    # Internal references.
    text = _visible_text(soup)
    for label, pattern in FORBIDDEN:
        hits = pattern.findall(text)
        if hits:
            m = pattern.search(text)
            context = text[max(0, m.start() - 40) : m.end() + 40]
            report("forbidden text", f"{label!r} x{len(hits)}, e.g. '{_short(context)}'")

    # Solutions.
    for el, why in _solution_elements(soup):
        if not _collapsed(el):
            report("visible solution", why)

    # Internal links.
    for a in soup.find_all("a", href=True):
        href = a["href"]
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//"):
            continue
        if parts.path:
            target = (path.parent / unquote(parts.path)).resolve()
        else:
            target = path.resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            report("broken link", href)
            continue
        frag = unquote(parts.fragment)
        if frag and target.suffix == ".html" and frag not in _ids(target):
            report("broken anchor", href)

    # Math (last: reading the prose strips code, scripts and math from soup).
    has_math = soup.select_one(".math") is not None
    has_mathjax = any("mathjax" in (s.get("src") or "").lower() for s in soup.find_all("script"))
    if has_math and not has_mathjax:
        report("no MathJax", "the page has math but no MathJax script")
    for text in _prose_strings(soup):
        m = RAW_MATH.search(text)
        if m:
            start = max(0, m.start() - 30)
            report("raw math", _short(text[start : m.end() + 40]))
    return problems


def book_pages(root: Path) -> list[Path]:
    """The pages to check: every HTML page of the book's chapters and appendices."""
    pages = sorted((root / "book").glob("*.html")) if (root / "book").is_dir() else []
    pages += [p for p in sorted(root.glob("*.html")) if p.name not in SKIP_PAGES and not _is_redirect(p)]
    return pages


def _is_redirect(path: Path) -> bool:
    head = path.read_text(encoding="utf-8", errors="replace")[:2000].lower()
    return 'http-equiv="refresh"' in head


def check_book(root: Path) -> list[Problem]:
    """All problems of the built book at ``root`` (the folder holding ``index.html``)."""
    root = Path(root)
    pages = book_pages(root)
    if not pages:
        raise FileNotFoundError(f"no pages under {root} (expected {root}/book/*.html): build the book first")
    problems: list[Problem] = []
    for page in pages:
        problems.extend(check_page(page, root))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the built HTML folder, e.g. _build/html")
    args = parser.parse_args(argv)
    if not args.html.is_dir():
        print(f"check_html: {args.html} is not a folder: build the book first", file=sys.stderr)
        return 2
    try:
        problems = check_book(args.html)
    except FileNotFoundError as exc:
        print(f"check_html: {exc}", file=sys.stderr)
        return 2
    pages = book_pages(args.html)
    for p in problems:
        print(p)
    bad = sorted({p.page for p in problems})
    print(f"check_html: {len(pages)} pages, {len(problems)} problems on {len(bad)} pages")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
