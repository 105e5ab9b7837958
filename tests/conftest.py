"""Shared fixtures. Tests use small K and horizons so the default run stays fast."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)

import traingym.envs  # noqa: E402,F401  (registers the environments)

FAST = {"steps_per_action": 5, "val_size": 128}
"""Env kwargs that keep a test episode cheap."""


@pytest.fixture
def fast_kwargs() -> dict:
    return dict(FAST)
