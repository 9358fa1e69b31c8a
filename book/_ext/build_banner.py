"""A banner on every page: the profile, the device and the date of this build.

The numbers and figures of a chapter depend on the run profile
(``CRYOLEARN_PROFILE``: quick, standard or full) and on the device the
chapters ran on. This extension reads both the way the chapters do, through
:func:`cryolearn.get_profile`, when the build starts, and puts them in the
theme's announcement bar with today's date (UTC). A build that does not
execute the notebooks (``CRYOLEARN_BOOK_EXECUTE=off``) says so instead of
claiming a device.
"""

from __future__ import annotations

import datetime
import html
import os


def banner_text(config) -> str:
    """Return the banner's HTML for this build."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    try:
        from cryolearn import get_profile

        profile = get_profile()
        name, device = profile.name, str(profile.device)
    except Exception as exc:  # the banner must never break the build
        name = os.environ.get("CRYOLEARN_PROFILE", "default")
        device = f"unknown ({type(exc).__name__})"
    if device.startswith("cuda"):
        try:
            import torch

            device = f"{device} ({torch.cuda.get_device_name(0)})"
        except Exception:
            pass
    mode = getattr(config, "nb_execution_mode", "force")
    if mode == "off":
        ran = "chapters not executed (no outputs)"
    else:
        ran = f"chapters run on <strong>{html.escape(device)}</strong>"
    return (
        f"Built {date} (UTC) in the <strong>{html.escape(name)}</strong> profile; {ran}. "
        "Numbers and figures change with the profile."
    )


def _set_banner(app, config) -> None:
    options = dict(config.html_theme_options or {})
    options["announcement"] = banner_text(config)
    config.html_theme_options = options


def setup(app):
    # priority 900: after execution_mode (default 500) has set nb_execution_mode
    app.connect("config-inited", _set_banner, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
