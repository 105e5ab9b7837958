"""Atomic saving of agents and periodic checkpoints, and finding the last checkpoint to resume from.

A file is written to a temporary file in its final directory, flushed to disk and renamed over the final name
(``os.replace`` is atomic on POSIX), so a reader, or a run killed with SIGKILL, never sees a half-written file.
A checkpoint is the model, the VecNormalize statistics and (off-policy algorithms) the replay buffer; the pointer
``checkpoints/latest.json`` is replaced last, so it only ever names complete checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

NORMALIZER_SUFFIX = ".vecnormalize.pkl"
REPLAY_SUFFIX = ".replay_buffer.pkl"
LATEST = "latest.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_save(path: str | Path, save: Callable[[str], None]) -> Path:
    """Call ``save(tmp_path)`` on a temporary file next to ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the final file the usual permissions
        save(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    def save(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return atomic_save(path, save)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def normalizer_path(model_path: str | Path) -> Path:
    """Where the VecNormalize statistics of the model saved at ``model_path`` (``x.zip``) live."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + NORMALIZER_SUFFIX)


def save_normalizer(normalizer: VecNormalize, path: str | Path) -> None:
    """Pickle the normalizer's statistics and settings (VecNormalize drops its venv when pickled)."""
    def save(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            pickle.dump(normalizer, handle)

    atomic_save(path, save)


def load_normalizer(path: str | Path) -> VecNormalize:
    """Load statistics saved by :func:`save_normalizer` (without a venv: use ``normalize_obs`` only)."""
    with open(path, "rb") as handle:
        normalizer = pickle.load(handle)  # our own file, written by save_normalizer
    normalizer.training = False
    return normalizer


def save_agent(model: BaseAlgorithm, normalizer: VecNormalize | None, model_path: str | Path) -> Path:
    """Save the model and (when used) its VecNormalize statistics, each atomically."""
    model_path = Path(model_path)
    atomic_save(model_path, model.save)
    if normalizer is not None:
        save_normalizer(normalizer, normalizer_path(model_path))
    return model_path


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint named by ``latest.json``."""

    step: int
    model: Path
    normalizer: Path | None
    replay_buffer: Path | None


def latest_checkpoint(directory: str | Path) -> Checkpoint | None:
    """The checkpoint ``directory/latest.json`` names, or None when there is none yet."""
    directory = Path(directory)
    pointer = directory / LATEST
    if not pointer.exists():
        return None
    data = json.loads(pointer.read_text())

    def resolve(name: str | None) -> Path | None:
        return None if name is None else directory / name

    model = resolve(data["model"])
    assert model is not None
    return Checkpoint(int(data["step"]), model, resolve(data.get("normalizer")), resolve(data.get("replay_buffer")))


def remove_temporaries(directory: str | Path) -> None:
    """Delete temporary files a killed run left behind."""
    for tmp in Path(directory).glob(".tmp-*"):
        with contextlib.suppress(OSError):
            tmp.unlink()


class AtomicCheckpointCallback(BaseCallback):
    """Every ``save_freq`` env steps (and at the end of training), write a checkpoint atomically: the model, the
    VecNormalize statistics and, for off-policy algorithms, the replay buffer; then point ``latest.json`` at it
    and delete all but the newest ``keep`` checkpoints.

    Unlike SB3's ``CheckpointCallback`` it counts env steps (``num_timesteps``, which survives a resume) and never
    leaves a partial file under a final name.
    """

    def __init__(self, directory: str | Path, save_freq: int, normalizer: VecNormalize | None = None,
                 keep: int = 2, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.directory = Path(directory)
        self.save_freq = save_freq
        self.normalizer = normalizer
        self.keep = keep
        self._next = 0

    def _init_callback(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.directory)
        self._next = (self.model.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.save()
            self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq
        return True

    def _on_training_end(self) -> None:
        current = latest_checkpoint(self.directory)
        if current is None or current.step != self.num_timesteps:
            self.save()

    def save(self) -> Checkpoint:
        """Write one checkpoint at the current step."""
        step = self.model.num_timesteps
        stem = f"step_{step:010d}"
        model_path = save_agent(self.model, self.normalizer, self.directory / f"{stem}.zip")
        replay: Path | None = None
        if getattr(self.model, "replay_buffer", None) is not None:
            replay = atomic_save(self.directory / f"{stem}{REPLAY_SUFFIX}",
                                 self.model.save_replay_buffer)  # type: ignore[attr-defined]
        normalizer = normalizer_path(model_path) if self.normalizer is not None else None
        atomic_write_json(self.directory / LATEST, {
            "step": step, "model": model_path.name, "normalizer": None if normalizer is None else normalizer.name,
            "replay_buffer": None if replay is None else replay.name})
        if self.verbose:
            print(f"checkpoint at step {step}: {model_path}")
        self._prune()
        return Checkpoint(step, model_path, normalizer, replay)

    def _prune(self) -> None:
        models = sorted(self.directory.glob("step_*.zip"))
        for old in models[: max(0, len(models) - self.keep)]:
            for path in (old, normalizer_path(old), old.with_name(old.stem + REPLAY_SUFFIX)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
