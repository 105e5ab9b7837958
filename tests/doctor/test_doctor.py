"""The training doctor on a plain PyTorch loop written here: auto / watch / propose, optimizers, contract errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from doctor_testkit import TinyNet, plain_loop, setup_run
from traingym.doctor import TrainingDoctor, find_hidden_layers
from traingym.envs.monitoring.monitor import TRAINING_FIELDS
from traingym.protocol.moves import KEEP, LR_FACTOR, SCALE_UP, WD_FACTOR
from traingym.protocol.proposals import DecidedBy, Decision, Proposal
from traingym.protocol.trajectory_format import read_trajectories


def test_hidden_layers_found_automatically_head_excluded() -> None:
    layers = find_hidden_layers(TinyNet())
    assert [layer.name for layer in layers] == ["conv", "fc"]
    with pytest.raises(ValueError, match="no module named 'nope'"):
        find_hidden_layers(TinyNet(), ["nope"])
    with pytest.raises(ValueError, match="no hidden layers"):
        find_hidden_layers(torch.nn.Sequential(torch.nn.Linear(4, 2)))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_auto_mode_applies_the_advisors_move_on_every_param_group(optimizer: str, tmp_path) -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run(optimizer, lr=0.01)
    lrs = [g["lr"] for g in opt.param_groups]
    doctor = TrainingDoctor(model, opt, (xv, yv), every=10, policy="advisor_greedy",
                            advisor="doctor_testkit:RaiseEverythingAdvisor", log_path=str(tmp_path / "d.jsonl"))
    # The attach-time decision already applied one move (as the env acts on its reset observation).
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr * LR_FACTOR for lr in lrs])
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(1e-3 * WD_FACTOR)
    assert opt.param_groups[1]["weight_decay"] == 0.0  # excluded from decay by the user: stays excluded
    assert doctor.aug_level == 1
    weights = model.fc.weight.detach().clone()
    flagged = doctor.monitor.log.flagged[1]
    decisions = plain_loop(model, opt, x, y, 20, doctor)
    assert len(decisions) == 2 and all(d.decided_by is DecidedBy.POLICY for d in decisions)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr * LR_FACTOR**3 for lr in lrs])
    assert doctor.aug_level == 3
    assert flagged.numel() > 0  # the attach-time scale-up multiplied the flagged units' rows
    doctor.close()
    records = read_trajectories(tmp_path / "d.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(r["applied_move"] == [1, 1, 1, 1] and r["decided_by"] == "policy" for r in records)
    assert records[0]["outcome"]["step"] == 1 and records[-1]["outcome"] is None
    assert records[0]["diagnosis"]["text"].startswith("flat validation loss")
    assert records[0]["report"]["task"]["model"] == "TinyNet"
    assert weights.shape == model.fc.weight.shape


def test_neuron_scaling_multiplies_the_flagged_rows_by_the_env_factor() -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run()
    plain_loop(model, opt, x, y, 30)
    before = model.fc.weight.detach().clone()
    doctor = TrainingDoctor(model, opt, (xv, yv), every=10, policy="advisor_greedy",
                            advisor="doctor_testkit:RaiseEverythingAdvisor")
    ids = doctor.monitor.log.flagged[1]
    assert ids.numel() > 0
    torch.testing.assert_close(model.fc.weight.detach()[ids], before[ids] * SCALE_UP)
    others = torch.ones(before.shape[0], dtype=torch.bool)
    others[ids] = False
    assert torch.equal(model.fc.weight.detach()[others], before[others])
    doctor.close()


def test_watch_mode_changes_nothing_and_logs_the_proposal() -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run()
    reference, ref_opt, _ = setup_run()
    doctor = TrainingDoctor(model, opt, (xv, yv), every=10, policy="advisor_greedy", mode="watch",
                            advisor="doctor_testkit:RaiseEverythingAdvisor")
    plain_loop(model, opt, x, y, 20, doctor)
    plain_loop(reference, ref_opt, x, y, 20)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)  # the doctor's passes (eval, hooks removed) leave training bit-identical
    assert opt.param_groups[0]["lr"] == 0.05 and doctor.aug_level == 0
    doctor.close()
    records = list(doctor.log.records)
    assert all(r["move"] == [1, 1, 1, 1] and r["applied_move"] == [0, 0, 0, 0] and r["decided_by"] == "watch"
               for r in records)


class _ScriptedDecider:
    def __init__(self, answers: list[Decision | None]) -> None:
        self.answers, self.seen = answers, []

    def decide(self, proposal: Proposal, default: Decision, timeout_s: float) -> Decision:
        self.seen.append(proposal)
        answer = self.answers.pop(0)
        return default if answer is None else answer


def test_propose_mode_applies_what_the_decider_returns_and_the_default() -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run()
    decider = _ScriptedDecider([Decision((-1, 0, 0, 0), DecidedBy.HUMAN, "edit"), None,
                                Decision(KEEP, DecidedBy.HUMAN, "skip")])
    doctor = TrainingDoctor(model, opt, (xv, yv), every=10, policy="advisor_greedy", mode="propose",
                            decider=decider, default="policy", advisor="doctor_testkit:RaiseEverythingAdvisor")
    plain_loop(model, opt, x, y, 20, doctor)
    # edit: lr / 2; default "policy": lr * 2 (the proposed raise-everything move); skip: unchanged.
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    assert doctor.aug_level == 1
    assert [p.proposed_move for p in decider.seen] == [(1, 1, 1, 1)] * 3
    assert decider.seen[0].diagnosis_text and decider.seen[0].findings == ("plateau",)
    assert {"flagged_neurons", "recent_events"} <= set(decider.seen[0].evidence)
    doctor.close()
    assert [(r["decided_by"], r["action"]) for r in doctor.log.records] == [
        ("human", "edit"), ("default", "timeout"), ("human", "skip")]


def test_same_seed_same_decisions_and_observation_matches_the_env_layout() -> None:
    runs = []
    for _ in range(2):
        model, opt, (x, y, xv, yv, _, _) = setup_run()
        doctor = TrainingDoctor(model, opt, (xv, yv), every=10, policy="advisor_greedy")
        plain_loop(model, opt, x, y, 30, doctor)
        doctor.close()
        runs.append(([r["report"] for r in doctor.log.records], [p.detach().clone() for p in model.parameters()]))
        obs_space = doctor.monitor.observation_space
    assert json.dumps(runs[0][0]) == json.dumps(runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert obs_space["training_stats"].shape == (len(TRAINING_FIELDS),)


def test_contract_errors_are_one_clear_message() -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run()
    with pytest.raises(ValueError, match="mode must be one of"):
        TrainingDoctor(model, opt, (xv, yv), mode="sometimes")
    with pytest.raises(ValueError, match="every must be"):
        TrainingDoctor(model, opt, (xv, yv), every=0)
    with pytest.raises(ValueError, match="labels must be a 1-D integer"):
        TrainingDoctor(model, opt, (xv, yv.float()))
    with pytest.raises(ValueError, match="non-finite"):
        TrainingDoctor(model, opt, (xv * float("nan"), yv))
    with pytest.raises(ValueError, match="outputs 10 logits but n_classes=3"):
        TrainingDoctor(model, opt, (xv, yv), n_classes=3)
    with pytest.raises(ValueError, match="policy must be a string or an object with predict"):
        TrainingDoctor(model, opt, (xv, yv), policy=42)
    with pytest.raises(ValueError, match="no saved agent"):
        TrainingDoctor(model, opt, (xv, yv), policy="runs/does-not-exist")
    with pytest.raises(ValueError, match="no pretrained agent 'nope'"):
        TrainingDoctor(model, opt, (xv, yv), policy="pretrained:nope")
    with pytest.raises(ValueError, match="unknown TrainingDoctor argument"):
        TrainingDoctor(model, opt, (xv, yv), horizon=3)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer"):
        TrainingDoctor(model, "sgd", (xv, yv))  # type: ignore[arg-type]


def test_pretrained_agent_gets_exactly_its_observation_keys_and_raises_a_far_too_low_lr() -> None:
    """At LR 1e-4 TinyNet does not learn; the shipped agent, reading the doctor's observation as it read the env's,
    raises the LR at every one of the first checks (measured: 5 of 5 on seeds 0 and 1, then it settles)."""
    model, opt, (x, y, xv, yv, _, _) = setup_run(lr=1e-4)
    doctor = TrainingDoctor(model, opt, (xv, yv), every=20, policy="pretrained:digits-mlp", total_steps=400)
    assert doctor.policy.obs_keys == ("training_stats",)
    decisions = plain_loop(model, opt, x, y, 100, doctor)
    assert [d.applied_move[0] for d in decisions] == [1] * 5
    assert opt.param_groups[0]["lr"] >= 1e-4 * 2**5
    doctor.close()


@pytest.mark.slow  # 4 x 400 TinyNet steps with checks
def test_pretrained_agent_rescues_a_bad_start_and_leaves_a_healthy_one_alone() -> None:
    """The doctor's promise: a run at a far too low LR ends far better with the shipped agent than without it;
    a run at a good LR ends about where it would have (measured: 0.098 -> 0.929 and 0.939 -> 0.926, seed 0)."""
    def final_accuracy(lr: float, policy: str | None) -> float:
        model, opt, (x, y, xv, yv, xt, yt) = setup_run(lr=lr)
        doctor = None if policy is None else TrainingDoctor(model, opt, (xv, yv), every=20, policy=policy,
                                                            total_steps=400)
        plain_loop(model, opt, x, y, 400, doctor)
        if doctor is not None:
            doctor.close()
        with torch.no_grad():
            return float((model(xt).argmax(1) == yt).float().mean())

    assert final_accuracy(1e-4, "pretrained:digits-mlp") > final_accuracy(1e-4, None) + 0.5
    assert final_accuracy(0.05, "pretrained:digits-mlp") > final_accuracy(0.05, None) - 0.05


def test_a_policy_trained_on_other_observations_is_refused() -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run()

    class Picky:
        observation_space = __import__("gymnasium").spaces.Dict(
            {"training_stats": __import__("gymnasium").spaces.Box(-1, 1, (5,), np.float32)})
        env_overrides = {"obs_keys": ("training_stats",)}

        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.ones(4, dtype=np.int64), state

    with pytest.raises(ValueError, match="was trained on observations"):
        TrainingDoctor(model, opt, (xv, yv), policy=Picky())


def test_validation_loader_is_accepted() -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=64)
    doctor = TrainingDoctor(model, opt, loader, every=10, val_size=100)
    assert doctor._x_val.shape[0] == 100
    doctor.close()


@pytest.mark.slow  # loads MNIST-5000 and trains a CNN
def test_demo_cli_runs_end_to_end_and_rejects_bad_flags(tmp_path, capsys) -> None:
    from traingym.doctor.demo import main

    log = tmp_path / "demo.jsonl"
    assert main(["demo", "--steps", "40", "--every", "20", "--log-path", str(log)]) == 0
    out = capsys.readouterr().out
    assert "mode=auto" in out and "final test accuracy" in out  # pytest's stdin is not a terminal: auto
    assert len(read_trajectories(log)) == 3
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--every", "0"])
    assert exit_info.value.code == 2 and "every must be >= 1" in capsys.readouterr().err


def test_demo_trains_a_users_task_family(tmp_path, capsys) -> None:
    """``demo --task module:Class``: the family's own model, data split and hidden layers under the doctor."""
    from traingym.doctor.demo import main
    from traingym.envs.custom import EXAMPLE_TASK

    log = tmp_path / "demo.jsonl"
    assert main(["demo", "--task", EXAMPLE_TASK, "--steps", "80", "--every", "40", "--lr", "0.01",
                 "--log-path", str(log)]) == 0
    out = capsys.readouterr().out
    assert f"training blobs ({EXAMPLE_TASK}), TRAIN instance 0" in out and "final test accuracy" in out
    records = read_trajectories(log)
    assert len(records) == 3
    assert records[0]["report"]["task"]["family"] == "blobs"
    assert [layer["name"] for layer in records[0]["report"]["layers"]] == ["fc"]  # the family's hidden layers
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--task", "no_such_pkg.tasks:Fam"])
    assert exit_info.value.code == 2 and "cannot import task family" in capsys.readouterr().err


def test_decision_log_is_bounded_and_rotated_once(tmp_path) -> None:
    from traingym.doctor.decision_log import DecisionLog

    path = tmp_path / "d.jsonl"
    log = DecisionLog(path, capacity=4, max_file_bytes=2048)
    for step in range(60):
        log.add({"policy": "p", "step": step, "report": {"pad": "x" * 100}, "move": [0, 0, 0, 0],
                 "_val_accuracy_before": 0.5})
        log.complete({"val_accuracy": 0.6, "step": step + 1})
    log.close()
    assert len(log.records) == 4 and log.records[-1]["step"] == 59
    assert log.records[-1]["reward"] == pytest.approx(0.1)
    rotated = tmp_path / "d.jsonl.1"
    assert rotated.exists() and path.stat().st_size <= 2048 and rotated.stat().st_size <= 2048
    assert read_trajectories(path)[-1]["step"] == 59  # the newest records are kept


def test_divergence_rolls_back_to_the_last_healthy_check_and_walks_the_lr_down(tmp_path) -> None:
    def run(rollback: bool):
        model, opt, (x, y, xv, yv, _, _) = setup_run(lr=40.0)  # real divergence: this LR blows the TinyNet up
        doctor = TrainingDoctor(model, opt, (xv, yv), every=10, policy="keep", rollback=rollback,
                                log_path=tmp_path / f"{rollback}.jsonl")
        plain_loop(model, opt, x, y, 200, doctor)
        doctor.close()
        return doctor, opt, not doctor.last_report["diverged"], read_trajectories(tmp_path / f"{rollback}.jsonl")

    doctor, opt, healthy, records = run(rollback=True)
    assert doctor.rollbacks, "the run never diverged: raise the starting LR"
    assert healthy and all(bool(torch.isfinite(p).all()) for p in doctor.model.parameters())
    # Every restore halves the LR the run diverged at (the policy keeps everything else).
    assert all(r.lr_after == pytest.approx(r.lr_at_divergence / LR_FACTOR) for r in doctor.rollbacks)
    logged = [r["rollback"] for r in records if r["rollback"] is not None]
    assert len(logged) == len(doctor.rollbacks) and logged[0]["restored_check"] < records[-1]["step"]
    assert all(math.isfinite(v) for v in doctor.last_report["history"]["val_loss"])
    without, _, healthy_without, records_without = run(rollback=False)
    assert not without.rollbacks and not healthy_without  # the same run without rollback stays diverged
    assert all(r["rollback"] is None for r in records_without)


def test_a_collapsed_run_with_every_unit_of_a_layer_dead_is_rolled_back() -> None:
    def run(rollback: bool) -> TrainingDoctor:
        model, opt, (x, y, xv, yv, _, _) = setup_run(lr=2.0)  # real collapse: this LR kills every ReLU unit
        doctor = TrainingDoctor(model, opt, (xv, yv), every=10, policy="keep", rollback=rollback)
        plain_loop(model, opt, x, y, 120, doctor)
        doctor.close()
        return doctor

    without = run(rollback=False)
    assert not without.last_report["diverged"]  # not a divergence: the loss stays finite at chance level
    assert all(layer["dead_fraction"] == 1.0 for layer in without.last_report["layers"])
    doctor = run(rollback=True)
    assert doctor.rollbacks and {r.reason for r in doctor.rollbacks} == {"dead_layer"}
    assert all(layer["dead_fraction"] < 1.0 for layer in doctor.last_report["layers"])
    assert doctor.rollbacks[-1].lr_after == pytest.approx(doctor.rollbacks[-1].lr_at_divergence / LR_FACTOR)


def test_an_agent_that_picks_grid_cells_is_refused(tmp_path) -> None:
    from traingym.agents.args import Args
    from traingym.agents.train import train

    run = tmp_path / "patch-agent"
    train(Args(env="TrainGym/DigitsPatchPathologies-v0", total_timesteps=16, n_envs=1, horizon=2,
               steps_per_action=2, n_steps=8, eval_freq=0, checkpoint_freq=0, baselines=(), progress_bar=False,
               tensorboard=False, run_dir=str(run)))
    model, opt, (x, y, xv, yv, _, _) = setup_run()
    with pytest.raises(ValueError, match="mask_grid=4"):
        TrainingDoctor(model, opt, (xv, yv), policy=str(run))
