"""Text augmentation for the reviews task: token masking that hits over-relevant tokens first.

At augmentation level ``k`` (0..4, the env's ``aug_level`` knob) every maskable token of a training batch is
replaced by ``[MASK]`` independently with probability :data:`BASE_MASK_PROB` ``[k]`` (0, 5, 10, 15, 20 %:
ordinary masking regularisation), except the tokens flagged as over-relevant (``TokenRelevanceStats``), which
are masked with the much higher :data:`FLAGGED_MASK_PROB` ``[k]`` (0, 50, 75, 90, 100 %). So raising the level
mostly takes away the features the model over-relies on (a planted shortcut, a spurious cue) and trains it on
the rest of the review, and only mildly masks everything else. Level 0 is the identity: no augmentation.

[PAD], [CLS] and [SEP] (``protected_ids``) and padding positions are never masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from traingym.envs.tasks.reviews_data import MASK_ID, PROTECTED_IDS

BASE_MASK_PROB: tuple[float, ...] = (0.0, 0.05, 0.10, 0.15, 0.20)
"""Masking probability of an ordinary token per augmentation level."""
FLAGGED_MASK_PROB: tuple[float, ...] = (0.0, 0.50, 0.75, 0.90, 1.00)
"""Masking probability of a flagged (over-relevant) token per augmentation level."""


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, level: int,
                flagged_token_ids: Sequence[int] | torch.Tensor = (), mask_id: int = MASK_ID, *,
                generator: torch.Generator,
                protected_ids: Sequence[int] = PROTECTED_IDS) -> torch.Tensor:
    """A copy of ``input_ids`` (N, L) with tokens replaced by ``mask_id`` as the module docstring describes.

    Draws one uniform number per position from ``generator`` (also at level 0, so the generator advances the
    same way whatever the level; level 0 returns an unchanged copy).
    """
    if not 0 <= level < len(BASE_MASK_PROB):
        raise ValueError(f"level must be in [0, {len(BASE_MASK_PROB) - 1}], got {level}")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids {tuple(input_ids.shape)}")
    device = input_ids.device
    u = torch.rand(input_ids.shape, generator=generator, device=generator.device).to(device)
    if level == 0:
        return input_ids.clone()
    protected = torch.as_tensor(list(protected_ids), dtype=input_ids.dtype, device=device)
    eligible = attention_mask.bool() & ~torch.isin(input_ids, protected)
    flagged_ids = torch.as_tensor(flagged_token_ids, dtype=input_ids.dtype, device=device).reshape(-1)
    flagged = torch.isin(input_ids, flagged_ids)
    prob = torch.where(flagged, FLAGGED_MASK_PROB[level], BASE_MASK_PROB[level])
    masked = eligible & (u < prob)
    return torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
