"""The one report builder: a run directory -> one self-contained ``report.html`` (opens offline, no CDN).

The page inlines plotly.js from the ``plotly`` wheel (gzip-compressed and base64-encoded: the full bundle alone is
~4.8 MB; the browser inflates it with ``DecompressionStream``), the run data as JSON (:func:`load_run_data`) and
a small script (``assets/report.js``) that draws the Plotly charts for the selected episode.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from traingym.protocol.run_files import REPORT_FILE
from traingym.report.run_data import load_run_data

CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:; connect-src 'none'")
"""The page may load nothing from anywhere (its own inline scripts, styles and data: images only)."""


@functools.lru_cache(maxsize=1)
def packed_plotly_js() -> str:
    """plotly.js of the installed ``plotly`` wheel, gzip-compressed (deterministic: mtime 0) and base64-encoded."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def _asset(name: str) -> str:
    return resources.files("traingym.report").joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` can end it early)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def _fmt(value: float | None, signed: bool = False) -> str:
    return "—" if value is None else (f"{value:+.3f}" if signed else f"{value:.3f}")


def summary_table(data: dict[str, Any]) -> str:
    """The held-out table (mean final test accuracy with its 95% bootstrap CI, paired difference) as HTML."""
    reference = html.escape(data["reference"])
    head = ("<tr><th>policy</th><th>n</th><th>final test acc [95% CI]</th><th>val-acc AUC</th><th>diverged</th>"
            f"<th>Δ test acc vs {reference} [95% CI]</th><th>wins</th></tr>")
    rows = []
    for r in data["summary"]:
        diff = ("—" if r["diff_vs_reference"] is None else
                f"{_fmt(r['diff_vs_reference'], True)} [{_fmt(r['diff_ci_low'], True)}, "
                f"{_fmt(r['diff_ci_high'], True)}]")
        wins = "—" if r["win_rate"] is None else f"{r['win_rate']:.0%}"
        diverged = "—" if r["divergence_rate"] is None else f"{r['divergence_rate']:.0%}"
        cls = ' class="focus"' if r["policy"] == data["focus"] else ""
        rows.append(f"<tr{cls}><td>{html.escape(r['policy'])}</td><td>{r['episodes']}</td>"
                    f"<td>{_fmt(r['test_accuracy'])} [{_fmt(r['test_accuracy_ci_low'])}, "
                    f"{_fmt(r['test_accuracy_ci_high'])}]</td><td>{_fmt(r['val_auc'])}</td><td>{diverged}</td>"
                    f"<td>{diff}</td><td>{wins}</td></tr>")
    return f'<table id="summary-table">{head}{"".join(rows)}</table>'


def render_report(data: dict[str, Any]) -> str:
    """The HTML of a report for :func:`load_run_data`'s ``data``."""
    title = f"TrainGym run report: {data['name']}"
    subtitle = (f"{html.escape(data['env_id'])} · focus policy <b>{html.escape(data['focus'])}</b> · "
                f"{len(data['episodes'])} held-out episodes · horizon {data['horizon']}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{html.escape(title)}</title>
<style>{_asset("report.css")}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="sub">{subtitle}</p>
<h2>Held-out evaluation</h2>
{summary_table(data)}
<div id="chart-curve" class="chart"></div>
<h2>One episode</h2>
<label for="episode">Held-out instance:</label> <select id="episode"></select>
<p id="episode-outcome" class="sub"></p>
<div class="grid3"><div id="chart-lr" class="chart"></div><div id="chart-wd" class="chart"></div>
<div id="chart-aug" class="chart"></div></div>
<div class="grid2"><div id="chart-acc" class="chart"></div><div id="chart-loss" class="chart"></div></div>
<h3>Diagnosis timeline</h3>
<div id="chart-diagnosis" class="chart"></div>
<table id="diagnosis-table"></table>
<h3>Flagged neurons</h3>
<div id="chart-neurons" class="chart"></div>
<section id="tokens-section" hidden><h3>Token relevance</h3><div id="chart-tokens" class="chart"></div></section>
<script type="application/json" id="run-data">{_script_json(data)}</script>
<script type="application/octet-stream" id="plotly-gz">{packed_plotly_js()}</script>
<script>{_asset("report.js")}</script>
</body>
</html>
"""


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Build the report of ``run_dir`` into ``out`` (default ``<run_dir>/report.html``); returns the path."""
    run_dir = Path(run_dir)
    path = Path(out) if out is not None else run_dir / REPORT_FILE
    text = render_report(load_run_data(run_dir))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
