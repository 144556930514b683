"""One-line descriptions of pydantic validation errors, for people reading logs and trails;
and the check of a signal's payloads, which says in those words why it refuses them."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


def summarise(err: ValidationError) -> str:
    """``field: problem; field: problem`` instead of pydantic's multi-line report.

    A model-level rule has no field, so its message stands alone.
    """
    return "; ".join(_describe(error["loc"], error["msg"]) for error in err.errors())


def _describe(location: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    if not location:
        return message
    return f"{'.'.join(str(part) for part in location)}: {message}"


class PayloadRefused(ValueError):
    """A signal's payloads are not what its handler takes; the message says why."""


@dataclass(frozen=True)
class Undecodable:
    """What a handler taking ``*payloads`` receives for a payload the worker cannot decode
    (a key it does not hold, an unknown encoding, malformed data).

    The worker's converter (``encryption/undecodable.py``) hands this over instead of
    raising: raising there fails the workflow task, every retry alike, or drops the signal
    unrecorded. ``reason`` is one line for the audit trail.
    """

    reason: str


def single_payload(payloads: Sequence[object], model: type[T], expected: str) -> T:
    """The one payload of a signal, validated as ``model`` (``expected`` names it for people).

    Signal handlers take ``*payloads``: with one typed parameter, a signal sent with no
    payload or two makes the handler raise TypeError, which fails every workflow task of the
    run. The SDK hands varargs over as plain JSON values, so they are validated here; a
    payload the worker could not decode arrives as ``Undecodable`` and is refused with its
    reason.
    """
    undecodable = next((p for p in payloads if isinstance(p, Undecodable)), None)
    if undecodable is not None:
        raise PayloadRefused(f"could not be decoded: {undecodable.reason}")
    if len(payloads) != 1:
        raise PayloadRefused(f"expected one payload, got {len(payloads)}")
    try:
        return TypeAdapter(model).validate_python(payloads[0])
    except ValidationError as err:
        raise PayloadRefused(f"not {expected} ({summarise(err)})") from None
