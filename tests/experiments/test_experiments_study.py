"""The multi-seed study: trains one run per seed, evaluates all agents and baselines on the same instances."""

from __future__ import annotations

from pathlib import Path

import pytest
from traingym.experiments.study import PRESET_VARIANTS, StudyArgs, main, pathology_table, run_study


def test_study_args_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="--seeds"):
        StudyArgs(seeds=(1, 1))
    with pytest.raises(ValueError, match="include keep"):
        StudyArgs(baselines=("steer",))


def test_smoke_study_trains_each_seed_once_and_pairs_every_baseline(tmp_path: Path) -> None:
    study = StudyArgs(seeds=(0, 1), smoke=True, eval_episodes=2, baselines=("keep", "steer"),
                      out_dir=str(tmp_path), write_page=False, workers=1)
    data = run_study(study)
    assert [r["seed"] for r in data["rows"]] == [0, 1]
    assert all(set(r["diff"]) == {"keep", "steer"} for r in data["rows"])
    assert len(data["episodes"]["keep"]) == 2 and set(data["episodes"]) == {"default-seed0", "default-seed1",
                                                                           "keep", "steer"}
    for seed in (0, 1):
        assert (tmp_path / "default" / "runs" / f"default-seed{seed}" / "model.zip").exists()
    # A second call reuses the trained runs (same numbers, no retraining).
    again = run_study(study)
    assert again["episodes"] == data["episodes"]
    assert [r["train_seconds"] for r in again["rows"]] == [r["train_seconds"] for r in data["rows"]]
    # The same runs given as existing agents: evaluated under their directory names, cached episodes reused.
    runs = [str(tmp_path / "default" / "runs" / f"default-seed{seed}") for seed in (0, 1)]
    given = run_study(StudyArgs(agents=tuple(runs), smoke=True, eval_episodes=2, baselines=("keep", "steer"),
                                out_dir=str(tmp_path), write_page=False, workers=1))
    assert given["episodes"] == data["episodes"]
    # Runs that differ only in their seed form one variant, named by their train_agent.py command.
    assert [r["seed"] for r in given["rows"]] == [0, 1]
    variants = [r["variant"] for r in given["rows"]]
    assert variants[0] == variants[1] and "--total-timesteps" in variants[0]
    # Tuning: the same agents on fresh TRAIN-distribution draws, cached apart from the held-out episodes.
    tuning = run_study(StudyArgs(agents=tuple(runs), smoke=True, eval_episodes=2, baselines=("keep", "steer"),
                                 out_dir=str(tmp_path), write_page=False, workers=1, instance_set="sampled"))
    assert tuning["episodes"]["keep"] != data["episodes"]["keep"]
    assert (tmp_path / "default" / "episodes-sampled-2" / "keep.json").exists()  # one folder per instance list
    assert run_study(StudyArgs(agents=tuple(runs), smoke=True, eval_episodes=2, baselines=("keep", "steer"),
                               out_dir=str(tmp_path), write_page=False, workers=1))["episodes"] == data["episodes"]
    # An ablation of the evaluation envs: its episodes are cached apart, the held-out ones stay as they were.
    ablated = run_study(StudyArgs(agents=tuple(runs), smoke=True, eval_episodes=2, baselines=("keep",),
                                  out_dir=str(tmp_path), write_page=False, workers=1, relevance=False))
    assert (tmp_path / "default" / "episodes-2-no-relevance" / "keep.json").exists()
    # ... and the page pairs each policy with its episodes as trained (the cached ones)
    gain = ablated["summary"]["ablation_gain"]
    assert gain["keep"]["with"] == pytest.approx(sum(data["episodes"]["keep"]) / 2)
    assert gain["keep"]["without"] == pytest.approx(sum(ablated["episodes"]["keep"]) / 2)
    assert run_study(study)["episodes"] == data["episodes"]


def test_the_relevance_ablation_reaches_every_policys_env_and_names_its_page() -> None:
    from traingym.agents.baselines import make_baseline
    from traingym.agents.episodes import EpisodeSettings, make_policy_env

    study = StudyArgs(preset="pathologies_kickstart_128", relevance=False)
    assert study.page_name()[0] == "agent_pathologies_kickstart_128_no_relevance"
    assert StudyArgs(preset="pathologies_kickstart_128").page_name()[0] == "agent_pathologies_kickstart_128"
    assert StudyArgs(relevance=False, page="mine").page_name()[0] == "mine"
    settings = EpisodeSettings(study.env, 3, 5, (0,), ablation=study.ablation())
    assert settings.env_kwargs({"relevance": True, "obs_keys": ("training_stats",)})["relevance"] is False
    env = make_policy_env(make_baseline("diagnosis_aware", study.env, seed=0, horizon=3), settings)
    try:
        assert env.unwrapped.config.relevance is False  # type: ignore[attr-defined]
    finally:
        env.close()
    with pytest.raises(ValueError, match="--page must be"):
        StudyArgs(page="../x")


def test_cli_takes_the_preset_as_a_positional_argument(tmp_path: Path) -> None:
    assert main(["default", "--seeds", "3", "--smoke", "--eval-episodes", "1", "--baselines", "keep",
                 "--out-dir", str(tmp_path), "--no-write-page", "--workers", "1"]) == 0
    assert (tmp_path / "default" / "study.json").exists()


def test_train_command_reproduces_the_non_default_arguments() -> None:
    from traingym.agents.args import Args
    from traingym.agents.cli import parse_args
    from traingym.experiments.study import train_command

    args = Args(obs_keys=("training_stats", "neurons"), n_envs=3, vec_env="subproc", gamma=0.99, normalize=False,
                net_arch=(32, 32))
    command = train_command(args)
    assert command == ("python train_agent.py --obs-keys training_stats neurons --n-envs 3 --vec-env subproc "
                       "--no-normalize --gamma 0.99 --net-arch 32 32")
    assert parse_args(command.split()[2:]) == args


def test_generalisation_preset_trains_on_three_families_and_evaluates_on_mnist(tmp_path: Path) -> None:
    study = StudyArgs(preset="generalisation", seeds=(0,), smoke=True, eval_episodes=2, out_dir=str(tmp_path),
                      write_page=False, workers=1)
    assert study.env == "TrainGym/MNISTCNN-v0" and study.baselines == ("keep", "plateau", "steer")
    args = study.agent_args("digits_mlp+digits_cnn+tabular_mlp", 0)
    assert args.env == "TrainGym/MNISTCNN-v0" and args.env not in args.training_env_ids()
    assert set(args.training_env_ids()) == {"TrainGym/DigitsMLP-v0", "TrainGym/DigitsCNN-v0",
                                            "TrainGym/TabularMLP-v0"}
    data = run_study(study)
    assert set(data["episodes"]) == {"digits_mlp+digits_cnn+tabular_mlp-seed0", "keep", "plateau", "steer"}
    assert set(data["rows"][0]["diff"]) == {"keep", "plateau", "steer"}


def test_every_preset_variant_is_a_valid_training_run(tmp_path: Path) -> None:
    for preset, variants in PRESET_VARIANTS.items():
        study = StudyArgs(preset=preset, seeds=(0,), smoke=True, out_dir=str(tmp_path))  # type: ignore[arg-type]
        for variant, overrides in variants.items():
            args = study.agent_args(variant, 0)  # Args validates its fields
            assert all(getattr(args, key) == value for key, value in overrides.items())
    raw = StudyArgs(preset="ablation", smoke=True).agent_args("training_stats+neurons-raw", 0)
    assert raw.norm_obs_keys == ("training_stats",) and raw.resolved_obs_keys() == ("training_stats", "neurons")


def test_the_pathology_ablation_shares_the_pathology_study_runs(tmp_path: Path) -> None:
    ablation = StudyArgs(preset="pathologies_ablation", out_dir=str(tmp_path))
    study = StudyArgs(preset="pathologies", out_dir=str(tmp_path))
    for variant in PRESET_VARIANTS["pathologies"]:  # the same run: trained once, evaluated once
        assert ablation.agent_args(variant, 1) == study.agent_args(variant, 1)
    assert set(PRESET_VARIANTS["pathologies_ablation"]) - set(PRESET_VARIANTS["pathologies"]) == {
        "training_stats+neurons", "training_stats+diagnosis", "training_stats-30k",
        "training_stats+neurons+diagnosis-30k"}
    longer = ablation.agent_args("training_stats-30k", 1)
    assert longer.total_timesteps == 3 * study.agent_args("training_stats", 1).total_timesteps
    assert ablation.agent_args("training_stats+neurons", 1).run_dir != study.agent_args("training_stats", 1).run_dir


def test_the_128_instance_kickstart_study_reuses_the_kickstart_runs_on_all_held_out_instances(tmp_path: Path
                                                                                             ) -> None:
    wide = StudyArgs(preset="pathologies_kickstart_128", out_dir=str(tmp_path))
    kickstart = StudyArgs(preset="pathologies_kickstart", out_dir=str(tmp_path))
    assert wide.eval_episodes == 128 and kickstart.eval_episodes == 64
    assert PRESET_VARIANTS["pathologies_kickstart_128"]
    for variant in PRESET_VARIANTS["pathologies_kickstart_128"]:
        assert wide.agent_args(variant, 2) == kickstart.agent_args(variant, 2)


def test_pathology_table_averages_each_planted_pathology_over_seeds() -> None:
    rows = [{"variant": "v", "label": "v-seed0", "seed": 0}, {"variant": "v", "label": "v-seed1", "seed": 1}]
    episodes = {"v-seed0": [1.0, 0.0, 0.5], "v-seed1": [0.0, 0.0, 0.5], "keep": [0.2, 0.4, 0.6]}
    summary: dict = {}
    lines = pathology_table(rows, ("keep",), episodes, ["clean", "spurious", "clean"], summary)
    assert summary["per_pathology"] == {"v": {"clean": 0.5, "spurious": 0.0}, "keep": {"clean": 0.4, "spurious": 0.4}}
    assert "| clean (n=2) | spurious (n=1) |" in lines[2] and lines[-1] == "| keep | 0.400 | 0.400 |"



def test_episodes_cached_before_the_ablation_field_existed_are_reused(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from dataclasses import asdict

    from traingym.agents.episodes import EpisodeResult, EpisodeSettings
    from traingym.agents.policies import PolicySpec
    from traingym.experiments import study as study_module

    settings = EpisodeSettings("TrainGym/DigitsMLP-v0", 3, 5, (0,))
    spec = PolicySpec("keep", "keep", 0)
    old_key = {k: v for k, v in asdict(settings).items() if k != "ablation"}
    episode = EpisodeResult("keep", 0, 0, 0.5, 0.5, False, 3, 0.1, 0.1)
    (tmp_path / "keep.json").write_text(json.dumps({"settings": json.dumps(old_key, sort_keys=True, default=list),
                                                    "spec": asdict(spec), "episodes": [asdict(episode)]}))
    monkeypatch.setattr(study_module, "evaluate", lambda *a: pytest.fail("re-evaluated a cached policy"))
    assert study_module.evaluate_cached([spec], settings, 1, tmp_path)["keep"][0].test_accuracy == 0.5
