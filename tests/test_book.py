"""The book's notebooks: committed without outputs, listed in the table of contents, and Colab-ready.

The Colab install cell is executed here with a fake ``google.colab`` module and
a recording ``subprocess.run``: it must clone and install cryolearn without
touching torch, and do nothing outside Colab.
"""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {c["file"] for part in toc["parts"] for c in part["chapters"]}


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_every_notebook_is_in_the_toc_and_back():
    listed = _toc_files()
    chapters = {f"book/{p.stem}" for p in NOTEBOOKS}
    assert chapters <= listed
    pages = listed - chapters  # the rest are Markdown pages (appendices, bibliography) that exist
    assert all((ROOT / f"{p}.md").is_file() for p in pages), pages
    assert len(NOTEBOOKS) >= 9


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_clean_and_profiled(path):
    cells = _cells(path)
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit notebooks without outputs"
    assert any("get_profile()" in "".join(c["source"]) for c in code), "every chapter reads CRYOLEARN_PROFILE via get_profile"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_cell_installs_without_torch_and_only_on_colab(path, monkeypatch):
    first = _cells(path)[0]
    assert first["cell_type"] == "code" and "remove-cell" in first["metadata"].get("tags", [])
    src = "".join(first["source"])
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(list(args)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(src, path.name, "exec"), {})
    assert calls == [], "the install cell must do nothing outside Colab"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(src, path.name, "exec"), {})
    pip = [c for c in calls if "pip" in c]
    assert any(c[:2] == ["git", "clone"] for c in calls) and len(pip) == 1
    assert not any("torch" in a for a in pip[0]), "never reinstall Colab's torch"
    assert "-e" in pip[0]  # editable: the shipped maps under data/ stay reachable
