"""The book's local Sphinx extensions (book/_ext): banner and execution mode."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

import build_banner  # noqa: E402
import execution_mode  # noqa: E402


def test_banner_names_profile_device_and_date(monkeypatch):
    monkeypatch.setenv("CRYOLEARN_PROFILE", "quick")
    monkeypatch.setenv("CRYOLEARN_DEVICE", "cpu")
    text = build_banner.banner_text(SimpleNamespace(nb_execution_mode="force"))
    assert "<strong>quick</strong> profile" in text
    assert "run on <strong>cpu</strong>" in text
    assert "Built 20" in text and "(UTC)" in text


def test_banner_without_execution_claims_no_device(monkeypatch):
    monkeypatch.setenv("CRYOLEARN_PROFILE", "standard")
    text = build_banner.banner_text(SimpleNamespace(nb_execution_mode="off"))
    assert "<strong>standard</strong> profile" in text and "not executed" in text
    assert "run on" not in text


def test_banner_is_set_in_theme_options(monkeypatch):
    monkeypatch.setenv("CRYOLEARN_PROFILE", "quick")
    config = SimpleNamespace(nb_execution_mode="force", html_theme_options={"use_repository_button": True})
    build_banner._set_banner(None, config)
    assert config.html_theme_options["use_repository_button"] is True
    assert "quick" in config.html_theme_options["announcement"]


@pytest.mark.parametrize("value, expected", [("", "force"), ("off", "off"), ("cache", "cache"), (" force ", "force")])
def test_execution_mode_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv(execution_mode.ENV, value)
    config = SimpleNamespace(nb_execution_mode="force")
    execution_mode._override(None, config)
    assert config.nb_execution_mode == expected


def test_execution_mode_rejects_unknown(monkeypatch):
    monkeypatch.setenv(execution_mode.ENV, "sometimes")
    with pytest.raises(ValueError, match="CRYOLEARN_BOOK_EXECUTE"):
        execution_mode._override(None, SimpleNamespace(nb_execution_mode="force"))
