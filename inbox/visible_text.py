"""What the pages show of untrusted text: every character as itself, or as its escape.

Autoescaping stops markup, not invisible characters: a bidi override (U+202E) makes
``Delete report\u202egpj.exe`` read as another file name, and zero-width characters hide
text. So, as the terminal, the webhook and the e-mail do (``console_format.terminal_safe``),
every control and format character, line or paragraph separator and lone surrogate is shown
as its escape (``\\u202e``). Newlines and tabs stay: in a page they are only white space.
"""

import unicodedata
from typing import Any

from markupsafe import Markup

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_KEPT = frozenset("\n\t")


def visible(text: str) -> str:
    """``text`` with every invisible or reordering character written as its escape."""
    if text.isascii() and text.isprintable():  # the common case, at C speed
        return text
    return "".join(
        char
        if char in _KEPT or unicodedata.category(char) not in _UNSAFE_CATEGORIES
        else (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        for char in text
    )


def finalize(value: Any) -> Any:
    """Jinja2's ``finalize``: applied to every ``{{ ... }}`` before autoescaping, so no
    template can forget it. Markup (a macro's output, already escaped) is treated the same:
    the escapes are plain ASCII and cannot form a tag."""
    if isinstance(value, Markup):
        return Markup(visible(str(value)))
    if isinstance(value, str):
        return visible(value)
    return value
