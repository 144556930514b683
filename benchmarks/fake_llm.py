"""Serves the tests' local OpenAI-compatible server in a process of its own until SIGTERM.

uv run python -m benchmarks.fake_llm

Its own process, so that answering hundreds of analysis calls neither competes with the
benchmark's timing loop for the GIL nor hides inside the worker's CPU figures.
"""

import signal
import sys
import threading

from benchmarks.fake_openai import FakeOpenAIServer

READY_PREFIX = "LLM listening on "


def main() -> int:
    stop = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: stop.set())
    server = FakeOpenAIServer().start()
    print(f"{READY_PREFIX}{server.url}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
