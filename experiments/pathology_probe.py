"""What each observation key tells about the cause of a run's trouble: a linear probe from the observation an agent
sees at step t to the planted pathology.

An agent's policy (an MLP over the current observation) can act on the cause of a run's trouble only as far as its
observation names that cause. If ``training_stats`` alone name the planted pathology as well as ``training_stats``
+ ``neurons`` + ``diagnosis`` do, the full observation has nothing to add for an agent on that mixture, whatever
it adds to a hand controller or through moves that act on the flagged features themselves.

Runs the keep policy (the instance's own hyperparameters, nothing moved) with every observation key on TRAIN
instances and on held-out ones; per key set and step, fits a logistic regression (scikit-learn, standardised
features, its inverse regularisation chosen by 5-fold cross-validation on the TRAIN observations) and scores it on
the held-out observations::

    python -m traingym.experiments.pathology_probe --write

The observations are saved under ``--cache-dir`` (one ``.npz`` per instance set), so re-scoring does not rerun the
episodes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from traingym.agents.stats import bootstrap_mean, paired_difference
from traingym.envs.config import OBS_KEYS
from traingym.envs.tasks.base import TRAIN_SET_SIZE
from traingym.experiments.mixture_args import check_mixture_args
from traingym.experiments.results import write_result
from traingym.protocol.checks import check_range
from traingym.protocol.cli import IntTuple, parse_cli
from traingym.protocol.moves import keep_action

KEY_SETS: tuple[tuple[str, ...], ...] = (
    ("training_stats",), ("neurons",), ("diagnosis",), ("training_stats", "neurons"), OBS_KEYS)
"""The observation key sets probed: each key alone, stats + neurons, and the full observation."""
STATS, FULL = KEY_SETS[0], KEY_SETS[-1]
INVERSE_REGULARISATION: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
"""The logistic regression's C, chosen per fit by 5-fold cross-validation (log loss) on the TRAIN observations."""


@dataclass(frozen=True)
class ProbeArgs:
    """A linear probe from each observation key set, at each probed step, to the planted pathology."""

    env: str = "TrainGym/DigitsPathologies-v0"
    """A pathology mixture id (its instances name their planted pathology)."""
    train_episodes: int = 256
    """TRAIN instances 0..N-1 the probe is fitted on."""
    episodes: int = 128
    """Held-out instances 0..N-1 it is scored on."""
    steps: IntTuple = (1, 2, 5, 10, 20)
    """Env steps after which the observation is probed (1..horizon)."""
    advisor: str = "heuristic"
    """The advisor behind the diagnosis key."""
    cache_dir: str = "runs/pathology_probe"
    """Folder of the saved observations."""
    write: bool = False
    """Write docs/results/pathology_probe.md (and .json)."""

    def __post_init__(self) -> None:
        check_mixture_args(self.env, self.episodes)
        check_range("--train-episodes", self.train_episodes, 10, TRAIN_SET_SIZE, integer=True)
        if not self.steps or sorted(set(self.steps)) != list(self.steps) or self.steps[0] < 1:
            raise ValueError(f"--steps must be increasing env steps >= 1, got {list(self.steps)}")
        horizon = gym.spec(self.env).max_episode_steps or 0
        if self.steps[-1] > horizon:
            raise ValueError(f"--steps must be at most the env's horizon {horizon}, got {list(self.steps)}")


def collect(env_id: str, instance_set: str, episodes: int, steps: Sequence[int], advisor: str
            ) -> dict[str, np.ndarray]:
    """Every observation key after each of ``steps`` under the keep policy: ``{key: (episodes, len(steps), dim)}``,
    plus ``"pathology"`` (episodes,) from the instance (ground truth, never part of an observation)."""
    env = gym.make(env_id, instance_set=instance_set, obs_keys=list(OBS_KEYS), advisor=advisor)
    per_key: dict[str, list[np.ndarray]] = {key: [] for key in OBS_KEYS}
    labels: list[str] = []
    try:
        for i in range(episodes):
            _, info = env.reset(seed=i, options={"instance_index": i})
            labels.append(str(info["instance"].get("pathology", "clean")))
            kept: dict[str, list[np.ndarray]] = {key: [] for key in OBS_KEYS}
            for t in range(1, steps[-1] + 1):
                obs, _, terminated, truncated, _ = env.step(keep_action(env.action_space))
                if t in steps:
                    for key in OBS_KEYS:
                        kept[key].append(obs[key])
                if terminated:  # a diverged run: its last observation stands for the later steps
                    for key in OBS_KEYS:
                        kept[key] += [obs[key]] * (len(steps) - len(kept[key]))
                    break
                if truncated:
                    break
            for key in OBS_KEYS:
                per_key[key].append(np.stack(kept[key]))
    finally:
        env.close()
    return {**{key: np.stack(v) for key, v in per_key.items()}, "pathology": np.array(labels)}


def cached_observations(args: ProbeArgs, instance_set: str, episodes: int) -> dict[str, np.ndarray]:
    """:func:`collect`'s arrays, from ``--cache-dir`` when they were saved with the same settings."""
    settings = {"env": args.env, "instance_set": instance_set, "episodes": episodes, "steps": list(args.steps),
                "advisor": args.advisor}
    path = Path(args.cache_dir) / f"{instance_set}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            if json.loads(str(stored["settings"])) == settings:
                return {key: stored[key] for key in stored.files if key != "settings"}
    arrays = collect(args.env, instance_set, episodes, args.steps, args.advisor)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, settings=json.dumps(settings), **arrays)
    return arrays


def probe(train: dict[str, np.ndarray], test: dict[str, np.ndarray], keys: Sequence[str], step_index: int
          ) -> np.ndarray:
    """The held-out predictions of a logistic regression fitted on the TRAIN observations of ``keys`` at one step."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([arrays[key][:, step_index] for key in keys], axis=1)

    model = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                         {"logisticregression__C": INVERSE_REGULARISATION}, cv=5, scoring="neg_log_loss")
    model.fit(features(train), train["pathology"])
    return model.predict(features(test))


def score(args: ProbeArgs, train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per step and key set: held-out accuracy [CI], macro-F1, recall per pathology, and the paired difference in
    correct answers of the full observation against training_stats alone."""
    from sklearn.metrics import f1_score, recall_score

    truth = test["pathology"]
    groups = sorted(set(truth.tolist()) | set(train["pathology"].tolist()))
    result: dict[str, Any] = {}
    for s, step in enumerate(args.steps):
        rows: dict[str, Any] = {}
        correct: dict[tuple[str, ...], np.ndarray] = {}
        for keys in KEY_SETS:
            predicted = probe(train, test, keys, s)
            correct[keys] = (predicted == truth).astype(np.float64)
            recall = recall_score(truth, predicted, labels=groups, average=None, zero_division=0)
            rows[" + ".join(keys)] = {
                "accuracy": bootstrap_mean(correct[keys]).__dict__,
                "macro_f1": float(f1_score(truth, predicted, labels=groups, average="macro", zero_division=0)),
                "recall": dict(zip(groups, map(float, recall), strict=True))}
        rows["full - stats"] = paired_difference(correct[FULL], correct[STATS]).__dict__
        result[str(step)] = rows
    return result


def tables(args: ProbeArgs, result: dict[str, Any], counts: dict[str, int]) -> str:
    groups = sorted(counts)
    lines: list[str] = []
    for step, rows in result.items():
        diff = rows["full - stats"]
        lines += [f"### After step {step}", "",
                  "| observation | held-out accuracy [95% CI] | macro-F1 | " + " | ".join(f"recall {g}" for g in groups)
                  + " |", "|---|---|---|" + "---|" * len(groups)]
        for name, row in rows.items():
            if name == "full - stats":
                continue
            acc = row["accuracy"]
            lines.append(f"| {name} | {acc['mean']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] | "
                         f"{row['macro_f1']:.3f} | " + " | ".join(f"{row['recall'][g]:.2f}" for g in groups) + " |")
        lines += ["", f"Full observation − training_stats, correct answers per instance: {diff['mean']:+.3f} "
                      f"[{diff['low']:+.3f}, {diff['high']:+.3f}].", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(ProbeArgs, argv, "python -m traingym.experiments.pathology_probe")
    train = cached_observations(args, "train", args.train_episodes)
    test = cached_observations(args, "test", args.episodes)
    result = score(args, train, test)
    counts = {g: int((test["pathology"] == g).sum()) for g in sorted(set(test["pathology"].tolist()))}
    body = (f"Env `{args.env}`, keep policy (nothing moved), advisor `{args.advisor}`. A logistic regression per "
            f"observation key set and step, fitted on TRAIN instances 0..{args.train_episodes - 1} and scored on "
            f"held-out instances 0..{args.episodes - 1} (planted pathology per held-out instance: "
            + ", ".join(f"{g} {n}" for g, n in counts.items()) + "). Chance: the largest class share, "
            f"{max(counts.values()) / args.episodes:.2f}.\n\n" + tables(args, result, counts))
    print(body)
    if args.write:
        write_result("pathology_probe", "What each observation key tells about the planted pathology", body,
                     {"args": {**args.__dict__, "steps": list(args.steps)}, "counts": counts, "result": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
