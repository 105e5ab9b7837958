"""PNG plots of evaluations, learning curves and ablations (matplotlib's Agg canvas, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from traingym.protocol.moves import KNOBS

if TYPE_CHECKING:
    from traingym.agents.episodes import EpisodeResult
    from traingym.agents.evaluate import PolicySummary

DPI = 110


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_evaluation(results: dict[str, list[EpisodeResult]], summaries: Sequence[PolicySummary],
                    path: str | Path) -> Path:
    """Box plot of final test accuracy per policy, with the mean and its 95% bootstrap CI."""
    labels = list(results)
    fig = Figure(figsize=(1.6 + 1.3 * len(labels), 4.2), layout="constrained")
    ax = fig.add_subplot()
    data = [[e.test_accuracy for e in results[label]] for label in labels]
    ax.boxplot(data, tick_labels=labels, showfliers=True, widths=0.5)
    by_label = {s.policy: s for s in summaries}
    for x, label in enumerate(labels, 1):
        ci = by_label[label].test_accuracy
        ax.errorbar([x], [ci.mean], yerr=[[ci.mean - ci.low], [ci.high - ci.mean]], fmt="o", color="C3",
                    capsize=4, label="mean ± 95% CI" if x == 1 else None)
    n = len(next(iter(results.values()))) if results else 0
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"Held-out instances (n={n})")
    ax.tick_params(axis="x", labelrotation=20)
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_hparam_trajectories(results: dict[str, list[EpisodeResult]], path: str | Path) -> Path:
    """Learning rate, weight decay and augmentation level over the episode: median and interquartile band
    across instances per policy, plus thin lines for the first three instances."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 4)
    panels: list[tuple[str, str, bool]] = [("lr", "learning rate", True), ("weight_decay", "weight decay", True),
                                           ("aug_level", "augmentation level", False),
                                           ("val_accuracy", "validation accuracy", False)]
    for color, (label, episodes) in enumerate(results.items()):
        for ax, (key, title, log) in zip(axes, panels):
            series = _padded([getattr(e, key) for e in episodes])
            values = np.log10(series) if log else series
            steps = np.arange(values.shape[1])
            median = np.nanmedian(values, axis=0)
            low, high = np.nanpercentile(values, [25, 75], axis=0)
            ax.plot(steps, median, color=f"C{color}", label=label, lw=2)
            ax.fill_between(steps, low, high, color=f"C{color}", alpha=0.12)
            for row in values[:3]:
                ax.plot(steps, row, color=f"C{color}", lw=0.6, alpha=0.5)
            ax.set_title(title)
            ax.set_xlabel("env step")
            ax.set_ylabel(f"log10 {title}" if log else title)
    axes[0].legend(fontsize="small")
    fig.suptitle("Hyperparameter trajectories on held-out instances (median, IQR, first 3 instances)")
    return _save(fig, path)


def _padded(rows: list[list[float]]) -> np.ndarray:
    """Rows of unequal length (diverged episodes end early) padded with NaN."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def move_frequencies(episodes: Sequence[EpisodeResult]) -> np.ndarray:
    """Fraction of steps with each move per knob: shape (knobs, 3) for decrease / keep / increase."""
    # The knobs' entries only (an env with mask_grid appends the cell).
    moves = np.array([m[:len(KNOBS)] for e in episodes for m in e.moves], dtype=np.int64).reshape(-1, len(KNOBS))
    if moves.size == 0:
        return np.zeros((len(KNOBS), 3))
    return np.stack([(moves == v).mean(axis=0) for v in (-1, 0, 1)], axis=1)


def plot_move_frequencies(results: dict[str, list[EpisodeResult]], path: str | Path) -> Path:
    """Per knob, the fraction of decrease / keep / increase moves of each policy."""
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    axes = fig.subplots(1, len(KNOBS), sharey=True)
    labels = list(results)
    width = 0.8 / max(1, len(labels))
    for k, label in enumerate(labels):
        freq = move_frequencies(results[label])
        for ax, knob, row in zip(axes, KNOBS, freq):
            ax.bar(np.arange(3) + (k - (len(labels) - 1) / 2) * width, row, width, label=label, color=f"C{k}")
            ax.set_xticks(range(3), ["decrease", "keep", "increase"])
            ax.set_title(knob)
    axes[0].set_ylabel("fraction of steps")
    axes[-1].legend(fontsize="small")
    fig.suptitle("Move frequencies on held-out instances")
    return _save(fig, path)


def plot_learning_curve(rows: Sequence[dict[str, Any]], path: str | Path, baselines: dict[str, float] | None = None
                        ) -> Path:
    """Held-out test accuracy (mean and 95% CI) of the agent vs env steps; dashed lines for baselines."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    steps = np.array([float(r["timesteps"]) for r in rows])
    mean = np.array([float(r["test_accuracy"]) for r in rows])
    low = np.array([float(r["ci_low"]) for r in rows])
    high = np.array([float(r["ci_high"]) for r in rows])
    ax.plot(steps, mean, marker="o", label="agent")
    ax.fill_between(steps, low, high, alpha=0.2)
    for k, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{k + 1}", label=label)
    ax.set_xlabel("env steps")
    ax.set_ylabel("final test accuracy (held-out)")
    ax.set_title("Learning curve (periodic evaluation instances)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_ablation(rows: Sequence[dict[str, Any]], path: str | Path, reference: tuple[str, float] | None = None
                  ) -> Path:
    """Mean final test accuracy with 95% CI per ablation cell (rows with ``cell``, ``test_accuracy``, CI); an
    optional dashed reference line (label, value), e.g. the keep baseline."""
    fig = Figure(figsize=(3.0 + 1.1 * len(rows), 4.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    mean = np.array([r["test_accuracy"] for r in rows])
    err = np.array([[r["test_accuracy"] - r["ci_low"] for r in rows],
                    [r["ci_high"] - r["test_accuracy"] for r in rows]])
    ax.bar(x, mean, yerr=err, capsize=4, color=[f"C{i}" for i in range(len(rows))])
    ax.set_xticks(x, [r["cell"] for r in rows], rotation=25, ha="right")
    ax.set_ylabel("final test accuracy (held-out)")
    if reference is not None:
        ax.axhline(reference[1], ls="--", lw=1, color="k", label=reference[0])
        ax.legend(loc="lower right", fontsize="small")
    ax.set_title("Ablation: observation keys × advisor\n(seeds pooled per instance, 95% CI)", fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
