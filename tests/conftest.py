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
    # earlier runs cached. Only the converted SmolLM2 copy (~45 s to make, read-only once made) is reused.
    import tempfile
    from pathlib import Path

    from traingym.advisors.smollm import SMOLLM_CACHE_NAME, is_converted
    from traingym.protocol.cache_dir import cache_root

    converted = cache_root() / SMOLLM_CACHE_NAME
    os.environ["TRAINGYM_CACHE_DIR"] = session_cache = tempfile.mkdtemp(prefix="traingym-test-cache-")
    if is_converted(converted):
        (Path(session_cache) / SMOLLM_CACHE_NAME).symlink_to(converted, target_is_directory=True)

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
