"""README.md runs as written: every Python block as a script, the user-family example end to end from a package
outside the repository, and the batched snippet without its ``__main__`` guard failing with one clear message."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)
EXAMPLE = re.compile(r"<!-- example:user-family -->\n(.*?)<!-- /example:user-family -->", re.S)
PACKAGE_FILE = "# my_project/my_pkg/tasks.py"
GUARD_ADVICE = 'put it under `if __name__ == "__main__":`'


def _blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(text) if lang == language]


PYTHON_BLOCKS = _blocks(README, "python")


def _user_project(tmp_path: Path) -> Path:
    """``my_project/my_pkg`` in ``tmp_path``, from the README's own file block."""
    (source,) = [b for b in PYTHON_BLOCKS if b.startswith(PACKAGE_FILE)]
    package = tmp_path / "my_project" / "my_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(source)
    return package.parent


def _env(project: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(project), "TRAINGYM_CACHE_DIR": str(cache)}


def test_the_readme_has_the_blocks_these_tests_run() -> None:
    """Guard for the extraction: a renamed marker or file line would silently run nothing below."""
    assert len(PYTHON_BLOCKS) >= 6
    example = EXAMPLE.search(README)
    assert example is not None
    assert [lang for lang, _ in BLOCK.findall(example.group(1))] == ["python", "python", "bash"]
    assert any('if __name__ == "__main__":' in b and "workers=2" in b for b in PYTHON_BLOCKS)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_every_readme_python_block_runs_as_a_script(index: int, tmp_path: Path) -> None:
    project = _user_project(tmp_path)
    script = tmp_path / "block.py"
    script.write_text(PYTHON_BLOCKS[index])
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(project, tmp_path / "cache"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"README python block {index}:\n{PYTHON_BLOCKS[index]}\n{proc.stderr[-3000:]}"


def _unguarded_batched_snippet() -> str:
    (block,) = [b for b in PYTHON_BLOCKS if "workers=2" in b]
    head, _, body = block.partition('if __name__ == "__main__":')
    body = body.split("\n", 1)[1]  # drop the guard line's comment
    return head + textwrap.dedent(body)


def test_the_batched_snippet_pasted_into_stdin_says_to_use_a_guarded_script(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-"], input=_unguarded_batched_snippet(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert GUARD_ADVICE in proc.stderr
    assert "ConnectionResetError" not in proc.stderr and "FileNotFoundError" not in proc.stderr
    assert proc.stderr.count("Traceback") == 1


@pytest.mark.slow
def test_the_batched_snippet_in_an_unguarded_script_says_to_add_the_guard(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(_unguarded_batched_snippet())
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert GUARD_ADVICE in proc.stderr
    assert "ConnectionResetError" not in proc.stderr and "bootstrapping phase" not in proc.stderr
    assert proc.stderr.count("Traceback") == 1  # the parent's one error; the workers end quietly


@pytest.mark.slow
def test_the_user_family_example_runs_from_a_package_outside_the_repo(tmp_path: Path) -> None:
    """The README's example as written: the family file, the Python session, then each command line (run from a
    folder outside the repository with the README's .venv/bin/python and train_agent.py pointing into it)."""
    example = EXAMPLE.search(README).group(1)  # type: ignore[union-attr]
    _, session, commands = [body for _, body in BLOCK.findall(example)]
    project = _user_project(tmp_path)
    env = _env(project, tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-c", session], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'family': 'rings'" in proc.stdout
    lines = commands.replace("\\\n", " ").splitlines()
    assert lines[0] == "export PYTHONPATH=/path/to/my_project"
    outputs = []
    for line in lines[1:]:
        argv = shlex.split(line.split("  #")[0])
        assert argv[0] == ".venv/bin/python"
        argv = [sys.executable] + [str(ROOT / a) if a == "train_agent.py" else a for a in argv[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    train_out, eval_out, _ = outputs
    assert "sweeping 24 grid points x 4 TRAIN instances" in train_out  # the tuned defaults, visibly
    assert "Traceback" not in train_out
    run = tmp_path / "runs" / "rings"
    policies = [row["policy"] for row in json.loads((run / "eval.json").read_text())["summary"]]
    assert policies == ["ppo", "keep", "random", "step_decay", "plateau", "steer"]
    assert json.loads((run / "config.json").read_text())["env_kwargs"]["task"] == "my_pkg.tasks:MyFamily"
    assert json.loads((run / "tuned_defaults.json").read_text())["family"] == "my_pkg.tasks:MyFamily"
    assert "(cached in" in eval_out  # evaluate reuses the sweep
    evaluated = json.loads((tmp_path / "runs" / "rings-eval" / "eval.json").read_text())
    assert [row["policy"] for row in evaluated["summary"]] == ["rings", "keep", "steer"]
    assert evaluated["settings"]["task"] == "my_pkg.tasks:MyFamily"
    page = (run / "report.html").read_text()
    assert "TrainGym/Custom-v0" in page and '"steer"' in page
