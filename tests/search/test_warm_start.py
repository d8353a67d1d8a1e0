"""--warm-start (pipelines.search.warm_start): an earlier run's finished trials handed
to the searcher as evaluated points. From a user's sweep file outside the repository
(its own training loop on scikit-learn's digits, val_nll, lower is better): what is
carried over and what is dropped, bad input, and the searchers (HyperOpt, Optuna)
starting with the old trials in their history, none of them run again."""

from __future__ import annotations

import dataclasses
import math
import textwrap

import optuna
import pandas as pd
import pytest
from ray.tune.search.hyperopt import HyperOptSearch

from pipelines.errors import UsageError
from pipelines.run import main
from pipelines.search.searchers import WARM_START_ATTR
from pipelines.search.space import Choice, LogUniform, to_tune
from pipelines.search.sweep import Stage
from pipelines.search.warm_start import load_warm_start
from pipelines.tuning.run_plan import RunOptions, plan
from pipelines.tuning.study_journal import JOURNAL_FILE, StudyJournal
from tests.conftest import REPO
from tests.user_sweeps import FUNCTION_SWEEP, write_function_sweep

pytestmark = pytest.mark.integration

OLD_TRIALS = 5
# the same loop, searching only its momentum (lr and width fixed): no parameter shared
MOMENTUM_SWEEP = textwrap.dedent(FUNCTION_SWEEP).replace(
    "momentum=0.9", 'momentum=config["momentum"]').replace(
    "from pipelines import Budget, Choice, LogUniform, Sweep",
    "from pipelines import Budget, Sweep, Uniform").replace(
    'space={"lr": LogUniform(1e-3, 0.5, grid=(0.3, 0.03, 1e-3)), "hidden": Choice((8, 32))},',
    'space={"momentum": Uniform(0.5, 0.99)}, fixed={"lr": 0.1, "hidden": 32},').replace(
    "SLEEP_S", "0.0")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory, local_ray):
    """A finished quick run of the user's sweep (random search, ASHA): its file and
    its run directory."""
    tmp = tmp_path_factory.mktemp("warm_start")
    sweep_file = write_function_sweep(tmp / "user_repo")
    assert not sweep_file.is_relative_to(REPO)
    assert main([str(sweep_file), "--quick", "--algo", "random", "--num-samples",
                 str(OLD_TRIALS), "--max-epochs", "2", "--storage", str(tmp / "results"),
                 "--name", "old"]) == 0
    return sweep_file, tmp / "results" / "digits_loop" / "old"


def planned(sweep_file, tmp_path, algo="optuna"):
    """The user's sweep and its compiled space, as a run would plan them."""
    p = plan(RunOptions(sweep=str(sweep_file), quick=True, algo=algo,
                        storage=str(tmp_path / "results")))
    return p.sweep, p.param_space


def test_every_finished_trial_becomes_a_point_with_its_best_value(old_run, tmp_path):
    sweep_file, run_dir = old_run
    sweep, space = planned(sweep_file, tmp_path)
    warm = load_warm_start(str(run_dir), sweep, "optuna", space)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == OLD_TRIALS and trials["best_val_nll"].notna().all()
    assert (warm.dropped, warm.skipped) == (0, 0)
    assert warm.summary() == f"warm start: {OLD_TRIALS} finished trials of {run_dir}"
    # each point is exactly the searched keys, valued as the domains take them
    assert all(set(p) == {"lr", "hidden"} and isinstance(p["hidden"], int) for p in warm.points)
    expected = {(row["config/lr"], row["config/hidden"]): row["best_val_nll"]
                for _, row in trials.iterrows()}
    assert {(p["lr"], p["hidden"]): r for p, r in zip(warm.points, warm.rewards)} == expected


def test_values_outside_a_narrower_space_are_dropped_and_counted(old_run, tmp_path):
    sweep_file, run_dir = old_run
    sweep, _ = planned(sweep_file, tmp_path)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    low = float(trials["config/lr"].median())  # about half the trials lie below it
    keep = int(trials.sort_values("config/lr")["config/hidden"].iloc[-1])  # one trial fits
    narrow = dataclasses.replace(sweep, space={"lr": LogUniform(low, 0.5),
                                               "hidden": Choice((keep, 64))})
    outside_lr = trials["config/lr"] < low
    outside_hidden = ~outside_lr & (trials["config/hidden"] != keep)  # lr is checked first
    warm = load_warm_start(str(run_dir), narrow, "hyperopt",
                           to_tune(narrow.space, "hyperopt", {}))
    assert warm.dropped == int(outside_lr.sum() + outside_hidden.sum()) > 0
    assert len(warm.points) == OLD_TRIALS - warm.dropped
    assert all(p["lr"] >= low and p["hidden"] == keep for p in warm.points)
    reasons = {"lr outside this space's domain": int(outside_lr.sum()),
               "hidden outside this space's domain": int(outside_hidden.sum())}
    assert warm.reasons == {k: n for k, n in reasons.items() if n}
    assert f"({warm.dropped} dropped: " in warm.summary()


@pytest.mark.parametrize("change, message", [
    ({"space": {"lr": LogUniform(1e-3, 0.5), "hidden": Choice((16,))}},
     "none of its 5 trials fits this run (5 hidden outside this space's domain)"),
    ({"metric": "val_error"}, "it recorded no val_error (its objectives: val_nll)"),
    ({"stages": (Stage("lr", ("lr", "hidden"), 2, 2),)}, "add --joint"),
])
def test_a_warm_start_nothing_of_which_fits_is_refused(old_run, tmp_path, change, message):
    sweep_file, run_dir = old_run
    sweep, space = planned(sweep_file, tmp_path)
    changed = dataclasses.replace(sweep, **change)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_warm_start(str(run_dir), changed, "optuna", to_tune(changed.space, "optuna", {}))


@pytest.mark.parametrize("case", ["not a run", "no shared parameter", "random", "grid"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(old_run, tmp_path, capsys, case):
    sweep_file, run_dir = old_run
    sweep, source, algo = str(sweep_file), str(run_dir), "optuna"
    if case == "not a run":
        source = str(run_dir.parent)  # the sweep's directory, above its runs
    elif case == "no shared parameter":
        sweep = str(sweep_file.with_name("digits_momentum.py"))
        sweep_file.with_name("digits_momentum.py").write_text(MOMENTUM_SWEEP)
    else:
        algo = case
    storage = tmp_path / "results"
    capsys.readouterr()
    assert main([sweep, "--quick", "--algo", algo, "--warm-start", source,
                 "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --warm-start {source}: ") and err.count("\n") == 1, err
    assert {"not a run": "not a results directory", "no shared parameter":
            "shares no parameter", "random": "use one of optuna, gp, nsga2, hyperopt",
            "grid": "takes no evaluated points"}[case] in err
    assert not storage.exists()


def new_trials(run_dir):
    return pd.read_parquet(run_dir / "trials.parquet")


def assert_none_ran_again(run_dir, warm):
    configs = {(row["config/lr"], row["config/hidden"])
               for _, row in new_trials(run_dir).iterrows()}
    assert not configs & {(p["lr"], p["hidden"]) for p in warm.points}


def warm_run(old_run, tmp_path, capsys, algo):
    sweep_file, source = old_run
    capsys.readouterr()
    assert main([str(sweep_file), "--quick", "--algo", algo, "--num-samples", "2",
                 "--max-epochs", "2", "--warm-start", str(source),
                 "--storage", str(tmp_path / "results"), "--name", "warm"]) == 0
    err = capsys.readouterr().err
    assert f"warm start: {OLD_TRIALS} finished trials of {source}\n" in err
    sweep, space = planned(sweep_file, tmp_path, algo)
    return tmp_path / "results" / "digits_loop" / "warm", \
        load_warm_start(str(source), sweep, algo, space)


def test_hyperopt_starts_with_the_old_trials_in_its_history(old_run, tmp_path, capsys):
    run_dir, warm = warm_run(old_run, tmp_path, capsys, "hyperopt")
    assert len(new_trials(run_dir)) == 2
    assert_none_ran_again(run_dir, warm)
    # the searcher as Tune saved it (what --resume restores): the old trials, done, with
    # their values as HyperOpt's losses (val_nll is minimised: the loss is the value),
    # then the two it suggested
    [saved] = (run_dir / "tune").glob("searcher-state-*.pkl")
    searcher = HyperOptSearch()
    searcher.restore(str(saved))
    history = searcher.get_state()["hyperopt_trials"]
    assert len(history.trials) == OLD_TRIALS + 2
    assert sorted(history.losses()[:OLD_TRIALS]) == pytest.approx(sorted(warm.rewards))
    assert all(math.isfinite(loss) for loss in history.losses())


def test_optuna_starts_with_the_old_trials_in_its_study(old_run, tmp_path, capsys):
    run_dir, warm = warm_run(old_run, tmp_path, capsys, "optuna")
    assert len(new_trials(run_dir)) == 2
    assert_none_ran_again(run_dir, warm)
    journal = StudyJournal(str(run_dir / JOURNAL_FILE), "digits_loop/warm")
    study = optuna.load_study(study_name=journal.study_name, storage=journal.storage())
    carried = [t for t in study.trials if WARM_START_ATTR in t.user_attrs]
    assert len(carried) == OLD_TRIALS and len(study.trials) == OLD_TRIALS + 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in carried)
    assert {(t.params["lr"], t.params["hidden"]): t.value for t in carried} == \
        {(p["lr"], p["hidden"]): r for p, r in zip(warm.points, warm.rewards)}
    assert [t.number for t in carried] == list(range(OLD_TRIALS))  # before any new trial

