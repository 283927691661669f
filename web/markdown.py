"""Model output as safe HTML: Markdown with raw HTML off, links checked, code highlighted server-side.

Everything a model writes is untrusted. markdown-it-py escapes every character of raw HTML (`html`
off), and `_link_ok` lets a link or image through only with an http(s) or mailto address (or a
relative one), so `javascript:`, `data:` and `vbscript:` targets stay text. Pygments colours fenced
code with CSS classes (`web/static/web/code.css`), never inline styles or scripts.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

# A scheme is letters, digits, "+", "-" or "." before the first ":" (RFC 3986); browsers drop
# tabs and line breaks inside it and ignore leading control characters, so those are removed first.
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):", re.IGNORECASE)
_IGNORED = re.compile(r"[\x00-\x20\x7f]+")
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


def _link_ok(url: str) -> bool:
    cleaned = _IGNORED.sub("", url)
    found = _SCHEME.match(cleaned)
    if found is None:
        # No scheme: a relative address, unless a ":" hides in what a browser might read as one.
        return ":" not in cleaned.split("/", 1)[0]
    return found.group(1).lower() in SAFE_SCHEMES


def _highlight(code: str, lang: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0]) if lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    # Spans only: markdown-it wraps them in <pre><code class="language-…">, styled by code.css.
    return str(highlight(code, lexer, HtmlFormatter(nowrap=True)))


@cache
def _renderer() -> MarkdownIt:
    options: dict[str, Any] = {"html": False, "linkify": False, "typographer": False, "highlight": _highlight}
    md = MarkdownIt("commonmark", options).enable("table").enable("strikethrough")
    md.validateLink = _link_ok  # type: ignore[method-assign]
    return md


def markdown_html(text: str) -> str:
    """`text` as HTML safe to put in a page: no raw HTML, only http(s)/mailto/relative links."""
    html: str = _renderer().render(text)
    return html


def code_css() -> str:
    """The Pygments rules for highlighted code, light by default and dark under the system's dark mode."""
    # Each style on one line: the file is generated, and this keeps it small.
    light = " ".join(HtmlFormatter(style="default").get_style_defs(".md pre code").splitlines())
    dark = " ".join(HtmlFormatter(style="monokai").get_style_defs(".md pre code").splitlines())
    return f"{light}\n@media (prefers-color-scheme: dark) {{ {dark} }}\n"
