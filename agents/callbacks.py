"""SB3 callbacks: TrainGym metrics for TensorBoard, and periodic evaluation on held-out instances."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize
from traingym.agents.checkpoints import atomic_write_json, save_agent
from traingym.agents.episodes import EpisodeSettings, make_policy_env, run_policy_object
from traingym.agents.observation_spec import ObservationSpec
from traingym.agents.policies import AgentPolicy
from traingym.agents.stats import bootstrap_mean
from traingym.protocol.moves import KNOBS
from traingym.protocol.run_files import BEST_MODEL_INFO, LEARNING_CURVE_CSV

MOVE_NAMES = {-1: "dec", 0: "keep", 1: "inc"}
LEARNING_CURVE_FIELDS = ("timesteps", "test_accuracy", "ci_low", "ci_high", "val_auc", "divergence_rate")


class TrainGymMetricsCallback(BaseCallback):
    """Logs TrainGym scalars from the training envs' ``info``:

    - ``episode/test_accuracy``, ``episode/val_accuracy``, ``episode/initial_val_accuracy``,
      ``episode/diverged``, ``episode/final_log10_lr`` (means over the episodes finished since the last dump);
    - ``moves/<knob>_<dec|keep|inc>``: fraction of steps with that move;
    - ``advisor/calls_per_step`` and ``advisor/fallbacks_per_step`` when the env reports ``info["advisor"]``.
    """

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals.get("infos", [])
        dones = self.locals.get("dones", np.zeros(len(infos), dtype=bool))
        moves = np.array([info["move"] for info in infos if "move" in info], dtype=np.int64).reshape(-1, len(KNOBS))
        if moves.size:
            for k, knob in enumerate(KNOBS):
                for value, name in MOVE_NAMES.items():
                    self.logger.record_mean(f"moves/{knob}_{name}", float(np.mean(moves[:, k] == value)))
        advisors = [info["advisor"] for info in infos if isinstance(info.get("advisor"), dict)]
        if advisors:
            calls = float(np.mean([bool(a.get("called")) for a in advisors]))
            self.logger.record_mean("advisor/calls_per_step", calls)
            self.logger.record_mean("advisor/fallbacks_per_step",
                                    float(np.mean([a.get("fallback_reason") is not None for a in advisors])))
        for info, done in zip(infos, dones):
            if done and "test_accuracy" in info:
                self.logger.record_mean("episode/test_accuracy", float(info["test_accuracy"]))
                self.logger.record_mean("episode/val_accuracy", float(info["val_accuracy"]))
                self.logger.record_mean("episode/initial_val_accuracy", float(info["initial_val_accuracy"]))
                self.logger.record_mean("episode/diverged", float(info["diverged"]))
                self.logger.record_mean("episode/final_log10_lr", float(np.log10(info["lr"])))
        return True


class HeldOutEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps (and at the start and end of training), evaluate the current agent on the
    held-out instances of ``settings`` (final test accuracy); log ``eval/*`` scalars, append a row to
    ``learning_curve.csv`` and save ``best_model.zip`` (with its VecNormalize statistics) atomically when the
    mean test accuracy improves. The best score lives in ``best_model.json``, so it survives a resume.
    """

    def __init__(self, settings: EpisodeSettings, run_dir: str | Path, eval_freq: int, observation: ObservationSpec,
                 discrete_actions: bool, normalizer: VecNormalize | None = None, seed: int = 0, verbose: int = 0,
                 knobs: Sequence[str] = KNOBS) -> None:
        super().__init__(verbose)
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.eval_freq = eval_freq
        self.observation, self.discrete_actions = observation, discrete_actions
        self.knobs = tuple(knobs)
        self.normalizer = normalizer
        self.seed = seed
        self.curve_path = self.run_dir / LEARNING_CURVE_CSV
        self.best_path = self.run_dir / "best_model.zip"
        self._next = 0
        self._last_eval = -1
        self._env: Any = None
        self._policy: AgentPolicy | None = None

    def _init_callback(self) -> None:
        self._policy = AgentPolicy(self.model, self.normalizer, self.observation, self.discrete_actions, self.knobs)
        self._env = make_policy_env(self._policy, self.settings)
        best = self.run_dir / BEST_MODEL_INFO
        self.best = json.loads(best.read_text())["test_accuracy"] if best.exists() else -np.inf
        self._next = (self.model.num_timesteps // self.eval_freq + 1) * self.eval_freq
        if self.model.num_timesteps == 0:
            self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.evaluate()
            self._next = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
        return True

    def _on_training_end(self) -> None:
        # The learning curve ends at the final step, unless an evaluation ran just before it (the last rollout).
        if self.num_timesteps - self._last_eval >= self.eval_freq // 4:
            self.evaluate()
        if self._env is not None:
            self._env.close()
            self._env = None

    def evaluate(self) -> float:
        """One evaluation at the current step; returns the mean final test accuracy."""
        assert self._policy is not None
        episodes = run_policy_object(self._policy, "agent", self.settings, env=self._env)
        test = bootstrap_mean([e.test_accuracy for e in episodes], self.seed)
        auc = float(np.mean([e.val_auc for e in episodes]))
        diverged = float(np.mean([e.diverged for e in episodes]))
        step = self.model.num_timesteps
        self.logger.record("eval/test_accuracy", test.mean)
        self.logger.record("eval/val_auc", auc)
        self.logger.record("eval/divergence_rate", diverged)
        self._append_curve({"timesteps": step, "test_accuracy": test.mean, "ci_low": test.low, "ci_high": test.high,
                            "val_auc": auc, "divergence_rate": diverged})
        if test.mean > self.best:
            self.best = test.mean
            save_agent(self.model, self.normalizer, self.best_path)
            atomic_write_json(self.run_dir / BEST_MODEL_INFO, {"timesteps": step, "test_accuracy": test.mean})
        if self.verbose:
            print(f"eval at {step}: test accuracy {test.format()} (best {self.best:.3f})")
        self._last_eval = step
        return test.mean

    def _append_curve(self, row: dict[str, Any]) -> None:
        new = not self.curve_path.exists()
        with open(self.curve_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LEARNING_CURVE_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)


def read_learning_curve(path: str | Path) -> list[dict[str, float]]:
    """Rows of ``learning_curve.csv`` (a resumed run may repeat a step: the last row per step wins)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = {int(float(r["timesteps"])): {k: float(v) for k, v in r.items()} for r in csv.DictReader(handle)}
    return [rows[k] for k in sorted(rows)]
