"""What a run report shows, read from the files of one run directory only (it can be built on another machine).

Inputs (each optional except ``eval.json``): ``eval.json`` (the held-out table and settings), ``episodes.jsonl``
(per-episode hyperparameter, accuracy and loss trajectories of every policy), ``trajectories.jsonl`` (per-step
TrainingReport + diagnosis + move, :mod:`traingym.protocol.trajectory_format`), ``learning_curve.csv`` and
``learning_curve_baselines.json`` (periodic held-out evaluations), ``config.json`` (the run's arguments).

:func:`load_run_data` returns one compact JSON-able dict: numbers rounded to 4 significant digits, non-finite values
as ``None``, per-step detail (diagnosis, flagged neurons, events, flagged tokens) kept for the focus policy only
(the agent of a training run, else the first policy of the table), so the report stays small.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from traingym.protocol.moves import KNOBS
from traingym.protocol.run_files import (
    CONFIG_FILE,
    EPISODES_FILE,
    EVAL_JSON,
    LEARNING_CURVE_BASELINES,
    LEARNING_CURVE_CSV,
    TRAJECTORIES_FILE,
)

"""Where the report looks for the per-step export (``train_agent.py`` writes it there by default)."""
MAX_NEURON_ROWS = 40
"""Flagged (layer, neuron) rows kept per episode for the heatmap: the most often flagged."""
MAX_EPISODES = 128


class RunDataError(ValueError):
    """The directory is not a run directory (no ``eval.json``)."""


def _num(value: Any) -> float | None:
    """A float rounded to 4 significant digits; non-finite or missing -> None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return float(f"{number:.4g}")


def _nums(values: Any) -> list[float | None]:
    return [_num(v) for v in values] if isinstance(values, list) else []


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _summary(eval_json: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("test_accuracy", "test_accuracy_ci_low", "test_accuracy_ci_high", "val_auc", "val_auc_ci_low",
            "val_auc_ci_high", "divergence_rate", "diff_vs_reference", "diff_ci_low", "diff_ci_high", "win_rate")
    return [{"policy": str(row["policy"]), "episodes": int(row["episodes"]), **{k: _num(row.get(k)) for k in keys}}
            for row in eval_json.get("summary", [])]


def _learning_curve(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / LEARNING_CURVE_CSV
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    baselines_path = run_dir / LEARNING_CURVE_BASELINES
    baselines = json.loads(baselines_path.read_text()) if baselines_path.exists() else {}
    return {
        "timesteps": [int(float(r["timesteps"])) for r in rows],
        "test_accuracy": [_num(r["test_accuracy"]) for r in rows],
        "ci_low": [_num(r["ci_low"]) for r in rows],
        "ci_high": [_num(r["ci_high"]) for r in rows],
        "baselines": {str(k): _num(v) for k, v in baselines.items()},
    }


def _policy_series(record: dict[str, Any], full: bool) -> dict[str, Any]:
    series = {"lr": _nums(record.get("lr")), "weight_decay": _nums(record.get("weight_decay")),
              "aug_level": _nums(record.get("aug_level")), "val_accuracy": _nums(record.get("val_accuracy")),
              "test_accuracy": _num(record.get("test_accuracy")), "diverged": bool(record.get("diverged"))}
    if full:  # losses and moves of the focus policy only (size)
        series.update(train_loss=_nums(record.get("train_loss")), val_loss=_nums(record.get("val_loss")),
                      train_acc=_nums(record.get("train_acc")), moves=record.get("moves", []))
    return series


def _step_detail(record: dict[str, Any]) -> dict[str, Any]:
    """The per-step detail of one trajectory record: diagnosis, applied move, flagged neurons, events, tokens."""
    report = record.get("report") or {}
    diagnosis = record.get("diagnosis") or None
    detail: dict[str, Any] = {
        "step": int(record["step"]),
        "applied": [int(v) for v in record.get("move", [0] * len(KNOBS))],
        "aug_level": _num((report.get("hparams") or {}).get("aug_level")),
        "flagged": [{"layer": str(f.get("layer", "")), "ids": [int(i) for i in f.get("ids", [])],
                     "scores": _nums(f.get("scores"))} for f in report.get("flagged_neurons", [])],
        "events": [{"step": e.get("step"), "type": str(e.get("type", "")), "layer": e.get("layer"),
                    "ids": [int(i) for i in e.get("neuron_ids", [])][:16]}
                   for e in (report.get("events") or {}).get("recent", [])],
        "tokens": [{"token": str(t.get("token", "")), "z": _num(t.get("z")), "share": _num(t.get("share"))}
                   for t in report.get("flagged_tokens", [])],
    }
    if diagnosis is not None:
        detail["diagnosis"] = {"findings": [str(f) for f in diagnosis.get("findings", [])],
                               "text": str(diagnosis.get("text", "")),
                               "suggested": [int(v) for v in diagnosis.get("suggested_move", [0] * len(KNOBS))],
                               "advisor": str(diagnosis.get("used", "")),
                               "fallback": diagnosis.get("fallback_reason")}
    return detail


def _dedupe_events(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each report repeats the last few events; keep each (step, type, layer) once."""
    seen: dict[tuple[Any, str, Any], dict[str, Any]] = {}
    for detail in steps:
        for event in detail.pop("events"):
            seen.setdefault((event["step"], event["type"], event["layer"]), event)
    return sorted(seen.values(), key=lambda e: (e["step"] if e["step"] is not None else -1, e["type"]))


def _neuron_heatmap(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows ``layer:id`` (the most often flagged), columns steps, cells the flagged score (None: not flagged)."""
    counts: dict[str, int] = {}
    for detail in steps:
        for group in detail["flagged"]:
            for i in group["ids"]:
                key = f"{group['layer']}:{i}"
                counts[key] = counts.get(key, 0) + 1
    rows = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_NEURON_ROWS]
    rows.sort(key=lambda k: (k.split(":")[0], int(k.split(":")[1])))
    index = {k: r for r, k in enumerate(rows)}
    z: list[list[float | None]] = [[None] * len(steps) for _ in rows]
    for column, detail in enumerate(steps):
        for group in detail.pop("flagged"):
            for i, score in zip(group["ids"], group["scores"]):
                row = index.get(f"{group['layer']}:{i}")
                if row is not None:
                    z[row][column] = score
    return {"rows": rows, "steps": [d["step"] for d in steps], "z": z}


def load_run_data(run_dir: str | Path) -> dict[str, Any]:
    """Everything the report shows, from the files of ``run_dir`` (see the module docstring).

    Raises:
        RunDataError: ``run_dir`` has no ``eval.json``.
    """
    run_dir = Path(run_dir)
    eval_path = run_dir / EVAL_JSON
    if not eval_path.exists():
        raise RunDataError(f"{run_dir} is not a run directory: {eval_path} does not exist (train_agent.py and "
                           "python -m traingym.agents.evaluate write it)")
    eval_json = json.loads(eval_path.read_text())
    summary = _summary(eval_json)
    config_path = run_dir / CONFIG_FILE
    args = json.loads(config_path.read_text()).get("args", {}) if config_path.exists() else {}
    policies = [row["policy"] for row in summary]
    focus = args.get("algo") if args.get("algo") in policies else (policies[0] if policies else "")
    settings = eval_json.get("settings", {})

    episodes: dict[int, dict[str, Any]] = {}
    episodes_path = run_dir / EPISODES_FILE
    if episodes_path.exists():
        for record in _read_jsonl(episodes_path):
            index = int(record["instance_index"])
            if index not in episodes and len(episodes) >= MAX_EPISODES:
                continue
            episode = episodes.setdefault(index, {"instance_index": index, "seed": int(record.get("seed", index)),
                                                  "policies": {}, "steps": []})
            episode["policies"][str(record["policy"])] = _policy_series(record, record["policy"] == focus)

    trajectories_path = run_dir / TRAJECTORIES_FILE
    has_trajectories = trajectories_path.exists()
    if has_trajectories:
        for record in _read_jsonl(trajectories_path):
            if record.get("policy") == focus and int(record["instance_index"]) in episodes:
                episodes[int(record["instance_index"])]["steps"].append(_step_detail(record))
    modality = ""
    for episode in episodes.values():
        steps = sorted(episode["steps"], key=lambda d: d["step"])
        episode["events"] = _dedupe_events(steps)
        episode["neurons"] = _neuron_heatmap(steps)
        episode["steps"] = steps
    if has_trajectories:
        with open(trajectories_path) as handle:
            first = json.loads(handle.readline() or "{}")
        modality = str(((first.get("report") or {}).get("task") or {}).get("modality", ""))

    return {
        "name": run_dir.resolve().name,
        "env_id": str(settings.get("env_id", args.get("env", ""))),
        "modality": modality,
        "algo": str(args.get("algo", "")),
        "focus": focus,
        "policies": policies,
        "reference": str(eval_json.get("reference", "")),
        "knobs": list(KNOBS),
        "horizon": settings.get("horizon"),
        "summary": summary,
        "learning_curve": _learning_curve(run_dir),
        "has_trajectories": has_trajectories,
        "episodes": [episodes[i] for i in sorted(episodes)],
    }
