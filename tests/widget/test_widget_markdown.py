"""Markdown rendering for the chat widget: GFM features, Pygments highlighting, and above all that
hostile model output can never turn into script."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

import pytest

from jupyter_cloudws.widget.markdown import PYGMENTS_CSS, render_markdown, sanitize_html

# Everything the renderer is allowed to emit; anything else in the output is a sanitizer hole.
ALLOWED_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "input", "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "br", "span", "div",
}  # fmt: skip
SAFE_SCHEMES = ("http://", "https://", "mailto:")


class _Collector(HTMLParser):
    """Every start tag with its attributes, as a browser would see them (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def parse(html: str) -> list[tuple[str, dict[str, str]]]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.tags


def assert_safe(html: str) -> None:
    """No script-capable markup: only allowed tags, no event handlers, only safe link schemes."""
    lowered = html.lower()
    assert "<script" not in lowered
    assert "<iframe" not in lowered
    assert "<svg" not in lowered
    assert "<img" not in lowered
    # ``onerror=``/``onload=`` may only appear as text (or inside a quoted, escaped value), never as
    # an attribute: blank out the quoted values, then look for handler names in what is left.
    for tag_text in re.findall(r"<[^>]*>", html):
        bare = re.sub(r'"[^"]*"', '""', tag_text)
        assert not re.search(r"\son\w+\s*=", bare, re.IGNORECASE), tag_text
    for tag, attrs in parse(html):
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs.items():
            assert not name.lower().startswith("on"), (tag, name)
            compact = re.sub(r"[\s\x00-\x1f]", "", unescape(value)).lower()
            assert "javascript:" not in compact, (tag, name, value)
            assert "vbscript:" not in compact, (tag, name, value)
            assert not compact.startswith("data:"), (tag, name, value)
            if name == "href":
                assert value.lower().startswith(SAFE_SCHEMES), value
            if name == "style":
                assert tag in {"th", "td"} and re.fullmatch(r"text-align:\s*(left|right|center);?", value), value
            if name == "src":
                pytest.fail(f"src attribute on <{tag}>")


# --- GFM features -------------------------------------------------------------------------------


def test_empty() -> None:
    assert render_markdown("") == ""


def test_paragraph_and_emphasis() -> None:
    html = render_markdown("# Title\n\nSome *em* and **strong** text.")
    assert "<h1>Title</h1>" in html
    assert "<em>em</em>" in html
    assert "<strong>strong</strong>" in html


def test_table() -> None:
    html = render_markdown("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n")
    assert "<table>" in html and "<thead>" in html and "<tbody>" in html
    assert "<th" in html and "<td" in html
    # Column alignment survives the sanitizer (and is the only style that does).
    assert 'style="text-align:left"' in html
    assert 'style="text-align:center"' in html
    assert 'style="text-align:right"' in html
    assert_safe(html)


def test_strikethrough() -> None:
    html = render_markdown("this is ~~gone~~")
    assert re.search(r"<(s|del)>gone</\1>", html)


def test_task_list_checkboxes_are_disabled() -> None:
    html = render_markdown("- [ ] todo\n- [x] done\n")
    inputs = [attrs for tag, attrs in parse(html) if tag == "input"]
    assert len(inputs) == 2
    assert all(attrs.get("type") == "checkbox" and "disabled" in attrs for attrs in inputs)
    assert "checked" not in inputs[0]
    assert "checked" in inputs[1]
    assert 'class="contains-task-list"' in html


def test_lists_blockquote_hr() -> None:
    html = render_markdown("1. one\n2. two\n\n- a\n- b\n\n> quoted\n\n---\n")
    for tag in ("<ol>", "<ul>", "<li>", "<blockquote>", "<hr>"):
        assert tag in html


def test_ordered_list_start_kept() -> None:
    assert '<ol start="3">' in render_markdown("3. three\n4. four\n")


def test_fenced_python_highlighted_with_classes() -> None:
    html = render_markdown('```python\ndef f(x):\n    return "hi"\n```\n')
    assert html.startswith('<div class="highlight"><pre>')
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">f</span>' in html
    assert "style=" not in html  # classes only, the colours live in PYGMENTS_CSS


def test_fence_language_is_case_insensitive_and_aliases_work() -> None:
    assert '<span class="k">def</span>' in render_markdown("```Py\ndef f(): pass\n```")


def test_unknown_language_is_plain_and_escaped() -> None:
    html = render_markdown("```nosuchlang\n<b>bold?</b> & more\n```\n")
    assert '<div class="highlight"><pre>' in html
    assert "&lt;b&gt;bold?&lt;/b&gt; &amp; more" in html
    assert "<span" not in html


def test_fence_without_language_and_indented_code() -> None:
    for source in ("```\nx < y\n```\n", "    x < y\n"):
        html = render_markdown(source)
        assert '<div class="highlight"><pre>' in html
        assert "x &lt; y" in html


def test_inline_code_escaped() -> None:
    html = render_markdown("use `<script>alert(1)</script>` carefully")
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html
    assert_safe(html)


def test_links_get_rel_and_target() -> None:
    html = render_markdown("[site](https://example.com) and <https://example.org/x> and [m](mailto:a@b.c)")
    links = [attrs for tag, attrs in parse(html) if tag == "a"]
    assert [a["href"] for a in links] == ["https://example.com", "https://example.org/x", "mailto:a@b.c"]
    for attrs in links:
        assert attrs["rel"] == "noopener noreferrer"
        assert attrs["target"] == "_blank"


def test_relative_and_other_scheme_links_lose_href() -> None:
    html = render_markdown("[rel](../api/sessions) [ftp](ftp://x.y/z) [frag](#top)")
    assert "href" not in html
    assert_safe(html)


def test_images_are_not_rendered() -> None:
    html = render_markdown("![tracking pixel](https://evil.example/p.png?secret=1)")
    assert "<img" not in html
    # The URL is still reachable, but only as a link the user chooses to click.
    assert 'href="https://evil.example/p.png?secret=1"' in html
    assert_safe(html)


def test_reference_image_not_rendered() -> None:
    html = render_markdown("![x][pic]\n\n[pic]: https://evil.example/p.png\n")
    assert "<img" not in html
    assert_safe(html)


# --- hostile input ------------------------------------------------------------------------------

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](  javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](java\tscript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&#58;alert(1))",
    "[x](javascript&colon;alert(1))",
    "<javascript:alert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)\n",
    "![x](javascript:alert(1))",
    '![x](https://e.example/a.png "t" onerror="alert(1)")',
    '[x](https://e.example "title\\" onmouseover=\\"alert(1)")',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "```python onerror=alert(1)\nprint(1)\n```",
    '```" onerror="alert(1)\nprint(1)\n```',
    "```<img src=x onerror=alert(1)>\nx\n```",
    '<iframe src="https://evil.example"></iframe>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<div style="position:fixed;inset:0">overlay</div>',
    "<style>body{display:none}</style>",
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<object data="javascript:alert(1)"></object>',
    '<form action="javascript:alert(1)"><input type=submit></form>',
    "<!-- <script>alert(1)</script> -->",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | [x](javascript:alert(1)) |\n",
    "- [ ] <script>alert(1)</script>\n- [x] [x](javascript:alert(1))\n",
    "> <svg onload=alert(1)>\n",
    "`<img src=x onerror=alert(1)>`",
    "**<img src=x onerror=alert(1)>**",
    "<details open ontoggle=alert(1)>",
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_input_is_neutralized(source: str) -> None:
    assert_safe(render_markdown(source))


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_input_inside_partial_stream_is_neutralized(source: str) -> None:
    for end in range(1, len(source) + 1):
        assert_safe(render_markdown(source[:end]))


def test_raw_html_shown_as_text() -> None:
    html = render_markdown("<b>not bold</b>")
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    assert "<b>" not in html


# The second layer on its own: even if markdown-it ever let HTML through, nh3 strips it.
RAW_HOSTILE_HTML = [
    '<img src="https://evil.example/p.png">',
    "<script>alert(1)</script>",
    '<a href="javascript:alert(1)" onclick="alert(1)">x</a>',
    '<a href="JAVASCRIPT:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="data:text/html,x">x</a>',
    "<svg onload=alert(1)><circle/></svg>",
    '<iframe src="https://evil.example"></iframe>',
    '<p style="color:red" onmouseover="alert(1)">x</p>',
    '<td style="text-align:left;background:url(https://evil.example)">x</td>',
    '<input type="text" value="phish">',
    '<input type="checkbox">',
    '<span class="k jp-Dialog">x</span>',
    '<div class="highlight lm-Widget">x</div>',
]


@pytest.mark.parametrize("fragment", RAW_HOSTILE_HTML)
def test_sanitizer_alone_neutralizes(fragment: str) -> None:
    assert_safe(sanitize_html(fragment))


def test_sanitizer_forces_checkbox_inputs_disabled() -> None:
    for fragment in ('<input type="text" value="phish">', '<input type="checkbox">'):
        (tag, attrs), *_ = parse(sanitize_html(fragment))
        assert tag == "input"
        assert attrs.get("type") == "checkbox"
        assert "disabled" in attrs
        assert "value" not in attrs


def test_sanitizer_filters_classes() -> None:
    html = sanitize_html('<span class="k jp-Dialog">x</span><div class="highlight lm-Widget">y</div>')
    assert "jp-Dialog" not in html and "lm-Widget" not in html
    assert 'class="k"' in html and 'class="highlight"' in html


# --- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "partial",
    [
        "```python\ndef f(",
        "```",
        "``",
        "text\n\n```py",
        "| a | b |",
        "| a | b |\n|--",
        "| a | b |\n|---|---|\n| 1 |",
        "- [",
        "- [x",
        "[link](https://exa",
        "[link](",
        "**bold",
        "~~str",
        "<scr",
        "&#10",
        "> quote\n> ```\n> code",
    ],
)
def test_partial_input_renders(partial: str) -> None:
    html = render_markdown(partial)
    assert isinstance(html, str)
    assert_safe(html)


def test_unclosed_fence_renders_as_code() -> None:
    html = render_markdown("Here:\n\n```python\nimport os\nprint(os.getcwd())")
    assert '<div class="highlight"><pre>' in html
    assert '<span class="kn">import</span>' in html


def _document(size: int = 5000) -> str:
    section = (
        "## Section {n}\n\n"
        "Some **bold**, *italic*, `code`, ~~old~~ and a [link](https://example.com/{n}).\n\n"
        "| col | value |\n|:----|------:|\n| a{n} | {n} |\n| b{n} | {n}{n} |\n\n"
        "- [ ] task {n}\n- [x] done {n}\n\n"
        "```python\ndef f{n}(x: int) -> int:\n    return x * {n}  # comment\n```\n\n"
        "> A quote with <b>raw html</b> in it.\n\n"
    )
    parts: list[str] = []
    n = 0
    while sum(map(len, parts)) < size:
        parts.append(section.format(n=n))
        n += 1
    return "".join(parts)[:size]


def test_streaming_growing_prefixes() -> None:
    doc = _document()
    assert len(doc) == 5000
    steps = 200
    html = ""
    for i in range(1, steps + 1):
        html = render_markdown(doc[: len(doc) * i // steps])
        assert isinstance(html, str)
    assert_safe(html)
    assert html.count("<table>") >= 5
    assert '<span class="k">def</span>' in html


# --- stylesheet ---------------------------------------------------------------------------------


def test_pygments_css_is_scoped() -> None:
    rules = [line for line in PYGMENTS_CSS.splitlines() if line.strip()]
    assert rules
    light = ".cloudws-md .highlight"
    dark = '[data-jp-theme-light="false"] .cloudws-md .highlight'
    for rule in rules:
        assert rule.startswith((light, dark)), rule
    assert any(rule.startswith(light + " .k ") for rule in rules)
    assert any(rule.startswith(dark + " .k ") for rule in rules)
