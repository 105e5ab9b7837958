"""Seeing a training run: the HTML run report (:func:`write_report`) and the live watch-and-steer page
(:class:`~traingym.report.live.WatchServer`, :class:`~traingym.report.live.WebDecider`).

``python -m traingym.report RUN_DIR`` writes ``RUN_DIR/report.html``; ``train_agent.py`` and
``python -m traingym.agents.evaluate`` write it at their end. The live page needs the ``report`` extra
(FastAPI, uvicorn); the report needs only ``plotly``.
"""

from traingym.report.html import REPORT_FILE, render_report, write_report
from traingym.report.run_data import RunDataError, load_run_data

__all__ = ["REPORT_FILE", "RunDataError", "load_run_data", "render_report", "write_report"]
