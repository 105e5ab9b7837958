"""Compute-matched comparison of static HPO (TPE, LLM-TPE) with trained agents and hand-written policies.

For the same held-out instances (``instance_set="test"``, instance ``i`` trained with ``reset(seed=i)``) every
row reports the final **test** accuracy it reaches and the target-network optimizer steps it spends:

| row | runs per instance | optimizer steps per instance |
|---|---|---|
| ``keep`` | 1 (the instance's own starting hyperparameters, no moves) | T x K |
| a policy (``--policies``, labelled by its name) | 1 (the policy steers the run) | T x K |
| ``TPE-N`` | N (best of N by validation accuracy) | N x T x K |
| ``LLM-TPE[<advisor>]-N``, one set per ``--advisors`` entry | N (best of N by validation accuracy) | N x T x K |

Policies are baselines of :data:`traingym.agents.baselines.BASELINES` (``good_defaults``, ``steer``,
``diagnosis_aware_defaults``, ...) or saved agents (``pretrained:<name>``, a run directory, a model .zip), run
through the evaluation module's episode loop. The N-trial results are the first N trials of one max(N)-trial study
per instance and sampler: the samplers are sequential and seeded, so these are exactly the trials an N-trial study
runs. Every LLM-TPE study of an instance uses the same sampler seed as its TPE study, so ``LLM-TPE vs TPE`` is
paired. Intervals are 95% percentile bootstrap CIs of the mean over instances
(:func:`traingym.agents.stats.bootstrap_mean`); differences are paired by instance (to ``keep``, to ``steer`` when
it is one of the policies, and LLM-TPE to TPE at the same N). Advisor (LLM) compute is not counted in optimizer
steps; LLM-TPE's calls and fallbacks are reported in their own columns.

## Resuming

Results are appended per instance to ``per_instance.jsonl`` in the output directory, each row keyed by what produced
it (:func:`row_source`: ``keep``, ``tpe``, ``llm_tpe[<advisor>]``, ``policy[<name>]``). A later run with the same
result settings (:data:`RESULT_FIELDS`) runs only the rows that are missing: an interrupted run resumes where it
stopped, and adding an advisor, a policy or instances only adds rows (e.g. ``--policies good_defaults steer
pretrained:<name>`` once an agent is shipped). Changing a result setting starts afresh. A policy row also records
a fingerprint of the policy (a baseline's targets, a saved agent's model files): rows of a policy that changed
since (re-tuned defaults, a retrained agent) are run again. ``table.csv``, ``table.json`` and
``accuracy_vs_compute.png`` are written at the end. ``python -m traingym.experiments.hpo_comparison`` runs the same
comparison (the same flags) and with ``--write`` writes its page, ``docs/results/hpo_<family>.md`` (+ ``.json``).

Example (in the background: it trains ~43 networks per instance)::

    nohup python -m traingym.hpo compare --n-instances 20 --out-dir runs/hpo_compare > compare.log 2>&1 &
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from traingym.advisors import AdvisorUnavailableError
from traingym.agents.baselines import BASELINES
from traingym.agents.env_factory import make_env
from traingym.agents.episodes import EpisodeSettings, run_policy_object
from traingym.agents.policies import PolicySpec, agent_model_path, env_overrides, find_run_config, resolve_policy
from traingym.agents.stats import Interval, bootstrap_mean
from traingym.envs.config import OPTIMIZERS, TrainingEnvConfig
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.hpo.study import HPOConfig, keep_run, make_sampler, run_study
from traingym.protocol.checks import check_range
from traingym.protocol.cli import IntTuple, StrTuple

METHODS = ("keep", "tpe", "llm_tpe")
"""Static methods the comparison can run (single-run policies are named in :attr:`CompareConfig.policies`)."""
MOVED_TO_POLICIES = {"good_defaults": "--policies good_defaults",
                     "rl_policy": "--policies pretrained:<name> (or a run directory / model .zip)"}
"""Former methods, now policy rows (named in the error message)."""
POLICY_BASELINES = tuple(sorted(name for name in BASELINES if name != "keep"))
"""Baselines a policy row can name (``keep`` is the ``keep`` method)."""
ROWS_FORMAT = 2
"""Version of the per-instance row format, stored in ``config.json``: a directory written by another version
starts afresh."""


@dataclass(frozen=True)
class CompareConfig:
    """A compute-matched comparison on held-out instances: static HPO (TPE, LLM-TPE per advisor), keep, and
    single-run policies (baselines, saved agents)."""

    env_id: str = "TrainGym/DigitsMLP-v0"
    """Registered TrainGym environment id."""
    n_instances: int = 20
    """Held-out instances compared (indices ``first_instance ..``), 1..128 (the held-out set)."""
    first_instance: int = 0
    """First test-instance index."""
    budgets: IntTuple = (5, 10, 20)
    """Trial budgets N of the static HPO methods (each 1..1000)."""
    horizon: int = TrainingEnvConfig.horizon
    """Env steps per training run, 1..10000."""
    steps_per_action: int = TrainingEnvConfig.steps_per_action
    """Optimizer steps per env step (K), 1..10000."""
    optimizer: str = "sgd"
    """Target-network optimizer: sgd or adam."""
    val_size: int = TrainingEnvConfig.val_size
    """Validation buffer size, 16..100000."""
    advisors: StrTuple = ("heuristic",)
    """LLM-TPE advisors, one LLM-TPE study per instance and advisor (rows ``LLM-TPE[<advisor>]-N``): heuristic,
    smollm, gemma, hf:<path>, openai:<model>."""
    p_llm: float = 0.5
    """LLM-TPE coin probability, in [0, 1]."""
    sampler_seed: int = 0
    """Instance ``i``'s TPE and LLM-TPE studies all use sampler seed ``sampler_seed + i`` (paired, and the
    LLM-TPE coin pattern differs between instances)."""
    policies: StrTuple | None = None
    """Single-run rows, one per entry, labelled by it: baselines (good_defaults, steer, diagnosis_aware,
    diagnosis_aware_defaults, ... of traingym.agents.baselines) and saved agents (pretrained:<name>, a run directory
    or a model .zip). None: good_defaults and the agent shipped for --env-id, if any (pretrained:digits-mlp on
    TrainGym/DigitsMLP-v0); empty: no policy rows."""
    methods: StrTuple = METHODS
    """Static methods: a subset of keep, tpe, llm_tpe (may be empty when policies are given)."""
    out_dir: str = "runs/hpo_compare"
    """Directory of ``per_instance.jsonl``, ``table.csv``, ``table.json`` and the plot."""
    n_bootstrap: int = 10_000
    """Bootstrap resamples of the CIs, 100..1000000."""

    def __post_init__(self) -> None:
        import gymnasium as gym

        if self.env_id not in gym.registry or not self.env_id.startswith("TrainGym/"):
            raise ValueError(f"env_id must be a registered TrainGym id (TrainGym/...), got {self.env_id!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            moved = "; ".join(f"{m} is now {MOVED_TO_POLICIES[m]}" for m in unknown if m in MOVED_TO_POLICIES)
            raise ValueError(f"methods must be a subset of {METHODS}, got {unknown}" + (f" ({moved})" if moved else ""))
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in self.methods))
        object.__setattr__(self, "budgets", tuple(sorted(set(int(b) for b in self.budgets))))
        if not self.budgets or not all(1 <= b <= 1000 for b in self.budgets):
            raise ValueError(f"budgets must be a non-empty set of ints in [1, 1000], got {self.budgets!r}")
        for name, low, high in (("n_instances", 1, TEST_SET_SIZE), ("first_instance", 0, TEST_SET_SIZE - 1),
                                ("horizon", 1, 10_000), ("steps_per_action", 1, 10_000), ("val_size", 16, 100_000),
                                ("n_bootstrap", 100, 1_000_000)):
            check_range(name, getattr(self, name), low, high, integer=True)
        check_range("sampler_seed", self.sampler_seed, 0, 2**32 - 1 - TEST_SET_SIZE, integer=True)
        if self.first_instance + self.n_instances > TEST_SET_SIZE:
            raise ValueError(f"first_instance + n_instances must be <= {TEST_SET_SIZE} (test instances), got "
                             f"{self.first_instance + self.n_instances}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0.0 <= self.p_llm <= 1.0:
            raise ValueError(f"p_llm must be in [0, 1], got {self.p_llm!r}")
        if not all(isinstance(a, str) and a.strip() for a in self.advisors):
            raise ValueError(f"advisors must be non-empty advisor specs, got {self.advisors!r}")
        object.__setattr__(self, "advisors", tuple(dict.fromkeys(a.strip() for a in self.advisors)))
        if "llm_tpe" in self.methods and not self.advisors:
            raise ValueError("advisors must name at least one advisor when methods include llm_tpe")
        policies = default_policies(self.env_id) if self.policies is None else self.policies
        object.__setattr__(self, "policies", check_policies(policies))
        if not self.methods and not self.policies:
            raise ValueError("methods and policies are both empty: nothing to compare")

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(range(self.first_instance, self.first_instance + self.n_instances))

    @property
    def steps_per_run(self) -> int:
        return self.horizon * self.steps_per_action

    def hpo_config(self, sampler: str, index: int, advisor: str = "heuristic") -> HPOConfig:
        return HPOConfig(env_id=self.env_id, instance_set="test", instance_index=index, seed=index,
                         n_trials=max(self.budgets), horizon=self.horizon, steps_per_action=self.steps_per_action,
                         optimizer=self.optimizer, val_size=self.val_size, sampler=sampler, advisor=advisor,
                         p_llm=self.p_llm, sampler_seed=self.sampler_seed + index)

    def sources(self) -> tuple[str, ...]:
        """The row sources this comparison runs, in table order (see :func:`row_source`)."""
        out = ["keep"] if "keep" in self.methods else []
        out += [f"policy[{name}]" for name in self.policies or ()]
        out += ["tpe"] if "tpe" in self.methods else []
        out += [f"llm_tpe[{advisor}]" for advisor in self.advisors] if "llm_tpe" in self.methods else []
        return tuple(out)


def default_policies(env_id: str) -> tuple[str, ...]:
    """The policy rows when none are named: ``good_defaults`` and the agent shipped for ``env_id``, if any."""
    from traingym.agents.pretrained import shipped_agent_for

    shipped = shipped_agent_for(env_id)
    return ("good_defaults",) + ((shipped,) if shipped else ())


def check_policies(policies: Sequence[str]) -> tuple[str, ...]:
    """The policy names, stripped (paths normalised) and without repeats; ValueError naming ``policies`` for an
    unknown one."""
    from traingym.agents.pretrained import PREFIX, pretrained_names, resolve_agent_path

    def normal(text: str) -> str:
        text = str(text).strip()
        return text if not text or text in BASELINES or text.startswith(PREFIX) else str(Path(text))

    out = tuple(dict.fromkeys(normal(p) for p in policies))
    for name in out:
        if name in POLICY_BASELINES or (name and not name.startswith(PREFIX) and Path(name).exists()):
            continue
        if name == "keep":
            raise ValueError("policies: 'keep' is the keep method (methods keep), not a policy row")
        if name.startswith(PREFIX):
            try:
                resolve_agent_path(name)
                continue
            except ValueError as error:
                raise ValueError(f"policies: {error}") from None
        raise ValueError(f"policies: {name!r} is neither a baseline {list(POLICY_BASELINES)} nor a saved agent "
                         f"(pretrained:<name> with name in {pretrained_names()}, or an existing run directory or "
                         "model .zip)")
    return out


class AdvisorSpecError(ValueError):
    """An LLM-TPE advisor that cannot propose: an unknown spec, or a model or dependency that is missing."""


@dataclass
class Comparison:
    """Per-instance rows, the aggregated table and the notes (skipped policies, training mismatches)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ running
def run_comparison(config: CompareConfig, log: Any = print) -> Comparison:
    """Run (or resume) every row source on every instance, then aggregate, plot and write the outputs.

    Raises:
        AdvisorSpecError: an LLM-TPE advisor that cannot propose (checked before anything trains or is written).
    """
    import torch

    torch.set_num_threads(1)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "per_instance.jsonl"
    result = Comparison()
    policies: dict[str, Any] = {}
    for name in config.policies or ():
        try:
            policies[name] = resolve_policy(PolicySpec(name, name), config.env_id, config.horizon)
        except Exception as error:  # noqa: BLE001 - e.g. a family without tuned defaults: the other rows still run
            result.notes.append(f"{name} skipped: {type(error).__name__}: {str(error)[:200]}")
            log(f"[hpo-compare] {result.notes[-1]}")
    fingerprints = {name: policy_fingerprint(name, policy) for name, policy in policies.items()}
    stored = _stored_rows(out, config)
    kept = [r for r in stored or () if not _changed(r, fingerprints)]
    wanted, sources = set(config.indices), set(config.sources())
    result.rows = [r for r in kept if r["instance_index"] in wanted and row_source(r) in sources]
    done = {(row_source(r), r["instance_index"]) for r in result.rows}
    static = [(s, m, a) for s, m, a in (("keep", "keep", None), ("tpe", "tpe", None),
                                        *((f"llm_tpe[{a}]", "llm_tpe", a) for a in config.advisors))
              if m in config.methods]
    for source, method, advisor in static:  # an advisor that cannot propose fails here, before anything is written
        if method == "llm_tpe" and any((source, i) not in done for i in config.indices):
            try:
                make_sampler(config.hpo_config("llm_tpe", config.first_instance, advisor or "heuristic"))
            except (ValueError, AdvisorUnavailableError) as error:
                raise AdvisorSpecError(f"advisors: {advisor!r} cannot propose: {error}") from error
    if stored is None:
        rows_path.unlink(missing_ok=True)  # other result settings: start afresh
    elif len(kept) < len(stored):
        for name in sorted({r["policy"] for r in stored if _changed(r, fingerprints)}):
            log(f"[hpo-compare] {name} changed since its stored rows: they are run again")
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    (out / "config.json").write_text(json.dumps({**asdict(config), "rows_format": ROWS_FORMAT}, indent=1))

    def keep_rows(new: list[dict[str, Any]]) -> None:
        with rows_path.open("a") as handle:
            for row in new:
                handle.write(json.dumps(row) + "\n")
        result.rows.extend(new)

    for name, policy in policies.items():
        todo = tuple(i for i in config.indices if (f"policy[{name}]", i) not in done)
        if todo:
            started = time.perf_counter()
            keep_rows(_policy_rows(config, name, policy, fingerprints[name], todo))
            log(f"[hpo-compare] {name} on {len(todo)} instances ({time.perf_counter() - started:.0f}s)")
        note = _training_mismatch(config, name)
        if note:
            result.notes.append(note)
    if any((source, i) not in done for source, _, _ in static for i in config.indices):
        env = config.hpo_config("tpe", config.first_instance).make_env()
        try:
            for index in config.indices:
                for source, method, advisor in static:
                    if (source, index) in done:
                        continue
                    new = _static_rows(config, method, index, env, advisor)
                    keep_rows(new)
                    log(f"[hpo-compare] instance {index} {source}: "
                        + ", ".join(f"{r['label']} test={r['test_accuracy']:.3f}" for r in new)
                        + f" ({new[0]['seconds']:.0f}s)")
        finally:
            env.close()
    result.table = aggregate(result.rows, config)
    write_outputs(result, config)
    return result


RESULT_FIELDS = ("env_id", "budgets", "horizon", "steps_per_action", "optimizer", "val_size", "p_llm",
                 "sampler_seed")
"""Settings that change per-instance results: changing one starts afresh. ``methods``, ``advisors`` and
``policies`` (row sources), the instance range, ``out_dir`` and ``n_bootstrap`` may change between resumed runs."""


def row_source(row: Mapping[str, Any]) -> str:
    """What produced a per-instance row: ``keep``, ``tpe``, ``llm_tpe[<advisor>]`` or ``policy[<name>]``."""
    method = row["method"]
    if method == "llm_tpe":
        return f"llm_tpe[{row['advisor']}]"
    if method == "policy":
        return f"policy[{row['policy']}]"
    return str(method)


def _stored_rows(out: Path, config: CompareConfig) -> list[dict[str, Any]] | None:
    """Every row of an earlier run in ``out`` with the same result-defining settings and row format; None when
    there is none or its settings differ (the run starts afresh). Rows of other instances and sources are kept in
    the file: a later run may ask for them again."""
    rows_path, config_path = out / "per_instance.jsonl", out / "config.json"
    if not rows_path.exists():
        return None
    before = json.loads(config_path.read_text()) if config_path.exists() else {}
    now = json.loads(json.dumps(asdict(config)))
    if before.get("rows_format") != ROWS_FORMAT or any(before.get(k) != now[k] for k in RESULT_FIELDS):
        return None
    return [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]


def _changed(row: Mapping[str, Any], fingerprints: Mapping[str, str]) -> bool:
    """A row of a policy of this run whose fingerprint differs from the policy's now (it is run again)."""
    name = row.get("policy")
    return row["method"] == "policy" and name in fingerprints and row.get("fingerprint") != fingerprints[name]


def _static_rows(config: CompareConfig, method: str, index: int, env: Any, advisor: str | None
                 ) -> list[dict[str, Any]]:
    base = {"method": method, "instance_index": index, "seed": index}
    started = time.perf_counter()
    if method == "keep":
        run = keep_run(config.hpo_config("tpe", index), env)
        return [{**base, "label": "keep", "n_trials": 1, "test_accuracy": run.test_accuracy,
                 "val_accuracy": run.val_accuracy, "optimizer_steps": config.steps_per_run,
                 "optimizer_steps_run": run.optimizer_steps_run, "diverged": run.diverged,
                 "seconds": round(time.perf_counter() - started, 2)}]
    study = run_study(config.hpo_config(method, index, advisor or "heuristic"), env=env)
    seconds = round(time.perf_counter() - started, 2)  # the whole max-budget study, advisor calls included
    if method == "llm_tpe":
        base["advisor"] = advisor
    rows = []
    for n in config.budgets:
        best = study.best_at(n)
        head = study.trials[:n]
        row = {**base, "label": source_label(row_source(base), n), "n_trials": n,
               "test_accuracy": best.best_test_accuracy, "val_accuracy": best.best_val_accuracy,
               "optimizer_steps": best.optimizer_steps, "optimizer_steps_run": best.optimizer_steps_run,
               "best_params": best.best_params, "diverged_trials": sum(t.diverged for t in head), "seconds": seconds}
        if method == "llm_tpe":
            row["llm_trials"] = sum(t.proposer == "llm" for t in head)
            row["fallbacks"] = sum(t.proposer == "tpe_fallback" for t in head)
        rows.append(row)
    if study.sampler_stats is not None:
        rows[-1]["sampler_stats"] = study.sampler_stats  # counters of the whole (max-budget) study
    return rows


def _policy_rows(config: CompareConfig, name: str, policy: Any, fingerprint: str, indices: tuple[int, ...]
                 ) -> list[dict[str, Any]]:
    """Run a baseline or saved agent through the evaluation module's episode loop, in an env with the comparison's
    optimizer and validation size (the static methods' env settings: the same instances, paired)."""
    settings = EpisodeSettings(env_id=config.env_id, horizon=config.horizon,
                               steps_per_action=config.steps_per_action, instance_indices=indices,
                               instance_set="test")
    kwargs = {**settings.env_kwargs(env_overrides(policy)), "optimizer": config.optimizer,
              "val_size": config.val_size}
    env = make_env(config.env_id, config.horizon, kwargs, discrete=bool(getattr(policy, "discrete_actions", False)))
    try:
        episodes = run_policy_object(policy, name, settings, env=env)
    finally:
        env.close()
    return [{"method": "policy", "policy": name, "fingerprint": fingerprint, "instance_index": e.instance_index,
             "seed": e.seed, "label": name, "n_trials": 1, "test_accuracy": e.test_accuracy,
             "val_accuracy": e.val_accuracy[-1], "optimizer_steps": config.steps_per_run,
             "optimizer_steps_run": e.steps * config.steps_per_action, "diverged": e.diverged,
             "advisor_calls": e.advisor_calls} for e in episodes]


def policy_fingerprint(name: str, policy: Any) -> str:
    """What a policy row's results depend on besides the settings, hashed: a baseline's class and public
    attributes (its tuned targets), a saved agent's model, normalizer and config files."""
    if name in BASELINES:
        described: Any = {"class": type(policy).__name__,
                          **{k: _plain(v) for k, v in sorted(vars(policy).items()) if not k.startswith("_")}}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    from traingym.agents.checkpoints import normalizer_path
    from traingym.agents.pretrained import resolve_agent_path

    path = resolve_agent_path(name)
    model = agent_model_path(path)
    digest = hashlib.sha256()
    for file in (model, normalizer_path(model), *((path,) if path.is_file() else ()), _run_config_file(path)):
        if file is not None and file.is_file():
            digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def _run_config_file(path: Path) -> Path | None:
    start = path if path.is_dir() else path.parent
    return next((d / "config.json" for d in (start, start.parent, start.parent.parent)
                 if (d / "config.json").is_file()), None)


def _plain(value: Any) -> Any:
    """A JSON-able, deterministic description of a policy attribute."""
    if isinstance(value, Enum):
        return _plain(value.value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(str(_plain(v)) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__


def _training_mismatch(config: CompareConfig, name: str) -> str | None:
    """A note when a saved agent was trained on another env, horizon or K than it is compared on."""
    if name in BASELINES:
        return None
    from traingym.agents.pretrained import resolve_agent_path

    try:
        trained = find_run_config(resolve_agent_path(name))["args"]
    except (FileNotFoundError, KeyError, ValueError):
        return None
    here = {"env": config.env_id, "horizon": config.horizon, "steps_per_action": config.steps_per_action}
    differs = {k: trained.get(k) for k, v in here.items() if trained.get(k) is not None and trained.get(k) != v}
    if not differs:
        return None
    return f"{name} was trained with {differs} but is compared with { {k: here[k] for k in differs} }"


# ------------------------------------------------------------------------------------------------ aggregating
def source_label(source: str, n_trials: int | None = None) -> str:
    """The table label of a row source: ``keep``, the policy's name, ``TPE-N``, ``LLM-TPE[<advisor>]-N`` (at
    budget ``n_trials``; without it, the sampler's name)."""
    if source.startswith("policy["):
        return source[len("policy["):-1]
    budget = "" if n_trials is None else f"-{n_trials}"
    if source == "tpe":
        return "TPE" + budget
    if source.startswith("llm_tpe["):
        return f"LLM-TPE{source[len('llm_tpe'):]}{budget}"
    return source


def references(config: CompareConfig) -> dict[str, str]:
    """Reference rows of the paired differences, by column suffix: ``keep`` and ``steer`` (when it is one of the
    policies)."""
    refs = {"keep": "keep"}  # its differences are None when keep was not run
    if "steer" in (config.policies or ()):
        refs["steer"] = "policy[steer]"
    return refs


def aggregate(rows: Sequence[dict[str, Any]], config: CompareConfig) -> list[dict[str, Any]]:
    """One table row per row source and budget: mean test accuracy with its 95% CI, compute, and the paired mean
    differences to the references (:func:`references`) and, for LLM-TPE, to TPE at the same N, on the instances
    both ran."""
    def accuracies(source: str, n: int) -> dict[int, float]:
        return {r["instance_index"]: r["test_accuracy"] for r in rows if row_source(r) == source and r["n_trials"] == n}

    refs = {suffix: accuracies(source, 1) for suffix, source in references(config).items()}
    table = []
    for source in config.sources():
        static = source == "tpe" or source.startswith("llm_tpe[")
        for n in config.budgets if static else (1,):
            group = sorted((r for r in rows if row_source(r) == source and r["n_trials"] == n),
                           key=lambda r: r["instance_index"])
            if not group:
                continue
            mean, low, high = _interval([r["test_accuracy"] for r in group], config.n_bootstrap)
            entry: dict[str, Any] = {
                "method": source_label(source, n), "source": source, "n_trials": n, "n_instances": len(group),
                "test_acc_mean": round(mean, 4), "test_acc_ci_low": round(low, 4), "test_acc_ci_high": round(high, 4),
                "val_acc_mean": round(float(np.mean([r["val_accuracy"] for r in group])), 4),
                "optimizer_steps": int(round(float(np.mean([r["optimizer_steps"] for r in group])))),
                "optimizer_steps_run": int(round(float(np.mean([r["optimizer_steps_run"] for r in group]))))}
            for suffix, ref_source in references(config).items():
                delta = (0.0, 0.0, 0.0) if source == ref_source else _paired(group, refs[suffix], config.n_bootstrap)
                entry.update({f"delta_vs_{suffix}": delta[0], f"delta_vs_{suffix}_ci_low": delta[1],
                              f"delta_vs_{suffix}_ci_high": delta[2]})
            if source.startswith("llm_tpe["):
                entry["llm_trials"] = int(sum(r.get("llm_trials", 0) for r in group))
                entry["fallbacks"] = int(sum(r.get("fallbacks", 0) for r in group))
                entry["llm_calls"] = entry["llm_trials"] + entry["fallbacks"]
                if "tpe" in config.methods:
                    delta = _paired(group, accuracies("tpe", n), config.n_bootstrap)
                    entry.update(delta_vs_tpe=delta[0], delta_vs_tpe_ci_low=delta[1], delta_vs_tpe_ci_high=delta[2])
            table.append(entry)
    return table


def _paired(group: Sequence[dict[str, Any]], reference: Mapping[int, float], n_boot: int
            ) -> tuple[float | None, float | None, float | None]:
    """Mean paired difference ``row - reference`` over the instances both ran, with its CI (None when none)."""
    diffs = [r["test_accuracy"] - reference[r["instance_index"]] for r in group if r["instance_index"] in reference]
    if not diffs:
        return None, None, None
    mean, low, high = _interval(diffs, n_boot)
    return round(mean, 4), round(low, 4), round(high, 4)


def _interval(values: list[float], n_boot: int) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its 95% percentile-bootstrap CI (seed 0)."""
    ci: Interval = bootstrap_mean(values, seed=0, n_boot=n_boot)
    return ci.mean, ci.low, ci.high


def llm_tpe_totals(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The LLM-TPE counters summed over instances, per advisor (calls, fallbacks by reason, tokens)."""
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not row.get("sampler_stats"):
            continue
        advisor = totals.setdefault(row["advisor"], {})
        for key, value in row["sampler_stats"].items():
            if isinstance(value, dict):
                bucket = advisor.setdefault(key, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v
            else:
                advisor[key] = advisor.get(key, 0) + value
    return totals


def study_seconds(rows: Sequence[dict[str, Any]], config: CompareConfig) -> dict[str, float]:
    """Mean wall seconds per instance of each static source (a whole max-budget study, advisor calls included)."""
    out = {}
    for source in config.sources():
        seconds = {r["instance_index"]: r["seconds"] for r in rows if row_source(r) == source and "seconds" in r}
        if seconds and not source.startswith("policy["):
            out[source] = round(float(np.mean(list(seconds.values()))), 1)
    return out


def write_outputs(result: Comparison, config: CompareConfig) -> None:
    """``table.csv``, ``table.json`` (with the notes, the advisor counters and the wall seconds per study) and the
    plot in ``out_dir``."""
    import pandas as pd

    out = Path(config.out_dir)
    pd.DataFrame(result.table).to_csv(out / "table.csv", index=False)
    (out / "table.json").write_text(json.dumps({"config": asdict(config), "table": result.table,
                                                "llm_tpe_totals": llm_tpe_totals(result.rows),
                                                "study_seconds": study_seconds(result.rows, config),
                                                "notes": result.notes}, indent=1))
    plot_accuracy_vs_compute(result.table, out / "accuracy_vs_compute.png", config)


def plot_accuracy_vs_compute(table: Sequence[dict[str, Any]], path: Path, config: CompareConfig) -> None:
    """Mean test accuracy vs optimizer steps per instance (log x), 95% bootstrap CI error bars: a line per HPO
    sampler (TPE, LLM-TPE per advisor), a marker per single-run row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    series = [s for s in config.sources() if s == "tpe" or s.startswith("llm_tpe[")]
    colors = [c for k, c in enumerate(plt.get_cmap("tab10").colors) if k != 7]  # tab10's gray is keep's
    markers = "osD^vP"
    for k, source in enumerate(series):
        rows = [r for r in table if r["source"] == source]
        if not rows:
            continue
        shift = 1.0 + 0.04 * (k - (len(series) - 1) / 2)  # keep the error bars of the series apart
        x = np.array([r["optimizer_steps"] for r in rows], dtype=float) * shift
        y = np.array([r["test_acc_mean"] for r in rows])
        err = np.array([[r["test_acc_mean"] - r["test_acc_ci_low"] for r in rows],
                        [r["test_acc_ci_high"] - r["test_acc_mean"] for r in rows]])
        ax.errorbar(x, y, yerr=err, color=colors[k % len(colors)], marker=markers[k % len(markers)], capsize=3,
                    label=f"{source_label(source)}-N")
    singles = [r for r in table if r["source"] not in series]
    single_markers = "x*^vP<>h"
    for k, r in enumerate(singles):
        color = "gray" if r["source"] == "keep" else colors[(len(series) + k) % len(colors)]
        shift = 1.0 + 0.025 * (k - (len(singles) - 1) / 2)  # the single runs share one x: keep their bars apart
        ax.errorbar([r["optimizer_steps"] * shift], [r["test_acc_mean"]], capsize=3, color=color,
                    marker=single_markers[k % len(single_markers)], markersize=9, linestyle="none", label=r["method"],
                    yerr=[[r["test_acc_mean"] - r["test_acc_ci_low"]], [r["test_acc_ci_high"] - r["test_acc_mean"]]])
    ax.set_xscale("log")
    ax.set_xlabel(f"target-network optimizer steps per instance (log; N = {', '.join(map(str, config.budgets))})")
    ax.set_ylabel("final test accuracy (mean, 95% bootstrap CI)")
    n = max((r["n_instances"] for r in table), default=0)
    ax.set_title(f"{config.env_id}: {n} held-out instances, T={config.horizon}, K={config.steps_per_action}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _delta_text(row: Mapping[str, Any], key: str, missing: str) -> str:
    if row.get(key) is None:
        return missing
    return f"{row[key]:+.3f} [{row[key + '_ci_low']:+.3f}, {row[key + '_ci_high']:+.3f}]"


def _columns(table: Sequence[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``(header, row -> text)`` of the columns shared by the printed and the Markdown table."""
    columns: list[tuple[str, Any]] = [
        ("method", lambda r: r["method"]),
        ("n", lambda r: str(r["n_instances"])),
        ("optimizer steps / instance", lambda r: str(r["optimizer_steps"])),
        ("test acc [95% CI]", lambda r: f"{r['test_acc_mean']:.3f} [{r['test_acc_ci_low']:.3f}, "
                                        f"{r['test_acc_ci_high']:.3f}]")]
    for suffix in ("keep", "steer"):
        if suffix == "keep" or any(f"delta_vs_{suffix}" in r for r in table):
            columns.append((f"Δ vs {suffix} [95% CI]",
                            lambda r, s=suffix: _delta_text(r, f"delta_vs_{s}", f"n/a ({s} not run)")))
    if any("delta_vs_tpe" in r for r in table):
        columns.append(("LLM-TPE vs TPE [95% CI]", lambda r: _delta_text(r, "delta_vs_tpe", "")))
    if any("llm_calls" in r for r in table):
        columns.append(("LLM calls / fallbacks",
                        lambda r: f"{r['llm_calls']} / {r['fallbacks']}" if "llm_calls" in r else ""))
    return columns


def format_table(table: Sequence[dict[str, Any]]) -> str:
    """The table as printed text."""
    import pandas as pd

    if not table:
        return "(no results)"
    columns = _columns(table)
    frame = pd.DataFrame({header: [text(r) for r in table] for header, text in columns})
    frame["val acc"] = [f"{r['val_acc_mean']:.3f}" for r in table]
    frame["steps run"] = [str(r["optimizer_steps_run"]) for r in table]
    return frame.to_string(index=False)


def markdown_table(table: Sequence[dict[str, Any]]) -> str:
    """The table as Markdown (the results page)."""
    if not table:
        return "(no results)"
    columns = _columns(table)
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(text(r) for _, text in columns) + " |" for r in table]
    return "\n".join(lines)


def run_and_print(config: CompareConfig, prog: str) -> Comparison:
    """:func:`run_comparison` for a command line: progress and the table on stdout, an unusable ``--advisors``
    entry as one usage line of ``prog`` (found before any training)."""
    from traingym.protocol.cli import usage_error

    try:
        result = run_comparison(config, log=lambda line: print(line, flush=True))
    except AdvisorSpecError as error:
        usage_error(prog, str(error))
    print(format_table(result.table))
    for note in result.notes:
        print("note:", note)
    return result
