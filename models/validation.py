"""One-line descriptions of pydantic validation errors, for people reading logs and trails."""

from pydantic import ValidationError


def summarise(err: ValidationError) -> str:
    """``field: problem; field: problem`` instead of pydantic's multi-line report."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in err.errors()
    )
