"""Catalog prose (tuning, investigation, response steps…) rendered as Markdown by markdown-it-py, safely.

CommonMark with raw HTML disabled: a ``<script>`` typed in a detection is text, never markup; link targets go through
markdown-it's own validation (``javascript:``, ``vbscript:``, ``file:`` and non-image ``data:`` URLs are refused) and
every link gets ``rel="noopener noreferrer"``. Backslash escapes are switched off because catalog text is full of
Windows paths: ``C:\\Program Files\\<vendor>\\`` must keep its backslashes, not lose the one before ``<``. Images are off
too: the site fetches nothing, and a picture in a tuning note would be a request to somewhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

#: markdown-it's rules switched off: ``escape`` (backslash escapes) so Windows paths stay as typed, ``image``
#: so no page loads anything from elsewhere.
DISABLED_RULES = ("escape", "image")


def _link_open(renderer: Any, tokens: Sequence[Token], index: int, options: Any, env: Any) -> str:
    # markdown-it binds render rules as methods of the renderer.
    tokens[index].attrSet("rel", "noopener noreferrer")
    return str(renderer.renderToken(tokens, index, options, env))


def markdown_parser() -> MarkdownIt:
    """The site's Markdown parser: CommonMark plus tables and strikethrough, raw HTML off, no backslash escapes."""
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.disable(list(DISABLED_RULES))
    parser.add_render_rule("link_open", _link_open)
    return parser


class MarkdownRenderer:
    """The ``markdown`` and ``markdown_inline`` Jinja filters of one build (one parser, each text rendered once)."""

    def __init__(self) -> None:
        self._parser = markdown_parser()
        self._blocks: dict[str, Markup] = {}
        self._inline: dict[str, Markup] = {}

    def block(self, text: str | None) -> Markup:
        """Paragraphs, lists, code spans… as HTML (markdown-it escapes every text node)."""
        source = text or ""
        if source not in self._blocks:
            self._blocks[source] = Markup(self._parser.render(source))
        return self._blocks[source]

    def inline(self, text: str | None) -> Markup:
        """One line of prose (a list item, a step title): emphasis, code spans and links, no paragraph."""
        source = text or ""
        if source not in self._inline:
            self._inline[source] = Markup(self._parser.renderInline(source))
        return self._inline[source]
