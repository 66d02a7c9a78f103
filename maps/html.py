"""Putting data into HTML pages safely: values inside ``<script>`` elements.

A light module (no folium, no geopandas) so the API's HTML pages use it too.
"""

from __future__ import annotations

import re

__all__ = ["script_json"]

_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "/": "\\/",
                   "\u2028": "\\u2028", "\u2029": "\\u2029"}
# an escape sequence (kept as it is) or a character to escape
_SCRIPT_UNSAFE = re.compile("\\\\.|[<>&/\u2028\u2029]", re.DOTALL)


def script_json(json_text: str) -> str:
    """JSON text made safe to put inside an HTML ``<script>`` element.

    ``<``, ``>``, ``&``, U+2028 and U+2029 become ``\\u`` escapes and ``/`` becomes ``\\/``
    (valid JSON and JavaScript for the same value), so no value can close the element
    (``</script>``), open a comment that swallows its end (``<!--<script>``), end a JS line or
    show a URL (``https:\\/\\/…``) to the page's external-URL check. Outside strings JSON has
    none of these characters.

    >>> script_json('{"name": "</script><!--"}')
    '{"name": "\\\\u003c\\\\/script\\\\u003e\\\\u003c!--"}'
    """
    return _SCRIPT_UNSAFE.sub(lambda mo: _SCRIPT_ESCAPES.get(mo.group(0), mo.group(0)),
                              json_text)
