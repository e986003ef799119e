"""An mkdocs hook: every figure keeps a readable size on a narrow screen.

A figure is drawn at ``savefig.dpi`` 150 with 10 pt text (8.5 pt legends), so its text is about
21 px tall in the PNG. Squeezed into a phone's 360 px column, a two-panel figure (1,380 px) would
show that text at 5 px. The hook gives each figure's ``<img>`` a minimum width of
``READABLE_SCALE`` (``entropy_rl.figures``) times its width in pixels (text of 8 px and more); where the column is
narrower, the figure scrolls sideways inside its own paragraph (``extra.css``), never the page.
On a laptop every figure fits its column and nothing changes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from entropy_rl.figures import READABLE_SCALE
from entropy_rl.figures import png_width as _png_width

IMG = re.compile(r'<img\b[^>]*\bsrc="([^"]*figures/[^"]+\.png)"[^>]*>')


def png_width(path: Path) -> int:
    """The width in pixels of the PNG at ``path``."""
    with path.open("rb") as f:
        try:
            return _png_width(f.read(24))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def readable(html: str, docs_dir: Path) -> str:
    """``html`` with ``style="min-width: Npx"`` on each figure ``<img>`` found under docs_dir."""

    def sized(match: re.Match[str]) -> str:
        tag, src = match.group(0), match.group(1)
        path = docs_dir / "figures" / src.split("figures/", 1)[1]
        if not path.exists() or "style=" in tag:
            return tag
        width = round(png_width(path) * READABLE_SCALE)
        return tag[:-1].rstrip("/ ") + f' style="min-width: {width}px">'

    return IMG.sub(sized, html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return readable(html, Path(config["docs_dir"]))
