"""llama.cpp's own OpenAI-compatible HTTP server, embedded in this process by ``xllamacpp``.

Answers are made repeatable on the server, so every client gets them without sending
anything llama.cpp-specific: temperature 0, and no prompt cache (llama.cpp warns that
reusing a cached prompt can change the logits, hence the answer). A client cannot safely
ask for these itself: OpenAI refuses unknown fields such as ``cache_prompt``, and its
reasoning models refuse ``temperature``.
"""

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_llm.model_file import INSTALL_HINT, model_name

HOST = "127.0.0.1"
# Enough for the analysis prompt and answer of any chat model; a small KV cache loads fast.
CONTEXT_TOKENS = 2048
# An upper bound on any answer, for clients that send no max_tokens; the analysis schema's
# bounded strings keep a proposal far below it.
MAX_ANSWER_TOKENS = 512
# Half the cores: the model shares the machine with Temporal's server and the worker, and
# llama.cpp's threads spin while waiting, so one that loses its core stalls every answer.
# The cores this process may use (a container's or taskset's limit), where the OS says so.
USABLE_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
THREADS = max(1, (USABLE_CORES or 2) // 2)
READY_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.1


class LocalModelError(RuntimeError):
    """The local model server cannot start; the message says why and what to do."""


@dataclass
class LocalModel:
    """A running server: where clients reach it, under which name, and how long it took."""

    base_url: str  # what OPENAI_BASE_URL should be, ending in /v1
    name: str  # what OPENAI_MODEL should be
    load_seconds: float
    _server: Any  # the xllamacpp.Server; llama.cpp stops when it is released


@contextmanager
def serving(model_path: Path, port: int = 0) -> Iterator[LocalModel]:
    """Serve ``model_path`` on 127.0.0.1 (``port`` 0: a free one) until the block ends."""
    model = start(model_path, port)
    try:
        yield model
    finally:
        model._server = None  # the last reference: llama.cpp's server shuts down here


def start(model_path: Path, port: int = 0) -> LocalModel:
    """Load the model and return once the server answers."""
    try:
        import xllamacpp
    except ImportError as err:
        raise LocalModelError(f"llama.cpp's server is not installed; {INSTALL_HINT}.") from err
    started = time.monotonic()
    try:
        server = xllamacpp.Server(_params(xllamacpp.CommonParams(), model_path, port))
    except RuntimeError as err:  # llama.cpp says only "Failed to init server"
        where = f"port {port}" if port else "a free port"
        raise LocalModelError(
            f"llama.cpp could not serve {model_path} on {HOST}, {where} ({err}); "
            "is the port taken, or the file a model llama.cpp cannot run?"
        ) from err
    base_url = f"{server.listening_address}/v1"
    _wait_until_ready(base_url)
    return LocalModel(base_url, model_name(model_path), time.monotonic() - started, server)


def _params(params: Any, model_path: Path, port: int) -> Any:
    params.model.path = str(model_path)
    params.model_alias = {model_name(model_path)}
    params.hostnames = [HOST]
    params.port = port
    params.n_ctx = CONTEXT_TOKENS
    params.n_predict = MAX_ANSWER_TOKENS
    params.cpuparams.n_threads = THREADS
    params.cpuparams_batch.n_threads = THREADS
    params.sampling.temp = 0.0
    params.cache_prompt = False
    params.ui = False  # an API for the agent, not a chat page
    params.cors_origins = ""  # no web page the user visits may call it
    params.verbosity = 0  # llama.cpp's own log only on errors
    return params


def _wait_until_ready(base_url: str) -> None:
    """llama.cpp answers /health with 503 while loading; return once it says ok."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=5) as answer:
                if json.load(answer).get("status") == "ok":
                    return
        except (OSError, ValueError):
            pass  # not listening or still loading
        if time.monotonic() > deadline:
            raise LocalModelError(f"The model server at {base_url} did not become ready.")
        time.sleep(READY_POLL_SECONDS)
