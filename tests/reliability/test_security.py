"""Security: API keys never leak, the key never travels to another host, and nothing is unpickled unsafely.

* A unique key is planted in ``OPENAI_API_KEY`` (the only place keys come from); an env with an ``openai:`` advisor
  runs against a local server, and a smoke ``train_agent.py`` run writes a whole run directory. The key must reach
  the server's ``Authorization`` header (so the check is not vacuous) and appear nowhere else: no file of the run
  directory (zip members and TensorBoard files included), no stdout/stderr or log line, no ``info``, no
  object the env holds.
* Safe loading: an AST scan of the project's Python files: every ``torch.load`` passes ``weights_only=True``, and
  nothing else deserialises pickles (``pickle``/``cloudpickle``/``dill``/``joblib`` loads, ``np.load`` with
  ``allow_pickle=True``, ``pandas.read_pickle``, ``yaml.load``) except the documented exceptions below; no
  ``eval``/``exec``, no ``shell=True``. The trust boundary of the exceptions is the run directory: files the run
  wrote itself. (SB3 model zips, loaded with SB3's ``load``, also carry cloudpickled entries such as the learning
  rate schedule: load only agents you trained, like any SB3 model.)
"""

from __future__ import annotations

import ast
import gc
import json
import logging
import os
import subprocess
import sys
import types
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import traingym.envs  # noqa: F401  (registers the ids)
from advisors_testkit import Reply, ScriptedChatServer

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("protocol", "envs", "agents", "advisors", "hpo", "report", "doctor", "benchmarks", "train_agent.py")
VALID_ANSWER = json.dumps({"findings": ["plateau"], "confidence": 0.7,
                           "move": {"lr": 1, "weight_decay": 0, "aug_level": 0, "neuron_scale": 0},
                           "text": "loss flat; raise the learning rate."})




def leaks(haystack: bytes | str, key: str) -> bool:
    """The key, or a long piece of it (a truncated or wrapped copy), is in ``haystack``."""
    text = haystack.decode("utf-8", "replace") if isinstance(haystack, bytes) else haystack
    secret = key.removeprefix("sk-planted-")
    return key in text or any(secret[i:i + 16] in text for i in range(0, len(secret) - 15, 8))


def reachable_strings(root: object, limit: int = 500_000) -> list[str]:
    """Every str / bytes reachable from ``root`` through its attributes and containers (not through modules,
    functions or classes, which lead to ``os.environ`` and the whole interpreter)."""
    skip = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.FrameType, type)
    seen: set[int] = set()
    stack: list[object] = [root]
    found: list[str] = []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or obj is os.environ or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found.append(obj)
        elif isinstance(obj, bytes):
            found.append(obj.decode("utf-8", "replace"))
        elif not isinstance(obj, (np.ndarray, torch.Tensor, int, float)):
            stack.extend(gc.get_referents(obj))
    return found


def files_leaking(directory: Path, key: str) -> list[str]:
    """Files under ``directory`` containing the key, also inside zip archives (SB3 models)."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if leaks(data, key):
            found.append(str(path))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [f"{path}!{name}" for name in archive.namelist() if leaks(archive.read(name), key)]
    return found


def test_planted_key_reaches_only_the_authorization_header_of_the_env_run(
        planted_key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    script = [Reply(status=500, raw=b"{}"), Reply(status=429, raw=b"{}", headers={"Retry-After": "0"}),
              Reply(content=VALID_ANSWER), Reply(raw=b"not json"), Reply(content=VALID_ANSWER)]
    with ScriptedChatServer(script) as server:
        env = gym.make("TrainGym/DigitsMLP-v0", max_episode_steps=6, steps_per_action=1, val_size=32,
                       encoder="hashing", advisor="openai:test-model", advisor_base_url=server.base_url,
                       advisor_call="every_step", advisor_accounting=True, advisor_max_retries=1,
                       log_path=str(tmp_path / "events.jsonl"), render_mode="ansi")
        infos: list[dict[str, Any]] = [env.reset(seed=0)[1]]
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(np.array([2, 1, 1, 1]))
            infos.append(info)
            done = terminated or truncated
        texts = [json.dumps(infos), repr(env), repr(env.unwrapped._diagnosis), str(env.render()),
                 json.dumps(env.unwrapped.report()), json.dumps(env.unwrapped.advisor_accounting),
                 json.dumps(env.unwrapped.config.__dict__)]
        stored = reachable_strings(env)  # everything the env holds: configs, advisor, backend, caches
        env.close()
    assert any(a["advisor"]["used"] == "openai:test-model" for a in infos)  # the LLM path really ran
    auth = [r["headers"].get("Authorization") for r in server.requests]
    assert auth and all(a == f"Bearer {planted_key}" for a in auth)
    out, err = capfd.readouterr()
    log_lines = [f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    assert log_lines, "the fallbacks must have logged something (else this check is vacuous)"
    assert server.base_url in stored  # the walk reached the advisor's backend
    for name, haystack in [("infos / reprs / report / config", "\n".join(texts)), ("env objects", "\n".join(stored)),
                           ("stdout", out), ("stderr", err), ("log records", "\n".join(log_lines))]:
        assert not leaks(haystack, planted_key), f"API key leaked into {name}"
    assert files_leaking(tmp_path, planted_key) == []


def test_key_is_not_sent_to_a_redirect_target(planted_key: str) -> None:
    """A 3xx from the server is not followed: the Authorization header never travels to another host/port."""
    with ScriptedChatServer([Reply(content=VALID_ANSWER)]) as other:
        redirect = Reply(status=307, raw=b"", headers={"Location": other.base_url + "/chat/completions"})
        with ScriptedChatServer([redirect]) as server:
            env = gym.make("TrainGym/DigitsMLP-v0", steps_per_action=1, val_size=32, encoder="hashing",
                           advisor="openai:test-model", advisor_base_url=server.base_url, advisor_max_retries=0)
            _, info = env.reset(seed=0)
            env.close()
    assert server.requests and other.requests == []
    assert info["advisor"]["used"] == "heuristic" and info["advisor"]["fallback_reason"] == "http_307"


def test_local_advisor_traffic_bypasses_proxies(planted_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``HTTP_PROXY`` set, requests to a loopback advisor go direct: the key is not handed to a proxy."""
    with ScriptedChatServer([Reply(content=VALID_ANSWER)]) as proxy, \
            ScriptedChatServer([Reply(content=VALID_ANSWER)]) as server:
        proxy_url = proxy.base_url.removesuffix("/v1")
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        env = gym.make("TrainGym/DigitsMLP-v0", steps_per_action=1, val_size=32, encoder="hashing",
                       advisor="openai:test-model", advisor_base_url=server.base_url, advisor_max_retries=0)
        _, info = env.reset(seed=0)
        env.close()
    assert info["advisor"]["used"] == "openai:test-model"
    assert len(server.requests) == 1 and proxy.requests == []


def test_configs_hold_no_secrets() -> None:
    """Keys are configured by the *name* of an environment variable only; no field can hold a key itself."""
    from traingym.advisors.config import DiagnosisConfig
    from traingym.agents.args import Args
    from traingym.envs.config import TrainingEnvConfig

    for cls in (TrainingEnvConfig, DiagnosisConfig, Args):
        for field in fields(cls):
            name = field.name.lower()
            if any(word in name.split("_") for word in ("key", "token", "secret", "password", "credential")):
                assert name.endswith("_env"), f"{cls.__name__}.{field.name} could hold a secret"


@pytest.mark.slow
def test_planted_key_appears_nowhere_in_a_training_run(planted_key: str, tmp_path: Path) -> None:
    """A smoke ``train_agent.py`` run with an ``openai:`` advisor (server given by ``TRAINGYM_OPENAI_BASE_URL``):
    model, checkpoints, normalizer, config, evaluation tables, plots, TensorBoard files, trajectories and the
    console output are all free of the key."""
    run_dir = tmp_path / "run"
    with ScriptedChatServer([Reply(content=VALID_ANSWER)]) as server:
        env = {**os.environ, "TRAINGYM_OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": planted_key}
        proc = subprocess.run(
            [sys.executable, str(ROOT / "train_agent.py"), "--smoke", "--run-dir", str(run_dir), "--n-envs", "1",
             "--obs-keys", "training_stats", "diagnosis", "--advisor", "openai:test-model",
             "--baselines", "keep", "advisor_greedy", "--eval-episodes", "2",
             "--export-trajectories", str(run_dir / "trajectories.jsonl"), "--no-progress-bar", "--verbose", "1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert server.requests and all(r["headers"].get("Authorization") == f"Bearer {planted_key}"
                                   for r in server.requests)
    written = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert "config.json" in written and "model.zip" in written and any(p.startswith("tb/") for p in written)
    assert files_leaking(run_dir, planted_key) == []
    assert not leaks(proc.stdout, planted_key) and not leaks(proc.stderr, planted_key)
    print(f"\nscanned {len(written)} run-directory files and {len(proc.stdout) + len(proc.stderr)} characters of "
          f"console output; {len(server.requests)} requests carried the key to the server only")


# ---------------------------------------------------------------------------------------------- safe loading

DOCUMENTED_EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("agents/checkpoints.py", "load_normalizer", "pickle.load"):
        "SB3's VecNormalize statistics are a pickle by SB3's design; the file is the run's own, written by "
        "save_normalizer in the same run directory, never downloaded.",
    ("agents/train.py", "restore", "VecNormalize.load"):
        "SB3's loader for the same VecNormalize pickle, read from the run's own checkpoint directory on --resume.",
    ("agents/train.py", "restore", "model.load_replay_buffer"):
        "SB3's replay-buffer pickle (DQN), read from the run's own checkpoint directory on --resume.",
}
"""(file, enclosing function, call) -> why this deserialisation is acceptable."""

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str) -> list[tuple[str, str, int]]:
    """``(enclosing function, call, line)`` of every unsafe deserialisation or code execution in ``source``."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    aliases: dict[str, str] = {}  # local name -> module.attr, from ``from x import y [as z]``
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name

    def enclosing(node: ast.AST) -> str:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node.name
        return "<module>"

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        resolved = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
        module, _, attr = resolved.rpartition(".")
        bad = False
        if resolved in ("torch.load", "th.load"):
            bad = not _is_true(_keyword(node, "weights_only"))
        elif module.split(".")[0] in PICKLE_MODULES and attr in ("load", "loads", "open", "Unpickler"):
            bad = True
        elif resolved in ("numpy.load", "np.load"):
            bad = _is_true(_keyword(node, "allow_pickle"))
        elif resolved in ("pandas.read_pickle", "pd.read_pickle", "yaml.load", "yaml.unsafe_load",
                          "yaml.full_load", "eval", "exec"):
            bad = not (resolved == "yaml.load" and "SafeLoader" in _dotted(_keyword(node, "Loader") or ast.Name("")))
        elif (attr == "load" and module.endswith("VecNormalize")) or attr == "load_replay_buffer":
            bad = True  # SB3 unpickles VecNormalize statistics and replay buffers
        elif resolved.startswith("subprocess.") or resolved in ("os.system", "os.popen"):
            bad = _is_true(_keyword(node, "shell")) or resolved in ("os.system", "os.popen")
        if bad:
            found.append((enclosing(node), name, node.lineno))
    return found


def project_files() -> list[Path]:
    files: list[Path] = []
    for entry in SCANNED:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return files


def test_scanner_catches_unsafe_calls() -> None:
    """The scanner itself: each unsafe form is found, each safe one is not."""
    unsafe = '''
import pickle, torch, numpy as np, pandas as pd, yaml, subprocess
from pickle import loads as pl
from torch import load as tl
def f(p):
    torch.load(p)
    torch.load(p, weights_only=False)
    tl(p)
    pickle.load(open(p, "rb"))
    pl(b"")
    np.load(p, allow_pickle=True)
    pd.read_pickle(p)
    yaml.load(p)
    eval("1")
    subprocess.run("ls", shell=True)
'''
    safe = '''
import torch, numpy as np, yaml, json, subprocess
def g(p, model):
    torch.load(p, weights_only=True)
    np.load(p)
    yaml.safe_load(p)
    yaml.load(p, Loader=yaml.SafeLoader)
    json.loads(p)
    model.eval()
    subprocess.run(["ls"])
'''
    assert len(unsafe_calls(unsafe)) == 10, unsafe_calls(unsafe)
    assert unsafe_calls(safe) == []


def test_no_unsafe_deserialisation_in_the_project() -> None:
    files = project_files()
    assert len(files) > 20 and any(f.name == "train_agent.py" for f in files)
    violations, used = [], set()
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        for function, call, line in unsafe_calls(path.read_text()):
            key = (relative, function, call)
            if key in DOCUMENTED_EXCEPTIONS:
                used.add(key)
            else:
                violations.append(f"{relative}:{line} in {function}(): {call}")
    assert violations == [], "unsafe deserialisation / execution (use weights_only=True, JSON or safetensors):\n" + \
        "\n".join(violations)
    stale = set(DOCUMENTED_EXCEPTIONS) - used
    assert not stale, f"documented exceptions no longer needed, remove them: {sorted(stale)}"
