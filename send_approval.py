"""Send an approver's decision to a waiting workflow.

uv run python -m send_approval <workflow-id> <request-id> approve|reject ["notes"]
"""

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from temporalio.service import RPCError, RPCStatusCode

from constants import APPROVAL_DECISION_SIGNAL
from models.models import ApprovalDecision
from temporal_client import TemporalUnavailableError, connect

VERDICTS = {"approve": True, "reject": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="send_approval", description=__doc__.splitlines()[0])
    parser.add_argument("workflow_id")
    parser.add_argument("request_id", help="the Request ID printed in the approval notice")
    parser.add_argument("verdict", choices=VERDICTS)
    parser.add_argument("notes", nargs="?", default="", help="reviewer notes")
    return parser.parse_args(argv)


async def send(args: argparse.Namespace) -> None:
    client = await connect()
    decision = ApprovalDecision(
        request_id=args.request_id,
        approved=VERDICTS[args.verdict],
        reviewer_notes=args.notes,
        decided_at=datetime.now(UTC),
    )
    await client.get_workflow_handle(args.workflow_id).signal(APPROVAL_DECISION_SIGNAL, decision)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(send(args))
    except TemporalUnavailableError as err:
        print(err, file=sys.stderr)
        return 1
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            print(f"No running workflow with ID {args.workflow_id!r}.", file=sys.stderr)
        else:
            print(f"Temporal refused the decision: {err.message}", file=sys.stderr)
        return 1
    print(f"Sent {args.verdict} for request {args.request_id} to workflow {args.workflow_id}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
