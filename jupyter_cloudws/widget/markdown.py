"""Markdown → safe HTML for the chat widget.

The text comes from the model (and, through it, from whatever it read: web pages, repository files),
so it is untrusted. Two layers keep script out of the page:

1. markdown-it runs with ``html=False``: raw HTML in the input is emitted as escaped text, and its
   link validator already refuses ``javascript:``/``vbscript:``/``file:``/most ``data:`` URLs.
2. nh3 (ammonia) then sanitizes the output against an allow-list of exactly what this renderer
   produces, so a renderer bug or a future plugin cannot smuggle markup through.

Images are never rendered: a remote ``<img>`` loads as soon as the message is shown, which lets a
prompt-injected answer exfiltrate data in the URL or track the reader. ``![alt](url)`` becomes
``!`` followed by an ordinary link, which the user has to click.

``render_markdown`` is called on every streamed chunk with the whole text so far, so the parser and
the sanitizer are built once at import and code highlighting is memoized (finished code blocks
are re-rendered unchanged on every later chunk).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

__all__ = ["PYGMENTS_CSS", "render_markdown", "sanitize_html"]

# The widget puts rendered messages inside an element with this class; the stylesheet is scoped to
# it so the highlight colours never leak into the rest of JupyterLab.
_SCOPE = ".cloudws-md .highlight"
# JupyterLab sets this attribute on <body> for dark themes.
_DARK_SCOPE = '[data-jp-theme-light="false"] .cloudws-md .highlight'
_LIGHT_STYLE = "default"
_DARK_STYLE = "github-dark"

# Classes, not inline styles: the sanitizer drops ``style`` everywhere except table alignment, and
# a stylesheet lets the theme switch without re-rendering.
_FORMATTER = HtmlFormatter(cssclass="highlight", style=_LIGHT_STYLE)


# --- Pygments -----------------------------------------------------------------------------------


# Token classes take their colour from JupyterLab's theme, the --jp-mirror-editor-* variables its
# own editor uses, so code in a message reads like code in a cell in any theme, light or dark; the
# Pygments style's colour is the fallback outside JupyterLab. Unlisted classes (a diff's inserted
# and deleted lines, prompts, tracebacks) keep the style's colours, dark ones under _DARK_SCOPE.
_THEME_COLOURS: dict[str, str] = {
    **dict.fromkeys(["k", "kd", "kn", "kp", "kr", "ow"], "keyword"),
    **dict.fromkeys(["kc", "no", "ss"], "atom"),
    "kt": "variable-3", "o": "operator", "p": "punctuation", "py": "property", "na": "attribute", "nt": "tag",
    **dict.fromkeys(["s", "sa", "sb", "sc", "dl", "sd", "s2", "sh", "sx", "s1"], "string"),
    **dict.fromkeys(["se", "si", "sr"], "string-2"),
    **dict.fromkeys(["m", "mb", "mf", "mh", "mi", "il", "mo"], "number"),
    **dict.fromkeys(["c", "ch", "cm", "cpf", "c1", "cs"], "comment"),
    **dict.fromkeys(["cp", "nd"], "meta"),
    **dict.fromkeys(["nb", "bp"], "builtin"),
    **dict.fromkeys(["nc", "nf", "fm", "ne"], "def"),
    **dict.fromkeys(["nv", "vc", "vg", "vi", "vm"], "variable-2"),
    **dict.fromkeys(["n", "nn", "nl", "ni", "nx"], "variable"),
    "gh": "header", "gu": "header", "err": "error",
}  # fmt: skip
_TOKEN_RULE = re.compile(r"^(?P<selector>.* \.(?P<token>[\w-]+)) \{ (?P<body>.*) \}(?P<comment>.*)$")
_COLOUR = re.compile(r"(?<![\w-])color: (#[0-9A-Fa-f]{3,8})")


def _themed(rule: str) -> str:
    """A Pygments token rule whose colour goes through JupyterLab's variable for that token."""
    match = _TOKEN_RULE.match(rule)
    name = _THEME_COLOURS.get(match.group("token")) if match else None
    if match is None or name is None:
        return rule
    return _COLOUR.sub(rf"color: var(--jp-mirror-editor-{name}-color, \1)", rule)


def _stylesheet() -> str:
    """Light rules under ``_SCOPE`` and dark overrides under the (more specific) ``_DARK_SCOPE``.

    ``get_style_defs`` is avoided on purpose: it also emits unscoped ``pre { ... }`` and line-number
    rules that would restyle every ``<pre>`` in JupyterLab. The block's own background and text are
    the cell editor's (``--jp-cell-editor-background``), which the theme's token colours are meant for.
    """
    dark = HtmlFormatter(cssclass="highlight", style=_DARK_STYLE)
    rules = [
        f"{_SCOPE} {{ background: var(--jp-cell-editor-background, #f8f8f8); color: var(--jp-content-font-color1, #222) }}",
        *[r for r in _FORMATTER.get_background_style_defs(_SCOPE) if not r.startswith(_SCOPE + " {")],
        *map(_themed, _FORMATTER.get_token_style_defs(_SCOPE)),
        f"{_DARK_SCOPE} {{ background: var(--jp-cell-editor-background, #0d1117); color: var(--jp-content-font-color1, #E6EDF3) }}",
        *[r for r in dark.get_background_style_defs(_DARK_SCOPE) if not r.startswith(_DARK_SCOPE + " {")],
        *map(_themed, dark.get_token_style_defs(_DARK_SCOPE)),
    ]
    return "\n".join(rules) + "\n"


PYGMENTS_CSS: str = _stylesheet()


@lru_cache(maxsize=128)
def _lexer(lang: str) -> Lexer | None:
    """The lexer for an info-string language, or None when Pygments does not know it."""
    if not lang:
        return None
    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


@lru_cache(maxsize=256)
def _highlight(code: str, lang: str) -> str:
    """A ``<div class="highlight"><pre>`` block; unknown languages are escaped plain text in the
    same wrapper so every code block gets the same box styling."""
    lexer = _lexer(lang.lower())
    if lexer is None:
        return f'<div class="highlight"><pre>{html.escape(code, quote=False)}</pre></div>\n'
    return highlight(code, lexer, _FORMATTER)


# --- markdown-it --------------------------------------------------------------------------------


def _render_fence(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """Replaces the default fence rule, which would wrap our ``<div>`` inside ``<pre><code>``.

    Only the first word of the info string is used, and only as a lexer lookup key: it never
    reaches the output, so an info string like ``python onerror=alert(1)`` has nowhere to go.
    """
    token = tokens[idx]
    info = unescapeAll(token.info).strip()
    lang = info.split(maxsplit=1)[0] if info else ""
    return _highlight(token.content, lang)


def _build_parser() -> MarkdownIt:
    # CommonMark plus the GFM pieces: tables, ~~strikethrough~~, task lists. ``linkify`` (bare URLs)
    # would need the extra ``linkify-it-py`` dependency; ``<https://...>`` autolinks work without it.
    md = (
        MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        .enable(["table", "strikethrough"])
        .use(tasklists_plugin)  # defaults: disabled checkboxes, no <label>
        .disable("image")  # see module docstring: ``![a](u)`` renders as "!" + a link
    )
    md.add_render_rule("fence", _render_fence)
    # Indented code blocks take the same path (no language) so they get the same styling.
    md.add_render_rule("code_block", _render_fence)
    return md


_MD = _build_parser()


# --- nh3 ----------------------------------------------------------------------------------------

_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "input", "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "br", "span", "div",
}  # fmt: skip

# Plain attributes whose value is free-form but harmless. ``href`` is checked by ``url_schemes``.
_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}

# Attributes restricted to known values (must not also appear in ``_ATTRIBUTES``).
_ATTRIBUTE_VALUES = {
    "input": {
        "type": {"checkbox"},
        "checked": {"checked", ""},
        "disabled": {"disabled", ""},
    },
}

# Forced on every element: links open outside the lab page; a checkbox can never become an editable
# field or anything other than a checkbox.
_FORCED_ATTRIBUTES = {
    "a": {"target": "_blank"},
    "input": {"type": "checkbox", "disabled": "disabled"},
}

_CLASSES = {
    "div": {"highlight"},
    # Pygments' short token classes (``k``, ``nf``, ``s2``...).
    "span": {cls for cls in STANDARD_TYPES.values() if cls},
    "ul": {"contains-task-list"},
    "li": {"task-list-item"},
    "input": {"task-list-item-checkbox"},
}

_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style"},  # drop their text too, not just the tags
    attributes=_ATTRIBUTES,
    tag_attribute_values=_ATTRIBUTE_VALUES,
    set_tag_attribute_values=_FORCED_ATTRIBUTES,
    allowed_classes=_CLASSES,
    # Only table alignment survives in ``style`` (markdown-it emits ``text-align:left`` etc.).
    filter_style_properties={"text-align"},
    url_schemes={"http", "https", "mailto"},
    # Relative links would resolve against the JupyterLab server, i.e. hit the user's own API.
    url_relative="deny",
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def sanitize_html(fragment: str) -> str:
    """Reduce an HTML fragment to the markup ``render_markdown`` can produce (exposed so tests and
    other callers can rely on the second layer on its own)."""
    return _CLEANER.clean(fragment)


def render_markdown(text: str) -> str:
    """Render GitHub-flavoured markdown to sanitized HTML.

    Safe for partial input (an unclosed fence runs to the end, half a table is a paragraph), so it
    can be called on every streamed prefix of a message.
    """
    if not text:
        return ""
    return sanitize_html(_MD.render(text))
