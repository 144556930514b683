"""Bidi controls and invisible characters in model text are shown as escapes in the pages,
as the terminal, the webhook and the e-mail show them; no template can forget it."""

from markupsafe import Markup

from inbox.rendering import template_environment
from inbox.visible_text import visible

SPOOF = "Delete report\u202egpj.exe"


def test_every_value_in_every_template_shows_its_invisible_characters() -> None:
    env = template_environment()
    page = env.from_string(
        "{% macro cell(v) %}<td>{{ v }}</td>{% endmacro %}"
        "<p>{{ text }}</p>{{ cell(text) }}{{ names|join(', ') }}<i>{{ '<b>' }}</i>"
    ).render(text=SPOOF, names=["\u200bbob", "carol\u2066"])

    assert "\u202e" not in page and "\u200b" not in page and "\u2066" not in page
    assert page.count("Delete report\\u202egpj.exe") == 2
    assert "\\u200bbob, carol\\u2066" in page and "<i>&lt;b&gt;</i>" in page


def test_text_and_markup_keep_everything_else() -> None:
    assert visible("plain, ünïcödé, עברית\nsecond line\t") == "plain, ünïcödé, עברית\nsecond line\t"
    assert visible("a\x1b[31mb\u2028c") == "a\\x1b[31mb\\u2028c"
    assert visible(Markup("<b>x\u202e</b>")) == "<b>x\\u202e</b>"
