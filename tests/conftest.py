"""Shared fixtures. Tests use small K and horizons so the default run stays fast."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)
if "TRAINGYM_CACHE_DIR" not in os.environ:
    # Each test session starts with an empty cache (text vectors, tuned defaults): tests never depend on what
    # earlier runs cached. Only the converted local LLM copies (1-2 minutes each to make, read-only once made) are
    # reused.
    import tempfile
    from pathlib import Path

    from traingym.advisors.gemma import GEMMA
    from traingym.advisors.smollm import SMOLLM

    converted = {model.cache_name: model.cache_dir() for model in (SMOLLM, GEMMA)}
    os.environ["TRAINGYM_CACHE_DIR"] = session_cache = tempfile.mkdtemp(prefix="traingym-test-cache-")
    for name, directory in converted.items():
        if SMOLLM.is_converted(directory):
            (Path(session_cache) / name).symlink_to(directory, target_is_directory=True)

import traingym.envs  # noqa: E402,F401  (registers the environments)

FAST = {"steps_per_action": 5, "val_size": 128}
"""Env kwargs that keep a test episode cheap."""


@pytest.fixture
def fast_kwargs() -> dict:
    return dict(FAST)


@pytest.fixture
def planted_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A unique fake API key in ``OPENAI_API_KEY`` (the only place keys come from), for leak checks."""
    import secrets

    key = "sk-planted-" + secrets.token_hex(24)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.delenv("TRAINGYM_OPENAI_BASE_URL", raising=False)
    return key
