"""Runs the human-in-the-loop workflow and its activities until Ctrl-C or SIGTERM."""

import asyncio
import logging
import signal
import sys

import openai
from temporalio.client import Client
from temporalio.worker import Worker

from activities.execute_action import execute_action
from activities.notify_approval_needed import notify_approval_needed
from activities.openai_responses import AnalysisActivities, configured_model, create_openai_client
from constants import OPENAI_API_KEY_ENV, OPENAI_BASE_URL_ENV, task_queue
from temporal_client import TemporalUnavailableError, connect
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow

MISSING_KEY_MESSAGE = (
    f"{OPENAI_API_KEY_ENV} is not set. Export your OpenAI API key, or point "
    f"{OPENAI_BASE_URL_ENV} at any OpenAI-compatible server (Ollama, vLLM, LM Studio, "
    f"llama.cpp) and set {OPENAI_API_KEY_ENV} to a value it accepts."
)


def build_worker(client: Client, queue: str, analysis: AnalysisActivities) -> Worker:
    """The worker's wiring, shared with the tests so they run exactly what users run."""
    return Worker(
        client,
        task_queue=queue,
        workflows=[HumanInTheLoopWorkflow],
        activities=[analysis.analyze_request, notify_approval_needed, execute_action],
    )


async def run_worker() -> None:
    """Serve the task queue; a stop signal drains in-flight tasks before exiting."""
    analysis = AnalysisActivities(create_openai_client(), configured_model())
    worker = build_worker(await connect(), task_queue(), analysis)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, stop.set)
    async with worker:
        logging.info("Worker started on task queue %r; Ctrl-C to stop.", task_queue())
        await stop.wait()
    logging.info("Worker stopped.")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(run_worker())
    except openai.OpenAIError:
        print(MISSING_KEY_MESSAGE, file=sys.stderr)
        return 1
    except TemporalUnavailableError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
