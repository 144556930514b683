"""What the pages show of untrusted text: every character as itself, or as its escape.

Autoescaping stops markup, not invisible characters: a bidi override (U+202E) makes
``Delete report\u202egpj.exe`` read as another file name, and zero-width characters hide
text. So, as the terminal, the webhook and the e-mail do (``console_format.terminal_safe``),
every control and format character, line or paragraph separator and lone surrogate is shown
as its escape (``\\u202e``). Newlines and tabs stay: in a page they are only white space.
"""

from typing import Any

from markupsafe import Markup

from console_format import terminal_safe

_KEPT = frozenset("\n\t")


def visible(text: str) -> str:
    """``text`` with every invisible or reordering character written as its escape."""
    if text.isascii() and text.isprintable():  # the common case, at C speed
        return text
    return terminal_safe(text, keep=_KEPT)


def finalize(value: Any) -> Any:
    """Jinja2's ``finalize``: applied to every ``{{ ... }}`` before autoescaping, so no
    template can forget it. Markup (a macro's output, already escaped) is treated the same
    and stays Markup: the escapes added are plain ASCII letters, digits and backslashes,
    which cannot form a tag or an entity, so nothing unescaped is let through."""
    if isinstance(value, Markup):
        return Markup(visible(str(value)))
    if isinstance(value, str):
        return visible(value)
    return value
