"""Let the environment choose how the book's notebooks are executed.

``_config.yml`` sets ``execute_notebooks: force`` (every chapter runs at every
build, as CI does). Setting ``CRYOLEARN_BOOK_EXECUTE`` to ``off``, ``cache``,
``force``, ``auto`` or ``inline`` replaces that mode for one build, without a
second configuration file:

- ``CRYOLEARN_BOOK_EXECUTE=cache``: the deploy workflow; a chapter is re-run
  only when its code changed (the cache lives in ``_build/.jupyter_cache``).
- ``CRYOLEARN_BOOK_EXECUTE=off``: check the pages, the API appendix and the
  references in seconds, without running any chapter.
"""

from __future__ import annotations

import os

MODES = ("off", "cache", "force", "auto", "inline")
ENV = "CRYOLEARN_BOOK_EXECUTE"


def _override(app, config) -> None:
    mode = os.environ.get(ENV, "").strip()
    if not mode:
        return
    if mode not in MODES:
        raise ValueError(f"{ENV}={mode!r}: expected one of {', '.join(MODES)}")
    config.nb_execution_mode = mode


def setup(app):
    # myst-nb reads nb_execution_mode when the builder starts, after config-inited.
    app.connect("config-inited", _override)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
