"""One-line descriptions of pydantic validation errors, for people reading logs and trails."""

from pydantic import ValidationError


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
