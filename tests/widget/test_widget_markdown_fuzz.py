"""Whatever markdown the agent writes, the rendered HTML can run nothing."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_cloudws.widget.markdown import render_markdown

# Pieces that hostile or broken output is made of, shuffled together with arbitrary text.
PIECES = [
    "<script>", "</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>", "javascript:",
    "JaVaScRiPt:", "&#106;avascript:", "data:text/html,", "[a](", ")", "](", "<a href=\"", "\">", "```",
    "```html\n", "`", "|", "---", "\n", "<", ">", "\"", "'", "=", "<iframe src=", "style=", "onmouseover=",
    "![x](", "<details ontoggle=alert(1) open>", "- [ ] ", "**", "~~", "&lt;", "\\", "<http://x.test/a>",
]  # fmt: skip
hostile = st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=40).map("".join)
RUNNABLE_TAGS = {"script", "iframe", "svg", "object", "embed", "form", "math", "img", "style", "link", "meta"}
SAFE_SCHEMES = ("http://", "https://", "mailto:")


class Markup(HTMLParser):
    """The tags and attributes of an HTML fragment (escaped text is not markup)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_rendered_markdown_can_run_nothing(text):
    markup = Markup()
    markup.feed(render_markdown(text))
    for tag, attrs in markup.tags:
        assert tag not in RUNNABLE_TAGS, (tag, text)
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, text)
            if name in ("href", "src"):
                assert (value or "").strip().lower().startswith(SAFE_SCHEMES), (tag, value, text)
