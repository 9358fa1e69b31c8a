"""The browser-side checks of the built book (tests/check_html.py).

``test_built_book`` checks ``_build/html`` (or ``$CRYOLEARN_BOOK_HTML``) and is
skipped when no book has been built; ``.ci/run`` also runs the script after
its book build. The other tests check that each check catches what it is
meant to catch, on small hand-written pages.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("bs4")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_html", Path(__file__).with_name("check_html.py"))
check_html = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("check_html", check_html)  # dataclasses look their module up
_spec.loader.exec_module(check_html)

HEAD = '<html><head><script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script></head>'


def _page(tmp_path: Path, body: str, name: str = "01_toy.html", head: str = HEAD) -> Path:
    (tmp_path / "book").mkdir(exist_ok=True)
    page = tmp_path / "book" / name
    page.write_text(f"{head}<body><main><article>{body}</article></main></body></html>", encoding="utf-8")
    return page


def _kinds(tmp_path: Path) -> list[str]:
    return sorted(p.kind for p in check_html.check_book(tmp_path))


def _sources_newer_than(stamp: Path) -> list[Path]:
    sources = [*ROOT.glob("book/*.ipynb"), *ROOT.glob("book/*.md"), *ROOT.glob("book/*.bib"),
               *ROOT.glob("book/_ext/*.py"), *ROOT.glob("cryolearn/**/*.py"), ROOT / "_config.yml", ROOT / "_toc.yml"]
    built = stamp.stat().st_mtime
    return [p for p in sources if p.is_file() and p.stat().st_mtime > built]


def test_built_book():
    html = Path(os.environ.get("CRYOLEARN_BOOK_HTML", ROOT / "_build" / "html"))
    if not (html / "book").is_dir():
        pytest.skip(f"no built book at {html} (build it first: jupyter-book build .)")
    if "CRYOLEARN_BOOK_HTML" not in os.environ:
        stale = _sources_newer_than(html / "book" / "intro.html")
        if stale:
            pytest.skip(f"the book at {html} is older than {stale[0].relative_to(ROOT)}: rebuild it to check it")
    problems = check_html.check_book(html)
    assert not problems, "\n".join(map(str, problems))


def test_clean_page_passes(tmp_path):
    (tmp_path / "book" / "img").mkdir(parents=True)
    (tmp_path / "book" / "img" / "fig.png").write_bytes(b"png")
    _page(tmp_path, '<section id="a"><h2>Exercises</h2><ol><li><p>Exercise 1. Compute it.</p></li></ol>'
          '<div class="cell tag_hide-cell"><details class="hide above-input"><summary>show</summary>'
          '<div class="cell_input"><pre># Solution 1\nx = 1</pre></div></details></div>'
          '<div class="toggle"><p>Solution 2. Because.</p></div>'
          '<p>Costs $5 and <span class="math">\\(x\\)</span>.</p>'
          '<img src="img/fig.png"><a href="#a">here</a><a href="02_other.html#b">there</a>'
          '<a href="https://example.org">out</a></section>')
    _page(tmp_path, '<p id="b">other</p>', name="02_other.html")
    assert _kinds(tmp_path) == []


def test_error_output(tmp_path):
    _page(tmp_path, '<div class="cell"><div class="cell_output"><div class="output traceback">ZeroDivisionError</div></div></div>', name="a.html")
    assert _kinds(tmp_path) == ["error output"]


def test_missing_image_and_broken_links(tmp_path):
    _page(tmp_path, '<img src="gone.png"><a href="nowhere.html">x</a><a href="#nope">y</a>')
    assert _kinds(tmp_path) == ["broken anchor", "broken link", "missing image"]


def test_executed_chapter_without_figure(tmp_path):
    _page(tmp_path, '<div class="cell"><div class="cell_output"><pre>1.0</pre></div></div>')
    assert _kinds(tmp_path) == ["no figure"]


def test_raw_math_and_missing_mathjax(tmp_path):
    _page(tmp_path, "<p>$$ x^2 $$ and $\\beta$</p>", name="a.html")
    _page(tmp_path, '<p><span class="math">\\(x\\)</span></p>', name="b.html", head="<html><head></head>")
    assert _kinds(tmp_path) == ["no MathJax", "raw math"]


def test_forbidden_text(tmp_path):
    _page(tmp_path, "<p>As SPEC section 2 says, see seed document 002 and issue 7.</p><pre># SPEC</pre>")
    assert _kinds(tmp_path) == ["forbidden text"] * 3


def test_visible_solutions(tmp_path):
    _page(tmp_path, '<section><h2>Exercises</h2><ol><li><p>Exercise 1. Do it.</p></li></ol>'
          '<div class="cell tag_hide-cell"><div class="cell_input"><pre>x = 1</pre></div></div>'
          '<div class="cell"><div class="cell_input"><pre># Exercise 2: the answer\nx = 2</pre></div></div>'
          '<p>Solution 3. Because.</p><p>Exercise 4. The answer is 4.</p>'
          '<details open><p>Solution 5. Shown anyway.</p></details></section>')
    assert _kinds(tmp_path) == ["visible solution"] * 5


def test_command_line(tmp_path, capsys):
    assert check_html.main([str(tmp_path / "none")]) == 2
    _page(tmp_path, "<p>fine</p>")
    assert check_html.main([str(tmp_path)]) == 0
    _page(tmp_path, "<p>SPEC</p>", name="02_x.html")
    assert check_html.main([str(tmp_path)]) == 1
    assert "02_x.html: forbidden text" in capsys.readouterr().out


def test_hide_input_cells_show_their_output_on_purpose(tmp_path):
    """hide-input promises to fold the input only (e.g. the sizes a chapter runs at); its output may show."""
    folded = ('<div class="cell tag_hide-input"><details class="hide above-input"><summary>Show</summary>'
              '<div class="cell_input"><pre>box = 32</pre></div></details>'
              '<div class="cell_output"><pre>box 32^3</pre></div></div>')
    _page(tmp_path, folded, name="notes.html")  # not a chapter: no figure expected
    assert _kinds(tmp_path) == []
    _page(tmp_path, '<div class="cell tag_hide-input"><div class="cell_input"><pre>box = 32</pre></div>'
                    '<div class="cell_output"><pre>box 32^3</pre></div></div>', name="notes.html")
    assert _kinds(tmp_path) == ["visible solution"]  # the input it promised to fold is shown
