"""Bidi controls and invisible characters in model text are shown as escapes in the pages,
as the terminal, the webhook and the e-mail show them; no template can forget it."""

from markupsafe import Markup

from inbox.rendering import template_environment
from inbox.visible_text import visible
from models.models import WorkflowState, WorkflowStatus
from tests.test_console_format import read_only_result

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


def test_the_request_page_shows_a_look_up_answer_as_a_table_of_text() -> None:
    """A read-only run's rows, as the terminal shows them: markup and invisible characters
    in a cell are text on the page."""
    rows = [{"id": 7, "name": "<script>alert(1)</script>"}, {"id": 8, "name": SPOOF}]
    status = WorkflowStatus(state=WorkflowState.COMPLETED, result=read_only_result(rows, 2))

    page = (
        template_environment()
        .get_template("request.html")
        .render(workflow_id="wf-1", s=status, version="v", form_key="f", user=None, csrf_token="t")
    )

    answer = page.split('id="answer"', 1)[1].split("</table>", 1)[0]
    assert "<th>id</th><th>name</th>" in answer
    assert "<td>7</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in answer
    assert "<td>Delete report\\u202egpj.exe</td>" in answer
    assert "... and 2 more rows, not kept in the result" in page
