"""MkDocs hook: the site's maths as MathML, rendered at build time, so pages need no script.

``pymdownx.arithmatex`` (``generic: true``) leaves ``<span class="arithmatex">\\(...\\)</span>``
and ``<div class="arithmatex">\\[...\\]</div>`` in the HTML; this hook replaces each with the
``<math>`` element that ``latex2mathml`` makes of its TeX, which browsers render natively (MathML
Core). The site works offline and loads nothing from a CDN. TeX that the converter cannot read
stops the build with the page and the formula, instead of shipping raw TeX.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<block>.*?)\\\])\s*</(?P=tag)>',
    re.S,
)


def to_mathml(tex: str, display: str) -> str:
    """One formula's MathML (``display`` is ``inline`` or ``block``)."""
    return convert(html.unescape(tex).strip(), display=display)


def on_page_content(content: str, page, **kwargs) -> str:
    def replace(match: re.Match) -> str:
        inline = match.group("inline")
        tex = inline if inline is not None else match.group("block")
        display = "inline" if inline is not None else "block"
        try:
            mathml = to_mathml(tex, display)
        except Exception as error:  # the build names the formula rather than ship raw TeX
            raise ValueError(
                f"{page.file.src_path}: cannot render ${tex}$ as MathML: {error}"
            ) from error
        tag = match.group("tag")
        return f'<{tag} class="arithmatex">{mathml}</{tag}>'

    return MATH.sub(replace, content)
