"""The HTML run report: built from a real (tiny) run directory, opened in a real headless Chromium."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from report_testkit import (  # noqa: F401  (browser is a fixture)
    ROOT,
    browser,
    console_errors,
    requested_urls,
    screenshot,
    wait_for,
)
from traingym.agents.args import Args
from traingym.agents.train import final_evaluation, train
from traingym.report import load_run_data, write_report
from traingym.report.run_data import RunDataError

TINY_RUN = {"total_timesteps": 48, "n_envs": 1, "horizon": 5, "steps_per_action": 5, "n_steps": 16,
            "eval_freq": 24, "eval_freq_episodes": 2, "eval_episodes": 3, "checkpoint_freq": 0,
            "baselines": ("keep", "step_decay"), "progress_bar": False, "tensorboard": False, "eval_workers": 1,
            "obs_keys": ("training_stats", "neurons", "diagnosis")}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real training run (PPO with the diagnosis key, 2 baselines, 3 held-out episodes): train + evaluate."""
    path = tmp_path_factory.mktemp("run") / "tiny"
    args = replace(Args(**TINY_RUN), run_dir=str(path))
    final_evaluation(args, train(args))
    return path


def _episodes(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]


def test_training_writes_the_report_and_the_data_it_needs(run_dir: Path) -> None:
    assert (run_dir / "report.html").stat().st_size > 1_000_000  # plotly.js is inside
    assert (run_dir / "trajectories.jsonl").exists()  # exported by default now
    data = load_run_data(run_dir)
    assert data["focus"] == "ppo" and data["policies"] == ["ppo", "keep", "step_decay"]
    assert [e["instance_index"] for e in data["episodes"]] == [0, 1, 2]
    episode = data["episodes"][0]
    ppo = episode["policies"]["ppo"]
    assert len(ppo["lr"]) == len(ppo["train_loss"]) == len(ppo["val_loss"]) == 6  # reset + 5 steps
    assert [s["step"] for s in episode["steps"]] == [0, 1, 2, 3, 4]
    assert all(s["diagnosis"]["text"] for s in episode["steps"])  # the agent's env has the diagnosis key
    raw = next(r for r in _episodes(run_dir) if r["policy"] == "ppo" and r["instance_index"] == 0)
    assert [s["applied"] for s in episode["steps"]] == raw["moves"]
    assert ppo["lr"] == [float(f"{v:.4g}") for v in raw["lr"]]
    assert episode["neurons"]["rows"] and len(episode["neurons"]["z"][0]) == 5
    assert "train_loss" not in episode["policies"]["keep"]  # losses of the focus policy only (size)


def test_non_finite_values_become_null_and_the_page_json_stays_strict(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("eval.json", "episodes.jsonl", "config.json"):
        (copy / name).write_text((run_dir / name).read_text())
    lines = _episodes(copy)
    lines[0]["train_loss"][1] = math.inf  # a diverged step
    (copy / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    data = load_run_data(copy)
    assert data["episodes"][0]["policies"]["ppo"]["train_loss"][1] is None
    assert data["has_trajectories"] is False and data["episodes"][0]["steps"] == []
    html = write_report(copy).read_text()
    assert "Infinity" not in html.split('id="run-data">')[1].split("</script>")[0]


def test_cli_writes_the_report_and_rejects_a_non_run_directory(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "traingym.report", str(run_dir), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    proc = subprocess.run([sys.executable, "-m", "traingym.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "eval.json does not exist" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(RunDataError):
        load_run_data(tmp_path)


def _plot_points(driver: Any, chart: str) -> list[dict[str, Any]]:
    """The traces Plotly drew in ``chart`` (its SVG trace groups, hidden traces excluded): name, x, y and the
    number of drawn point markers."""
    return driver.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "return [...el.querySelectorAll('.scatterlayer .trace')].map((g) => { const t = g.__data__[0].trace;"
        " return {name: t.name, x: t.x, y: t.y, points: g.querySelectorAll('path.point').length}; });", chart)


@pytest.mark.slow
def test_report_opens_offline_and_redraws_the_selected_episode(run_dir: Path, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.support.ui import Select

    path = (run_dir / "report.html").resolve()
    browser.get(path.as_uri())
    assert wait_for(lambda: browser.execute_script("return document.body.dataset.ready"), what="the report") == "1"
    assert console_errors(browser) == []
    urls = requested_urls(browser)
    assert [u for u in urls if not u.startswith("data:")] == [path.as_uri()], urls  # nothing but the file itself
    table = browser.find_element("id", "summary-table").text
    assert "ppo" in table and "step_decay" in table and "[" in table  # CIs

    raw = {(r["policy"], r["instance_index"]): r for r in _episodes(run_dir)}
    select = Select(browser.find_element("id", "episode"))
    for position, instance in ((2, 2), (1, 1)):
        select.select_by_index(position)
        wait_for(lambda i=instance: browser.execute_script("return document.body.dataset.episode") == str(i),
                 what=f"instance {instance} drawn")
        traces = {t["name"]: t for t in _plot_points(browser, "chart-lr")}
        assert set(traces) == {"ppo", "keep", "step_decay"}
        for policy, trace in traces.items():
            assert trace["y"] == pytest.approx(raw[(policy, instance)]["lr"], rel=1e-3)
            assert trace["points"] == len(trace["y"]) == 6  # one drawn marker per step
        acc = {t["name"]: t for t in _plot_points(browser, "chart-acc")}
        assert acc["ppo val acc"]["points"] == 6
        assert acc["ppo val acc"]["y"] == pytest.approx(raw[("ppo", instance)]["val_accuracy"], rel=1e-3)
        rows = browser.find_elements("css selector", "#diagnosis-table tr")
        assert len(rows) == 1 + 5  # header + one row per step
        assert browser.execute_script(
            "return document.querySelectorAll('#chart-diagnosis .scatterlayer path.point').length") >= 5
        assert browser.execute_script(
            "return document.getElementById('chart-neurons').data[0].type") == "heatmap"
    assert console_errors(browser) == []
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "report.png")


def _as_text_task(run_dir: Path, out: Path) -> Path:
    """A copy of ``run_dir`` whose focus-policy reports say what a text task's do: the planted token ``zqx`` is
    flagged from step 2 on, and augmentation (which masks flagged tokens first) is on from step 3."""
    out.mkdir()
    for name in ("eval.json", "episodes.jsonl", "config.json"):
        (out / name).write_text((run_dir / name).read_text())
    records = [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]
    for record in records:
        report = record["report"]
        report["task"]["modality"] = "text"
        report["hparams"]["aug_level"] = 1 if record["step"] >= 3 else 0
        report["flagged_tokens"] = ([{"token": "zqx", "z": 6.5 + record["step"], "share": 0.1 * record["step"]},
                                     {"token": "</script>", "z": 4.2, "share": 0.05}] if record["step"] >= 2 else [])
    (out / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


@pytest.mark.slow
def test_text_task_token_heatmap_marks_the_flagged_tokens_before_and_after_masking(
        run_dir: Path, tmp_path: Path, browser: Any) -> None:  # noqa: F811
    text_run = _as_text_task(run_dir, tmp_path / "text")
    data = load_run_data(text_run)
    assert data["modality"] == "text"
    browser.get(write_report(text_run).resolve().as_uri())
    assert wait_for(lambda: browser.execute_script("return document.body.dataset.ready"), what="the report") == "1"
    assert browser.find_element("id", "tokens-section").is_displayed()
    heatmap = browser.execute_script(
        "const el = document.getElementById('chart-tokens');"
        "return {x: el.data[0].x, z: el.data[0].z, shapes: el.layout.shapes.map((s) => s.x0),"
        " labels: [...el.querySelectorAll('.ytick text')].map((t) => t.textContent),"
        " drawn: el.querySelectorAll('.heatmaplayer image').length};")
    assert heatmap["labels"] == ["zqx", "</script>"]  # a token is shown as text, never read as markup
    assert heatmap["x"] == [0, 1, 2, 3, 4]
    assert heatmap["z"][0] == [None, None, pytest.approx(0.2), pytest.approx(0.3), pytest.approx(0.4)]
    assert heatmap["shapes"] == [2.5] and heatmap["drawn"] == 1  # the masking line between steps 2 and 3
    assert console_errors(browser) == []
