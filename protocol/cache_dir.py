"""TrainGym's cache directory: one environment variable, one function.

``$TRAINGYM_CACHE_DIR`` (default ``~/.cache/traingym``) holds everything TrainGym computes once and reuses: the
text-vector store, the converted SmolLM2 copy, the tokenised reviews, the tuned defaults of your own task
families. ``TRAINGYM_CACHE_DIR=off`` switches off the optional stores (text vectors, tuned-defaults sweeps: they
are then recomputed); what must exist on disk (the converted model, the tokenised corpus) then goes to the default
folder. ``$TRAINGYM_CACHE`` is the old name, still read (with a warning) when the new one is not set.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

CACHE_DIR_ENV = "TRAINGYM_CACHE_DIR"
DEPRECATED_CACHE_ENV = "TRAINGYM_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/traingym")


def _setting() -> str | None:
    value = os.environ.get(CACHE_DIR_ENV)
    if value:
        return value.strip()
    old = os.environ.get(DEPRECATED_CACHE_ENV)
    if old:
        warnings.warn(f"${DEPRECATED_CACHE_ENV} is deprecated; set ${CACHE_DIR_ENV} instead (same meaning)",
                      FutureWarning, stacklevel=3)
        return old.strip()
    return None


def optional_caches_enabled() -> bool:
    """False when ``$TRAINGYM_CACHE_DIR`` is ``off``: the optional stores are not kept."""
    value = _setting()
    return value is None or value.lower() != "off"


def cache_root() -> Path:
    """The cache directory (not created here)."""
    value = _setting()
    if value is None or value.lower() == "off":
        return DEFAULT_CACHE_DIR.expanduser()
    return Path(value).expanduser()
