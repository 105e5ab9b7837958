"""The stake of choosing *which* inputs to decorrelate: what the cell of a patch shortcut is worth to a move.

On ``TrainGym/DigitsPathologies-v0`` the augmentation move decorrelates the inputs that the input relevance flagged,
so an agent gets the neuron log's *which* without observing it (``docs/results/pathology_probe.md``,
``agent_pathologies_kickstart_128_no_relevance.md``). An observation can only add *which* where the agent picks the
target itself and a blind pick costs: ``TrainGym/DigitsPatchPathologies-v0`` (``mask_grid``). This script measures
the stake there, outside the env: its SpuCo-style shortcut (a label-coded 2x2 patch at one cell of a 4x4 grid,
drawn per instance, on a training image with probability s; in validation and test the patch of a random class at
the same rate, :class:`~traingym.envs.tasks.pathologies.DigitsPatchPathologies`) drops test accuracy;
decorrelating the right cell during training
(:func:`~traingym.envs.tasks.augmentation.decorrelate_inputs`, as the move does) recovers it; the wrong cell, or a
cell drawn at random each env step (what a policy that does not know the cell can do), does not.

The target networks, splits, optimizer, batch size and K x horizon are the env's (its TRAIN instances, their
pathology replaced by the patch, at its tuned LR / WD)::

    python -m traingym.experiments.region_masking --write
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from traingym.agents.stats import bootstrap_mean, paired_difference
from traingym.agents.tuned_defaults import tuned_defaults
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.hparams import make_optimizer
from traingym.envs.tasks.augmentation import decorrelate_inputs
from traingym.envs.tasks.digits import SHAPE
from traingym.envs.tasks.input_cells import input_cells
from traingym.envs.tasks.pathologies import PATCH_GRID, DigitsPatchPathologies, patch_cell
from traingym.envs.torch_threads import torch_threads
from traingym.experiments.results import write_result
from traingym.protocol.checks import check_range
from traingym.protocol.cli import parse_cli

ENV_ID = "TrainGym/DigitsPatchPathologies-v0"
ARMS: tuple[str, ...] = ("clean", "no remedy", "right cell", "wrong cell", "random cell per step")
"""``clean``: no patch; the others: the patch planted, and which cell (if any) training decorrelates."""


@dataclass(frozen=True)
class Args:
    """Measure the stake of an agent-chosen decorrelation target (module docstring)."""

    instances: int = 12
    """TRAIN instances (the pathology mixture's architectures and data splits, planted with the patch)."""
    strengths: tuple[float, ...] = (1.0, 0.75, 0.5)
    """Patch rates s (the mixture's spurious strengths are drawn from [0.5, 1])."""
    write: bool = False
    """Write docs/results/region_masking.md."""

    def __post_init__(self) -> None:
        check_range("instances", self.instances, 2, 512, integer=True)
        for s in self.strengths:
            check_range("strengths", s, 0.0, 1.0)


def train_once(instance: dict[str, Any], rate: float, arm: str, config: TrainingEnvConfig, hparams: dict[str, Any]
               ) -> float:
    """Test accuracy of one training run (the env's K x horizon SGD steps, no family augmentation) under ``arm``,
    on the instance's split as ``TrainGym/DigitsPatchPathologies-v0`` plants it (the patch at rate ``rate``;
    ``clean``: no patch)."""
    family = DigitsPatchPathologies()
    planted = {**instance, "pathology": "clean" if arm == "clean" else "spurious",
               "strength": 0.0 if arm == "clean" else rate, "label_noise": 0.0}
    split = family.split(planted, config.val_size)
    seed = int(instance["split_seed"])
    cells = input_cells(SHAPE, PATCH_GRID)
    cell = patch_cell(seed)
    rng = np.random.default_rng([seed, 0x7A7C])
    generator = torch.Generator().manual_seed(seed)
    model = family.build_model(instance, split.n_classes, generator)
    optimizer = make_optimizer(model, hparams["lr"], hparams["weight_decay"], config.optimizer, config.momentum)
    k, batch = config.steps_per_action, config.batch_size
    for _ in range(config.horizon):
        target = {"right cell": cells[cell], "wrong cell": cells[(cell + len(cells) // 2 + 1) % len(cells)],
                  "random cell per step": cells[int(rng.integers(len(cells)))]}.get(arm)
        idx = torch.randint(split.x_train.shape[0], (k, batch), generator=generator)
        xs, ys = split.x_train[idx], split.y_train[idx]
        if target is not None:
            xs = decorrelate_inputs(xs, target.tolist(), 1, generator)
        for xb, yb in zip(xs, ys):
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float((model.eval()(split.x_test).argmax(1) == split.y_test).float().mean())


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(Args, argv, "python -m traingym.experiments.region_masking")
    config = TrainingEnvConfig(task="digits_patch_pathologies")
    hparams = tuned_defaults(ENV_ID)
    instances = DigitsPatchPathologies().instance_set("train", config.optimizer)[: args.instances]
    results: dict[str, dict[str, list[float]]] = {}
    with torch_threads(1):
        for rate in args.strengths:
            results[str(rate)] = {arm: [train_once(dict(inst), rate, arm, config, hparams) for inst in instances]
                                  for arm in ARMS}
            row = {arm: round(float(np.mean(v)), 3) for arm, v in results[str(rate)].items()}
            print(f"s={rate}: {row}", flush=True)
    lines = [f"TRAIN instances 0..{args.instances - 1} of `{ENV_ID}` (their architectures and data splits, the "
             f"pathology replaced by the patch; clean: no patch), SGD at the env's tuned LR {hparams['lr']} and WD "
             f"{hparams['weight_decay']}, {config.horizon} env steps x K={config.steps_per_action}, batch "
             f"{config.batch_size}. Test accuracy (the patch of a random class at the same rate), mean [95% CI over "
             "instances]; the right-cell differences paired by instance.", "",
             "| patch rate s | " + " | ".join(ARMS) + " | right − no remedy | right − random cell |",
             "|---" * (len(ARMS) + 3) + "|"]
    for rate, arms in results.items():
        cells = []
        for arm in ARMS:
            cells.append(bootstrap_mean(arms[arm]).format())
        for other in ("no remedy", "random cell per step"):
            cells.append(paired_difference(arms["right cell"], arms[other]).format(signed=True))
        lines.append(f"| {rate} | " + " | ".join(cells) + " |")
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_result("region_masking", "The stake of an agent-chosen decorrelation target: a patch shortcut at an "
                     "unknown cell", body, data={"hparams": hparams, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
