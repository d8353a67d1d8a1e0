"""--confirm: a run's top configurations retrained with fresh seeds, summarised per
configuration, resumed, and used by --final. The run is a tiny search of a sweep
file outside the repository on scikit-learn's handwritten digits (not CIFAR-10),
written as Hugging Face-style Parquet with a test split, through the CLI's main()
in this process on local Ray."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis.confirmation import confirmed_winner, summarise, verdict
from pipelines.analysis.ranking import leaderboard
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.errors import UsageError
from pipelines.records.storage import resolve
from pipelines.run import main
from pipelines.search.sweep import CARRIED_KEY, build_config, with_carried
from pipelines.tuning.confirm import (
    SEED_OFFSET,
    confirm_plan,
    fresh_seeds,
    request,
    top_configurations,
)
from pipelines.tuning.run_plan import RunOptions, plan
from tests.conftest import REPO
from tests.digits import write_digits_parquet
from tests.user_sweeps import write_data_sweep, write_function_sweep

T_975 = {1: 12.706204736174707, 2: 4.302652729911275}  # Student's t, 97.5%, by df (tables)
# one trial at a time (both of local_ray's CPUs), so one worker process, reused, starts per
# experiment: a worker's start (torch's import) is most of this test's time
SEARCH = ["--quick", "--algo", "random", "--num-samples", "3", "--max-epochs", "1",
          "--grace-period", "1", "--train-size", "200", "--val-size", "100", "--scheduler",
          "none", "--cpus-per-trial", "2"]


# --- the summary and the verdict, on hand-made frames -------------------------------------

def _confirm_rows(scores: dict[int, list[float]]) -> pd.DataFrame:
    """confirm.parquet's rows: configuration rank -> its retrains' scores."""
    return pd.DataFrame([{"config_rank": rank, "trial_id": f"t{rank}", "seed": 10_000 + i,
                          "score": s, "epochs": 3, "config/lr": 0.1 * rank}
                         for rank, values in scores.items() for i, s in enumerate(values)])


def test_summary_is_mean_sd_and_a_t_interval_per_configuration():
    summary = summarise(_confirm_rows({1: [0.80, 0.82, 0.84], 2: [0.90, 0.91, 0.92]}), "max")
    assert list(summary["config_rank"]) == [2, 1]  # best mean first
    top, second = summary.iloc[0], summary.iloc[1]
    assert top["n"] == 3 and top["mean"] == pytest.approx(0.91)
    assert top["sd"] == pytest.approx(0.01) and second["sd"] == pytest.approx(0.02)
    half = T_975[2] * 0.01 / math.sqrt(3)
    assert (top["ci_low"], top["ci_high"]) == pytest.approx((0.91 - half, 0.91 + half))
    assert top["config/lr"] == pytest.approx(0.2) and top["trial_id"] == "t2"
    line = verdict(summary, "max")
    assert line.startswith("winner by mean: configuration 2 (trial t2)")
    assert "clear of the runner-up's" in line and "did not stay the winner" in line


def test_verdict_says_when_the_top_two_intervals_overlap():
    summary = summarise(_confirm_rows({1: [0.30, 0.40, 0.35], 2: [0.34, 0.48, 0.18]}), "min")
    assert list(summary["config_rank"]) == [2, 1]  # min: smallest mean first
    line = verdict(summary, "min")
    assert "overlaps the runner-up's" in line and "did not stay the winner" in line
    assert "stayed the winner" in verdict(summarise(_confirm_rows({1: [0.3], 2: [0.5]}), "min"),
                                          "min")


def test_one_seed_has_no_interval_and_a_missing_score_is_not_counted():
    summary = summarise(_confirm_rows({1: [0.7, float("nan")], 2: [0.6]}), "max")
    assert list(summary["n"]) == [1, 1] and summary["sd"].isna().all()
    assert summary["ci_low"].isna().all() and summary["ci_high"].isna().all()
    assert "an interval needs 2 or more seeds" in verdict(summary, "max")


# --- choosing what to retrain --------------------------------------------------------------

def test_fresh_seeds_avoid_every_search_seed():
    assert fresh_seeds(7, [7, 7 + SEED_OFFSET, 7 + SEED_OFFSET + 2], 3) == \
        [7 + SEED_OFFSET + 1, 7 + SEED_OFFSET + 3, 7 + SEED_OFFSET + 4]


def test_the_top_distinct_configurations_are_picked_as_the_leaderboard_ranks():
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d", "e"],
                           "best_val_acc": [0.5, 0.9, 0.8, np.nan, 0.7],
                           "stop_reason": ["completed"] * 5,
                           "config/lr": [0.1, 0.2, 0.2, 0.4, 0.3],
                           "config/seed": [0, 0, 1, 0, 0]})
    picked = top_configurations(trials, "val_acc", "max", 3, {})
    # c is b's configuration with another seed; d has no score
    assert picked == [("b", {"lr": 0.2}), ("e", {"lr": 0.3}), ("a", {"lr": 0.1})]
    assert len(top_configurations(trials, "val_acc", "max", 10, {})) == 3  # what there is


def test_a_confirm_done_is_not_redone_and_another_k_is_refused(tmp_path):
    where = resolve(str(tmp_path))
    entry = {"k": 2, "seeds": 3, "status": "finished"}
    assert request({"status": "finished"}, 2, 3, where) == "new"
    # a confirm whose retrains and confirm.parquet were deleted: done anew
    assert request({"status": "finished", "confirm": entry}, 2, 2, where) == "new"
    (tmp_path / "confirm").mkdir()
    assert request({"status": "finished", "confirm": entry}, 2, 3, where) == "done"
    assert request({"status": "interrupted", "confirm": {**entry, "status": "interrupted"}},
                   2, 3, where) == "resume"
    with pytest.raises(UsageError, match="was confirmed with --confirm 2 --confirm-seeds 3"):
        request({"status": "finished", "confirm": entry}, 2, 2, where)
    with pytest.raises(UsageError, match="is interrupted, not a finished run"):
        request({"status": "interrupted"}, 2, 3, where)


def test_a_users_trainable_is_retrained_with_each_fresh_seed(tmp_path):
    """A sweep file of the user's own loop on digits, outside the repository: each
    retrain's config is the picked configuration with its seed replaced."""
    sweep = write_function_sweep(tmp_path / "my_project")
    p = plan(RunOptions(sweep=str(sweep), quick=True, confirm=2, confirm_seeds=2,
                        storage=str(tmp_path / "results")))
    configs = [{"lr": 0.3, "hidden": 8, "epochs": 4, "seed": 0},
               {"lr": 0.03, "hidden": 32, "epochs": 4, "seed": 0}]
    cp = confirm_plan(p, [{k: v for k, v in c.items() if k != "seed"} for c in configs],
                      [10_000, 10_001])
    assert cp.trials == 4 and cp.options.scheduler == "none" and cp.algo == "grid"
    assert cp.param_space[CARRIED_KEY] == {"grid_search": [0, 1]}
    assert cp.param_space["seed"] == {"grid_search": [10_000, 10_001]}
    for index in (0, 1):
        values = with_carried({CARRIED_KEY: index, "seed": 10_001, "epochs": 4}, cp.carried)
        assert build_config(p.sweep.config_class, values) == {**configs[index], "seed": 10_001}


# --- a real run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def confirmed_run(tmp_path_factory, local_ray):
    """A tiny search on digits, then --confirm 2 --confirm-seeds 2, in one command."""
    tmp = tmp_path_factory.mktemp("confirm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(tmp / "cache"))
        root = write_digits_parquet(tmp / "data" / "digits", n=400, test=100)
        sweep = write_data_sweep(tmp / "my_project",
                                 f"ParquetImages({str(root)!r}, image='image', label='digit')")
        assert not sweep.is_relative_to(REPO)
        code = main([str(sweep), *SEARCH, "--storage", str(tmp / "results"), "--name",
                     "run", "--confirm", "2", "--confirm-seeds", "2"])
        assert code == 0
        yield tmp / "results" / "digits_sweep" / "run", sweep


def _copy(run_dir: Path, to: Path) -> Path:
    """The run elsewhere, as <storage>/<sweep>/<run>."""
    copy = to / "digits_sweep" / "run"
    shutil.copytree(run_dir, copy)
    return copy


def _files(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.integration
def test_confirm_retrains_the_top_configurations_with_fresh_seeds(confirmed_run):
    run_dir, _ = confirmed_run
    search = pd.read_parquet(run_dir / "trials.parquet")
    retrains = pd.read_parquet(run_dir / "confirm" / "trials.parquet")
    confirm = pd.read_parquet(run_dir / "confirm.parquet")
    assert len(retrains) == 4 and len(confirm) == 4
    assert sorted(confirm["config_rank"]) == [1, 1, 2, 2]
    seeds = set(confirm["seed"])
    assert len(seeds) == 2 and not seeds & set(search["config/seed"])
    assert confirm.groupby("config_rank")["seed"].apply(set).tolist() == [seeds, seeds]
    by_id = retrains.set_index("trial_id")
    for _, row in confirm.iterrows():  # the retrain's own best score, at the full budget
        assert row["score"] == by_id.loc[row["retrain_id"], "best_val_acc"]
        assert row["epochs"] == 1 == by_id.loc[row["retrain_id"], "epochs"]
        assert by_id.loc[row["retrain_id"], "config/seed"] == row["seed"]
    top = leaderboard(search, "val_acc", "max", n=len(search))
    assert [confirm.loc[confirm["config_rank"] == r, "trial_id"].iloc[0] for r in (1, 2)] == \
        list(top["trial_id"][:2])
    for _, row in confirm.iterrows():  # the search trial's configuration, seed aside
        trial = search[search["trial_id"] == row["trial_id"]].iloc[0]
        assert row["config/lr"] == trial["config/lr"]
        assert row["config/width"] == trial["config/width"]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished"
    assert meta["confirm"] == {"k": 2, "seeds": 2, "seed_values": sorted(seeds),
                               "trial_ids": list(top["trial_id"][:2]), "status": "finished"}


@pytest.mark.integration
def test_the_summary_is_each_configurations_mean_sd_and_interval(confirmed_run):
    run_dir, _ = confirmed_run
    confirm = pd.read_parquet(run_dir / "confirm.parquet")
    summary = summarise(confirm, "max")
    for _, row in summary.iterrows():
        scores = confirm.loc[confirm["config_rank"] == row["config_rank"], "score"].to_numpy()
        sd = np.std(scores, ddof=1)
        half = T_975[1] * sd / np.sqrt(2)
        assert (row["n"], row["mean"], row["sd"]) == pytest.approx((2, scores.mean(), sd))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((scores.mean() - half,
                                                                 scores.mean() + half))
    assert summary["mean"].is_monotonic_decreasing
    winner = confirmed_winner(resolve(str(run_dir)))
    assert winner is not None and winner["lr"] == summary["config/lr"].iloc[0]
    assert "seed" not in winner


@pytest.mark.integration
def test_confirm_again_with_the_same_k_shows_it_and_other_k_is_refused(confirmed_run, capsys):
    run_dir, _ = confirmed_run
    before = _files(run_dir)
    capsys.readouterr()
    assert main(["--confirm", "2", "--confirm-seeds", "2", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "confirmed: the top 2 configurations, 2 fresh seeds each" in out
    assert "winner by mean: configuration" in out and "95% interval" in out
    assert main(["--confirm", "3", "--run", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was confirmed with --confirm 2 --confirm-seeds 2" in err
    assert _files(run_dir) == before  # neither wrote anything


@pytest.mark.integration
@pytest.mark.parametrize("how", ["--resume", "--run"])
def test_an_interrupted_confirm_is_finished_not_started_over(confirmed_run, tmp_path, capsys,
                                                             how):
    run_dir, _ = confirmed_run
    copy = _copy(run_dir, tmp_path / "results")
    meta = json.loads((copy / "run.json").read_text())
    meta["status"], meta["confirm"]["status"] = "interrupted", "interrupted"
    (copy / "run.json").write_text(json.dumps(meta))
    stage = json.loads((copy / "confirm" / "run.json").read_text())
    (copy / "confirm" / "run.json").write_text(json.dumps({**stage, "status": "interrupted"}))
    (copy / "confirm.parquet").unlink()
    retrains = pd.read_parquet(copy / "confirm" / "trials.parquet")
    args = ["--resume", str(copy)] if how == "--resume" else \
        ["--confirm", "2", "--confirm-seeds", "2", "--run", str(copy)]
    assert main(args) == 0
    assert "confirm: resuming the top 2 configurations" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "confirm.parquet"),
                                  pd.read_parquet(run_dir / "confirm.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "confirm" / "trials.parquet"),
                                  retrains)  # no retrain ran again
    meta = json.loads((copy / "run.json").read_text())
    assert meta["status"] == "finished" and meta["confirm"]["status"] == "finished"


@pytest.mark.integration
def test_final_retrains_the_confirmed_winner(confirmed_run, tmp_path, capsys):
    run_dir, _ = confirmed_run
    copy = _copy(run_dir, tmp_path / "results")
    confirm = pd.read_parquet(copy / "confirm.parquet")
    # the search's runner-up wins the confirm by far: --final must take it, not the top
    confirm["score"] = np.where(confirm["config_rank"] == 2, 0.9, 0.1)
    confirm.to_parquet(copy / "confirm.parquet")
    runner_up = confirm.loc[confirm["config_rank"] == 2, "trial_id"].iloc[0]
    assert main(["--final", str(copy), "--train-size", "200", "--max-epochs", "1"]) == 0
    assert "the confirmed winner, trial " + runner_up in capsys.readouterr().err
    final = pd.read_parquet(copy / "final.parquet")
    search = pd.read_parquet(copy / "trials.parquet")
    top = leaderboard(search, "val_acc", "max", n=1)["trial_id"].iloc[0]
    assert runner_up != top and list(final["trial_id"]) == [runner_up]
    assert list(final["chosen_by"]) == ["confirm"]
    picked = search[search["trial_id"] == runner_up].iloc[0]
    meta = json.loads((copy / "run.json").read_text())
    assert meta["final"]["config"]["lr"] == picked["config/lr"]
    assert meta["final"]["config"]["width"] == picked["config/width"]


# --- bad input --------------------------------------------------------------------------------

NO_SEED_SWEEP = '''
from dataclasses import dataclass

from pipelines import Budget, LogUniform, Sweep


@dataclass
class Config:
    lr: float = 0.1
    epochs: int = 1


def train(config, report, resume_state=None):
    report({"loss": config.lr})


SWEEP = Sweep(description="no seed", trainable=train, config_class=Config, metric="loss",
              mode="min", space={"lr": LogUniform(1e-3, 1.0)},
              quick=Budget(num_samples=2, max_epochs=1))
'''


def _bad_runs(run_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of the run that --run refuses: unfinished, and without a scored trial."""
    runs = {}
    for case in ("unfinished", "unscored"):
        copy = _copy(run_dir, tmp_path / case)
        meta = json.loads((copy / "run.json").read_text())
        del meta["confirm"]
        if case == "unfinished":
            meta["status"] = "interrupted"
        else:
            trials = pd.read_parquet(copy / "trials.parquet")
            trials.assign(best_val_acc=np.nan).to_parquet(copy / "trials.parquet")
        (copy / "run.json").write_text(json.dumps(meta))
        shutil.rmtree(copy / "confirm")
        (copy / "confirm.parquet").unlink()
        runs[case] = copy
    return runs


BAD = [  # (arguments, message); {sweep}, {run}, {unfinished}, {unscored}, {noseed}
    (["{sweep}", "--quick", "--confirm", "0"], "--confirm must be >= 1"),
    (["{sweep}", "--quick", "--confirm", "2", "--confirm-seeds", "0"],
     "--confirm-seeds must be >= 1"),
    (["{sweep}", "--quick", "--confirm-seeds", "2"], "add --confirm K, or drop --confirm-seeds"),
    (["{noseed}", "--quick", "--confirm", "1"], "config has no 'seed' field"),
    (["--run", "{run}"], "add --confirm K, or drop --run"),
    (["--confirm", "2", "--run", "{run}", "--algo", "grid"], "drop --algo"),
    (["--confirm", "2", "--run", "{unfinished}"], "is interrupted, not a finished run"),
    (["--confirm", "2", "--run", "{unscored}"], "no feasible trial of the search has a val_acc"),
]


@pytest.mark.integration
@pytest.mark.parametrize("args,message", BAD)
def test_bad_confirm_is_one_line_exit_2_and_nothing_written(confirmed_run, tmp_path, capsys,
                                                            args, message):
    run_dir, sweep = confirmed_run
    noseed = tmp_path / "my_project" / "no_seed.py"
    noseed.parent.mkdir()
    noseed.write_text(textwrap.dedent(NO_SEED_SWEEP))
    runs = _bad_runs(run_dir, tmp_path)
    storage = tmp_path / "results"
    before = {name: _files(d) for name, d in [("run", run_dir), *runs.items()]}
    values = {"sweep": sweep, "run": run_dir, "noseed": noseed, **runs}
    code = main([a.format(**values) for a in args] + (["--storage", str(storage)]
                                                      if "--run" not in args else []))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert message in err
    assert not storage.exists()
    assert {name: _files(d) for name, d in [("run", run_dir), *runs.items()]} == before
