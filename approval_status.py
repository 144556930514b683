"""Show where a run stands, or list the runs waiting for a decision.

uv run python -m approval_status <workflow-id>
uv run python -m approval_status --pending
"""

import argparse
import asyncio
import sys

from temporalio.client import Client
from temporalio.service import RPCError

from client.connection import TemporalUnavailableError, connect, means_no_such_workflow
from client.listing import pending_runs
from client.status import StatusUnavailableError, query_status
from console_exit import interrupted, run_script
from console_format import format_status, terminal_safe
from encryption.codec import UndecryptablePayloadError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="approval_status", description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("workflow_id", nargs="?")
    target.add_argument("--pending", action="store_true", help="list runs awaiting a decision")
    args = parser.parse_args(argv)
    if args.workflow_id is not None and not args.workflow_id.strip():
        parser.error("the workflow ID must not be empty")
    return args


async def show_status(client: Client, workflow_id: str) -> str:
    return format_status(workflow_id, await query_status(client, workflow_id))


async def list_pending(client: Client) -> str:
    lines = [
        f"{terminal_safe(execution.id)}  "
        f"started {execution.start_time.isoformat(timespec='seconds')}"
        async for execution in pending_runs(client)
    ]
    return "\n".join(lines) if lines else "No runs are waiting for a decision."


async def report(args: argparse.Namespace) -> str:
    client = await connect()
    if args.pending:
        return await list_pending(client)
    return await show_status(client, args.workflow_id)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(asyncio.run(report(args)))
    except (TemporalUnavailableError, StatusUnavailableError, UndecryptablePayloadError) as err:
        print(err, file=sys.stderr)
        return 1
    except RPCError as err:
        if means_no_such_workflow(err):
            print(f"No workflow with ID {args.workflow_id!r}.", file=sys.stderr)
        else:
            print(terminal_safe(f"Temporal refused the request: {err.message}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted("approval_status only reads, so nothing was changed.")
    return 0


if __name__ == "__main__":
    run_script(main)
