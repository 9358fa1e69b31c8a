"""``api-summary``: an autosummary table of the names a package exports.

The API appendix documents each subpackage of ``cryolearn`` at package level.
Listing the names by hand would go stale whenever a module moves or a name is
added, so this directive reads the package's ``__all__`` at build time and
hands the names to Sphinx's ``autosummary``::

    .. api-summary:: cryolearn.physics

Dunder names (``__version__``) are left out of the table.
"""

from __future__ import annotations

import importlib

from docutils.statemachine import StringList
from sphinx.ext.autosummary import Autosummary


class ApiSummary(Autosummary):
    required_arguments = 1
    optional_arguments = 0
    has_content = False

    def run(self):
        modname = self.arguments[0]
        module = importlib.import_module(modname)
        names = [n for n in getattr(module, "__all__", []) if not (n.startswith("__") and n.endswith("__"))]
        if not names:
            raise self.error(f"api-summary: {modname} has no __all__ to summarise")
        self.arguments = []
        # Names relative to the package, as a ``currentmodule`` would make them.
        self.env.ref_context["py:module"] = modname
        self.content = StringList(names, source=f"{modname}.__all__")
        return super().run()


def setup(app):
    app.setup_extension("sphinx.ext.autosummary")
    app.add_directive("api-summary", ApiSummary)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
