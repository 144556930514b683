"""The agent's tools and the operations database they act on.

uv run python -m tools                  list the tools and where the database is
uv run python -m tools --preview JSON   what a call would change, e.g.
    '{"tool": "pay_invoice", "arguments": {"invoice_id": 2, "from_account": "operating"}}'
uv run python -m tools --reset          delete the database and seed a fresh one
"""

import argparse
import sys

from pydantic import ValidationError

from models.tools import ToolCall
from models.validation import summarise
from tools.database import database_path, ensure_database, reset_database
from tools.execution import preview_call
from tools.registry import TOOLS, InvalidToolCall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools", description=__doc__.splitlines()[0])
    parser.add_argument("--preview", metavar="JSON", help="preview a tool call; changes nothing")
    parser.add_argument("--reset", action="store_true", help="re-create the seeded database")
    args = parser.parse_args(argv)
    path = database_path()
    if args.reset:
        reset_database(path)
        print(f"Seeded a fresh operations database at {path}")
        return 0
    if args.preview is not None:
        return _preview(args.preview)
    ensure_database(path)
    print(f"Operations database: {path}")
    for tool in TOOLS.values():
        kind = "read-only" if tool.read_only else "always asks" if tool.always_asks else "asks"
        print(f"  {tool.name:<18} {kind:<12} {tool.description}")
    return 0


def _preview(text: str) -> int:
    try:
        call = ToolCall.model_validate_json(text)
        preview = preview_call(database_path(), call)
    except ValidationError as err:
        print(f"Not a tool call: {summarise(err)}", file=sys.stderr)
        return 1
    except InvalidToolCall as err:
        print(f"Refused: {err}", file=sys.stderr)
        return 1
    print(f"{preview.tool}: {preview.summary}")
    for line in preview.details:
        print(f"  {line}")
    for row in preview.sample_rows:
        print(f"  {row}")
    print(f"Fingerprint: {preview.fingerprint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
