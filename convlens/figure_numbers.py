"""Figure numbers in a rendered report: every ``<figure>`` numbered in document order ("Figure N." at
the start of its caption), and every reference to a figure from the text (``figref``) given its
number. Numbering the rendered HTML (not the template) keeps the numbers right in each rendering:
the summary PDF and the full HTML hold different figures."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_FIGURE = re.compile(r"<figure\b([^>]*)>")
_ID = re.compile(r'\bid="([^"]*)"')
_CAPTION = "<figcaption>"
_REF = re.compile(r'<a class="figref" href="#([^"]*)">[^<]*</a>')
UNNUMBERED = "Figure ?"


def figref(figure_id: str) -> Markup:
    """A reference to the figure with this id, numbered by ``number_figures`` (a Jinja filter)."""
    return Markup(f'<a class="figref" href="#{escape(figure_id)}">{UNNUMBERED}</a>')


def number_figures(html: str) -> str:
    """``html`` with each figure numbered in order (an id added where it has none: ``figure-N``), its
    caption starting "Figure N." (a figure without one gets a caption of just that), and each
    ``figref`` reading "Figure N"; a reference to a figure this rendering does not hold reads "a figure
    of the full report"."""
    out, numbers, pos = [], {}, 0
    for n, match in enumerate(_FIGURE.finditer(html), start=1):
        attrs = match.group(1)
        found = _ID.search(attrs)
        if found:
            numbers[found.group(1)] = n
        else:
            attrs += f' id="figure-{n}"'
        end = html.find("</figure>", match.end())
        end = len(html) if end < 0 else end
        body = html[match.end() : end]
        label = f'<span class="figno">Figure {n}.</span> '
        if _CAPTION in body:
            body = body.replace(_CAPTION, _CAPTION + label, 1)
        else:
            body += f"<figcaption>{label}</figcaption>"
        out += [html[pos : match.start()], f"<figure{attrs}>", body]
        pos = end
    out.append(html[pos:])
    numbered = "".join(out)

    def fill(ref: re.Match) -> str:
        n = numbers.get(ref.group(1))
        return ref.group(0).replace(UNNUMBERED, f"Figure {n}") if n else "a figure of the full report"

    return _REF.sub(fill, numbered)
