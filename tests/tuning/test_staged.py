"""Staged tuning: stage declarations, what each stage carries forward, a real
staged run stopped by Ctrl-C and resumed, and --lr-range auto's real range test."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys

import optuna
import pandas as pd
import pytest

import tests.processes as proc
from pipelines.errors import UsageError
from pipelines.search.space import Choice, Domain, LogUniform
from pipelines.search.sweep import (
    CARRIED_KEY,
    DEFAULT_STAGE_ORDER,
    Stage,
    default_stages,
    start_values,
    with_carried,
)
from pipelines.search.sweep_loader import load_sweep
from pipelines.tuning.run_plan import RunOptions, plan
from pipelines.tuning.staged import stage_plan, stage_summary, top_configs
from pipelines.tuning.study_journal import JOURNAL_FILE, StudyJournal
from tests.conftest import REPO, data_dir

SPACE: dict[str, Domain] = {"lr": LogUniform(1e-3, 1.0), "batch_size": Choice((64, 128)),
                            "width": Choice((8, 16))}


def _sweep(stages):
    return dataclasses.replace(load_sweep("cifar_sweep"), space=SPACE, stages=stages)


@pytest.mark.parametrize("stages,message", [
    ((Stage("lr", ("lr",), 2, 2), Stage("rest", ("batch_size",), 1, 1)),
     "parameter(s) ['width'] are in no stage"),
    ((Stage("a", ("lr", "momentum"), 2, 2),), "['momentum'] not in the sweep's space"),
    ((Stage("a", ("lr",), 2, 2), Stage("a", ("batch_size", "width"), 1, 1)),
     "stage names must be unique"),
    ((Stage("lr/x", ("lr", "batch_size", "width"), 1, 1),), "must be an identifier"),
    ((Stage("a", ("lr", "batch_size", "width"), 1, 1, top_k=0),), "must be >= 1"),
    ((Stage("a", ("lr", "batch_size", "width"), 1, 1, algo="bayes"),), "unknown algo 'bayes'"),
    ((Stage("a", (), 1, 1),), "searches no parameter"),
])
def test_bad_stages_are_refused_with_the_fix(stages, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        _sweep(stages).check()


def test_a_parameter_may_come_back_in_a_later_stage():
    _sweep((Stage("lr", ("lr",), 2, 2), Stage("b", ("batch_size", "lr", "width"), 1, 1))).check()


def test_default_stages_follow_the_practitioners_order():
    space = load_sweep("cifar_sweep").space
    stages = default_stages(space, 4, 2)
    assert [s.name for s in stages] == [name for name, _ in DEFAULT_STAGE_ORDER]
    assert stages[0].params == ("lr",) and stages[1].params == ("batch_size",)
    assert sorted(p for s in stages for p in s.params) == sorted(space)
    _sweep(default_stages(SPACE, 3, 1)).check()


def test_a_trial_builds_on_the_carried_configuration_it_searched():
    carried = ({"lr": 0.1, "width": 8}, {"lr": 0.2, "width": 16})
    assert with_carried({"batch_size": 64, CARRIED_KEY: 1}, carried) == \
        {"lr": 0.2, "width": 16, "batch_size": 64}
    assert with_carried({"width": 32}, carried[:1]) == {"lr": 0.1, "width": 32}
    assert with_carried({"lr": 0.3}, ()) == {"lr": 0.3}


def _plan(tmp_path, stages, **options):
    return plan(RunOptions(sweep="cifar_sweep", quick=True, storage=str(tmp_path), **options),
                _sweep(stages))


STAGES = (Stage("lr", ("lr",), 4, 3, top_k=2), Stage("batch", ("batch_size",), 1, 1,
                                                       algo="grid"),
          Stage("width", ("width",), 1, 1, algo="random"))


def test_a_stage_searches_only_its_own_parameters(tmp_path):
    p = _plan(tmp_path, STAGES, seed=5)
    assert p.staged and p.param_space == {}
    first = stage_plan(p, 1, STAGES[0], (start_values(SPACE),))
    assert set(first.param_space) - set(p.fixed) == {"lr"} and first.num_samples == 3
    assert first.fixed["batch_size"] == 256 and first.fixed["width"] == 16  # trainer defaults
    carried = ({**start_values(SPACE), "lr": 0.1}, {**start_values(SPACE), "lr": 0.3})
    second = stage_plan(p, 2, STAGES[1], carried)
    assert second.param_space["batch_size"] == {"grid_search": [64, 128]}
    assert second.param_space[CARRIED_KEY] == {"grid_search": [0, 1]}
    assert "lr" not in second.param_space  # it comes from the carried configuration
    assert second.options.seed == 6 and second.fixed["seed"] == 5  # searcher, trials


@pytest.mark.parametrize("flag", [{"num_samples": 3}, {"epoch_budget": 10}])
def test_a_staged_sweep_refuses_a_joint_budget(tmp_path, flag):
    with pytest.raises(UsageError, match="runs in stages, each with its own number of trials"):
        _plan(tmp_path, STAGES, **flag)


def test_joint_searches_the_whole_space_at_once(tmp_path):
    p = _plan(tmp_path, STAGES, joint=True, epoch_budget=10)
    assert not p.staged and {"lr", "batch_size", "width"} <= set(p.param_space)


def _trials(rows):
    return pd.DataFrame([{"stage": s, "trial_id": t, "best_val_acc": acc, "epochs": 2,
                          "config/lr": lr, "config/batch_size": b, "config/width": 16,
                          "config/epochs": 2} for s, t, acc, lr, b in rows])


def test_the_best_configurations_so_far_go_forward(tmp_path):
    p = _plan(tmp_path, STAGES)
    trials = _trials([("lr", "a", 0.30, 0.1, 256), ("lr", "b", 0.50, 0.2, 256),
                      ("lr", "c", float("nan"), 0.9, 256), ("lr", "d", 0.50, 0.2, 256),
                      ("lr", "e", 0.40, 0.05, 256)])
    best_two = top_configs(trials, p, 2)
    assert [c["lr"] for c in best_two] == [0.2, 0.05]  # distinct configurations, scored ones
    assert set(best_two[0]) == set(SPACE)  # the space's parameters, not epochs or seed
    # a later stage whose trials are all worse keeps the earlier best ("kept")
    later = pd.concat([trials, _trials([("batch", "f", 0.45, 0.2, 64)])])
    after = top_configs(later, p, 1)
    summary = stage_summary(2, STAGES[1], later, p, best_two, after)
    assert after[0]["lr"] == 0.2 and after[0]["batch_size"] == 256
    assert summary["changed"] == {} and summary["best_in_stage"] == 0.45
    assert summary["best_so_far"] == 0.50 and summary["trials"] == 1


# cifar_staged's six stages, space, budget and algorithms, with at most 3 trials in a
# stage that samples (5 or 6 in the sweep): a stage's cost is mostly its start (its trial
# workers, torch's first step), and 3 are enough for the top 2 to go on
FEWER_TRIALS_STAGED = '''
import dataclasses

from search_spaces import cifar_staged

SWEEP = dataclasses.replace(cifar_staged.SWEEP, stages=tuple(
    dataclasses.replace(s, quick_num_samples=min(s.quick_num_samples, 3))
    for s in cifar_staged.SWEEP.stages))
'''


def staged_run(tmp_path) -> list[str]:
    # a trial takes both of the 2 cores: one trial at a time, so each stage starts one
    # trial worker, not two (a worker's start, its imports, is most of a stage's cost;
    # its trials take ~1 s). Not --max-concurrent 1: Tune ignores it for grid/random.
    sweep_file = tmp_path / "sweeps" / "cifar_staged.py"
    sweep_file.parent.mkdir()
    sweep_file.write_text(FEWER_TRIALS_STAGED)
    return [sys.executable, "-m", "pipelines.run", str(sweep_file), "--quick",
            "--train-size", "400", "--val-size", "100", "--max-epochs", "2",
            "--cpus-per-trial", "2", "--data-dir", str(data_dir()), "--name", "run"]


@pytest.mark.integration
def test_staged_run_survives_ctrl_c_and_resumes_at_its_stage(tmp_path):
    # the local Ctrl-C + --resume test for every run (an unstaged run on S3: test_storage)
    run_dir = tmp_path / "cifar_staged" / "run"
    driver = subprocess.Popen([*staged_run(tmp_path), "--storage", str(tmp_path)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    assert driver.stderr is not None
    try:
        for line in driver.stderr:  # Ctrl-C once the third stage has a result
            if line.startswith("stage 3/6"):
                break
        proc.wait_for(lambda: (run_dir / "stages" / "3-optimizer" / "trials.parquet").exists(),
                      120, "a result of stage 3")
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        proc.stop(driver)
    assert driver.returncode == 130, err
    assert f"finish the run with --resume {run_dir}" in err
    assert out.strip().splitlines()[-1] == f"results: {run_dir}"
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted"
    finished = [d for d in sorted((run_dir / "stages").iterdir())
                if json.loads((d / "run.json").read_text())["status"] == "finished"]
    assert [d.name for d in finished][:2] == ["1-lr", "2-batch_size"]
    logs_before = {log: log.read_text() for d in finished for log in d.glob("tune/*/result.json")}

    proc.run_to_completion([sys.executable, "-m", "pipelines.run", "--resume", str(run_dir)],
                           dict(os.environ), tmp_path / "resume.log")
    for log, text in logs_before.items():  # finished stages did not run again
        assert log.read_text() == text
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and len(meta["stage_results"]) == 6
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert list(trials["stage"].unique()) == [s["name"] for s in meta["stages"]] == \
        [s.name for s in load_sweep("cifar_staged").stages]  # the built-in sweep's stages
    assert trials.groupby("stage", sort=False).size().tolist() == [3, 6, 3, 2, 3, 3]
    assert trials["trial_id"].is_unique and not epochs.duplicated(["trial_id", "epoch"]).any()
    assert trials["epochs"].sum() == len(epochs)
    # the run's journal: one Optuna study per stage, each trial once despite the resume
    storage = StudyJournal(str(run_dir / JOURNAL_FILE), "").storage()
    stage_dirs = sorted(d.name for d in (run_dir / "stages").iterdir())
    assert sorted(optuna.get_all_study_names(storage)) == \
        [f"cifar_staged/run/{d}" for d in stage_dirs]
    for d in stage_dirs:
        study = optuna.load_study(study_name=f"cifar_staged/run/{d}", storage=storage)
        ids = [t.user_attrs["trial_id"] for t in study.trials if "trial_id" in t.user_attrs]
        assert sorted(ids) == sorted(trials[trials["stage"] == d.split("-", 1)[1]]["trial_id"])
    first = trials[trials["stage"] == "lr"]
    assert (first["config/batch_size"] == 256).all() and (first["config/optimizer"] == "sgd").all()
    # the lr stage carries its two best learning rates into every batch size
    best_two = first.sort_values("best_val_acc", ascending=False)["config/lr"].head(2)
    batch = trials[trials["stage"] == "batch_size"]
    assert len(batch) == 6 and set(batch["config/lr"]) == set(best_two)
    assert set(batch["config/batch_size"]) == {64, 128, 256}
    assert (trials["effective_lr"] == trials["config/lr"] * trials["config/batch_size"] / 256).all()
    # each stage after the first builds on the best configuration found before it
    for summary, stage in zip(meta["stage_results"][:-1], meta["stages"][1:]):
        rows = trials[trials["stage"] == stage["name"]]
        for key, value in summary["best_config"].items():
            if key not in stage["params"] and not (stage["name"] == "batch_size"
                                                   and key == "lr"):
                assert (rows[f"config/{key}"] == value).all(), (stage["name"], key)


def _suggest(p, suggestions):
    from pipelines.tuning.lr_narrowing import narrowed_domain

    return narrowed_domain(p, suggestions)


def test_lr_range_auto_narrows_around_every_optimizers_suggestion(tmp_path):
    from pipelines.tuning.lr_narrowing import apply

    p = _plan(tmp_path, STAGES)  # lr in [1e-3, 1]
    after = _suggest(p, {"sgd": 0.1, "adam": 0.002})
    assert (after["low"], after["high"]) == (pytest.approx(1e-3), pytest.approx(0.3))
    narrowed = apply(p, {"after": after})
    lr = narrowed.sweep.space["lr"]
    assert isinstance(lr, LogUniform)
    assert narrowed.staged and lr.high == pytest.approx(0.3) and len(lr.grid) == 3
    joint = apply(_plan(tmp_path, STAGES, joint=True), {"after": after})
    assert not joint.staged and joint.param_space["lr"].upper == pytest.approx(0.3)
    with pytest.raises(UsageError, match="outside the sweep's lr domain"):
        _suggest(p, {"sgd": 50.0})


def test_lr_range_auto_fixes_an_unsearched_lr(tmp_path):
    from pipelines.tuning.lr_narrowing import apply

    space = {k: v for k, v in SPACE.items() if k != "lr"}
    sweep = dataclasses.replace(load_sweep("cifar_sweep"), space=space, stages=())
    p = plan(RunOptions(sweep="cifar_sweep", quick=True, storage=str(tmp_path)), sweep)
    after = _suggest(p, {"sgd": 0.07})
    assert after == {"type": "fixed", "value": 0.07}
    assert apply(p, {"after": after}).fixed["lr"] == 0.07
    with pytest.raises(UsageError, match="one lr cannot suit them all"):
        _suggest(p, {"sgd": 0.07, "adam": 0.001})


def test_lr_range_auto_runs_the_range_test_and_records_it(tmp_path, cifar_cache):
    from pipelines.data.images import prepare
    from pipelines.records.storage import resolve
    from pipelines.tuning.lr_narrowing import narrow, write

    space: dict[str, Domain] = {"lr": LogUniform(1e-3, 1.0), "width": Choice((8, 16))}
    # batch 32, not the trainer's 256: the test's steps (up to 300) cost an eighth as much
    sweep = dataclasses.replace(load_sweep("cifar_sweep"), space=space, stages=(),
                                fixed={"optimizer": "sgd", "batch_size": 32})
    p = plan(RunOptions(sweep="cifar_sweep", quick=True, storage=str(tmp_path)), sweep)
    narrowed, narrowing = narrow(p, prepare(str(data_dir()), None, 2000, 200, 0))
    assert narrowing.results["sgd"][0].batch_size == 32
    suggestion = narrowing.record["suggestions"]["sgd"]
    lr = narrowed.sweep.space["lr"]
    assert isinstance(lr, LogUniform)
    assert 1e-3 <= lr.low < suggestion < lr.high <= 1.0  # a real suggestion, inside
    assert lr.high == pytest.approx(min(1.0, 3 * suggestion))
    record = write(narrowing, resolve(str(tmp_path / "run")))
    curve = pd.read_parquet(tmp_path / "run" / record["curves"]["sgd"])
    assert len(curve) >= 50 and (tmp_path / "run" / "lr_range" / "sgd" / "lr_range.png").is_file()
