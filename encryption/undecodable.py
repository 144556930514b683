"""How a worker hands a workflow a payload it cannot decode, instead of failing on it.

Two things make a payload undecodable: the codec cannot open it (a key the worker does not
hold, a payload altered or forged), or the payload converter cannot read it (an encoding it
does not know, malformed data). Raised where the SDK decodes, either one fails the workflow
task on every retry (the codec) or drops a signal unrecorded (the converter). So, for a
workflow only:

- the worker's codec (``EncryptionCodec.for_worker``) replaces a payload it cannot open by
  a marker payload (``UNDECODABLE_ENCODING``, with the reason), and
- ``WorkerPayloadConverter`` turns a marker, or any payload it cannot read, into
  ``models.validation.Undecodable`` where no type is asked for: the ``*payloads`` of the
  signal handlers, whose ``single_payload`` refuses it with the reason, recorded in the
  audit trail. Where a type is asked for (the workflow's input, an update's argument, a
  child's result) it raises: an update is then rejected to its sender, and a run whose
  input cannot be read keeps failing its task loudly, as it must, until a worker can.

Both apply only in a workflow's serialization context, so activity results and activity
inputs, and everything a client reads, still fail as before: for those a missing key is
an operator's fix, not a refusal. The codec cannot do this alone: the SDK decodes a signal's
arguments and the workflow's input in the same pass, with the same context; only the
converter learns whether a type was asked for.
"""

import copy
from collections.abc import Sequence
from typing import Any, Self

from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import SerializationContext, WorkflowSerializationContext

from models.validation import Undecodable, summarise

UNDECODABLE_ENCODING = b"binary/undecodable"
REASON_METADATA = "undecodable-reason"
SHOWN_CHARS = 64  # of a key ID or an encoding name, which a forged payload may make huge
REASON_CHARS = 300


class UndecodablePayloadError(Exception):
    """A payload where a type was asked for, which the worker could not decode."""


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to ``SHOWN_CHARS``."""
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...")


def undecodable_payload(reason: str, message: str) -> Payload:
    """The marker the worker's codec puts in place of a payload it cannot open: ``reason``
    for an audit trail, ``message`` (with the remedy) for an error. It lives only in the
    worker's memory: decoded payloads are never stored."""
    return Payload(
        metadata={"encoding": UNDECODABLE_ENCODING, REASON_METADATA: reason.encode()},
        data=message.encode(),
    )


class WorkerPayloadConverter(PydanticPayloadConverter):
    """The pydantic converter, which hands ``Undecodable`` to untyped handler parameters in
    a workflow's context instead of raising; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._marks_undecodable = False

    def with_context(self, context: SerializationContext) -> Self:
        scoped = super().with_context(context)
        marks = isinstance(context, WorkflowSerializationContext)
        if scoped is self:
            if marks == self._marks_undecodable:
                return self
            scoped = copy.copy(self)
        scoped._marks_undecodable = marks
        return scoped

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        if self._marks_undecodable and type_hints is None:
            return [self._value_or_undecodable(payload) for payload in payloads]
        hints: list[type | None] = [*(type_hints or [])]
        for index, payload in enumerate(payloads):
            hint = hints[index] if index < len(hints) else None
            if payload.metadata.get("encoding") == UNDECODABLE_ENCODING and hint is not RawValue:
                raise UndecodablePayloadError(payload.data.decode(errors="replace"))
        return super().from_payloads(payloads, type_hints)

    def _value_or_undecodable(self, payload: Payload) -> Any:
        try:
            (value,) = super().from_payloads([payload])
        except Exception as err:  # whatever the reason, it is refused, not raised
            return Undecodable(self._reason(payload, err)[:REASON_CHARS])
        return value

    def _reason(self, payload: Payload, err: Exception) -> str:
        encoding = payload.metadata.get("encoding")
        if encoding is None:
            return "it names no encoding"
        if encoding == UNDECODABLE_ENCODING:
            return payload.metadata.get(REASON_METADATA, b"").decode(errors="replace")
        name = shown(encoding.decode(errors="replace"))
        if encoding not in self.converters:
            return f"unknown encoding {name}"
        detail = summarise(err) if isinstance(err, ValidationError) else type(err).__name__
        return f"not valid {name}: {detail}"
