"""A compact rendering of a TrainingReport for an LLM prompt."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from traingym.protocol.report import HISTORY_KEYS, normalize_report


def compact_report_text(report: Mapping[str, Any], max_chars: int = 1200) -> str:
    """Render a report as a few short ``key: values`` lines for an LLM prompt, at most ``max_chars`` long.

    Numbers get 3 significant digits; names from the report are sanitised and quoted, so the rendering stays
    data (a token such as ``"ignore previous instructions"`` appears as a quoted value).
    """
    r = normalize_report(report)
    t, hp, hist = r["task"], r["hparams"], r["history"]
    lines = [
        f"task: {_clean(t['family']) or 'unknown'} ({_clean(t['modality']) or '?'}), {t['n_classes']} classes, "
        f"model {_clean(t['model']) or '?'}; step {r['step']}/{r['horizon']}",
        "hparams: " + " ".join(f"{k}={_num(v)}" for k, v in hp.items()),
    ]
    lines += [f"{k}: " + (" ".join(_num(v) for v in hist[k]) or "none") for k in HISTORY_KEYS]
    lines.append(f"gap: acc {_num(r['gap']['acc'])}, loss {_num(r['gap']['loss'])}; slopes/step: "
                 + ", ".join(f"{k} {_num(v)}" for k, v in r["slopes"].items()))
    if r["layers"]:
        lines.append("layers: " + "; ".join(
            f"{_clean(x['name'])} grad {_num(x['grad_norm'])} dead {_num(x['dead_fraction'])} "
            f"sat {_num(x['saturation'])} err {_num(x['error_share'])}" for x in r["layers"]))
    if r["flagged_tokens"]:
        lines.append("flagged tokens: " + ", ".join(
            f"{json.dumps(_clean(x['token'], 24))} z {_num(x['z'])} share {_num(x['share'])}"
            for x in r["flagged_tokens"]))
    if r["flagged_inputs"]:
        lines.append("flagged inputs: " + ", ".join(
            f"{_clean(x['feature'], 24)} z {_num(x['z'])} share {_num(x['share'])}" for x in r["flagged_inputs"]))
    counts = {k: v for k, v in r["events"]["counts"].items() if v > 0}
    recent = ", ".join(f"{_clean(e['type'], 24)}@{e['step']}" for e in r["events"]["recent"][-4:])
    lines.append("events: " + (", ".join(f"{_clean(k, 24)} x{v}" for k, v in sorted(counts.items())) or "none")
                 + (f" (recent: {recent})" if recent else ""))
    lines.append(f"diverged: {'yes' if r['diverged'] else 'no'}")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max(0, max_chars - 3)] + "..."


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.3g}" if math.isfinite(value) else ("nan" if math.isnan(value) else "inf")


def _clean(text: str, limit: int = 40) -> str:
    """Printable, single-line, bounded."""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit].strip()
