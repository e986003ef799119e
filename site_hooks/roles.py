"""A griffe extension for the site: Sphinx cross-reference roles in docstrings shown as code.

The package's docstrings name other objects as ``:func:`name```, ``:class:`Name``` or
``:meth:`name``` (Sphinx's roles, which editors link); mkdocstrings prints such a role as it is
written. This extension rewrites each docstring that the site renders so the role becomes the
plain code span ```name``` (a leading ``~`` dropped, as Sphinx shows it); the source listings
keep the text as written.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`")


def plain(text: str) -> str:
    """``text`` with every Sphinx role written as a plain code span."""
    return ROLE.sub(r"`\1`", text)


class RolesAsCode(griffe.Extension):
    """Rewrite the docstring of every object griffe loads (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
