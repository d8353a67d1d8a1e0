"""The final score of a sweep: retrain its best configuration (the confirmed
winner, when the run has a confirm.parquet: pipelines.tuning.confirm) on every
training image and evaluate it once on the test split. This is the only code path that
reads the test split; the sweep itself selects on a validation split.

Written into the run directory: `final.parquet` (a row per evaluation: the test
score, the configuration, the training budget) and a `final` entry in
`run.json` (the latest). Every evaluation stays on record: scoring the test
split again and again, and keeping the best, would be selecting on it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.analysis.confirmation import confirmed_summary
from pipelines.analysis.ranking import leaderboard
from pipelines.analysis.runs import Run, best_config, config_of, int_config_keys, load_run
from pipelines.data.cache import resolve_data_dir
from pipelines.data.images import ImageSource, TrainValData, classification_source
from pipelines.errors import UsageError
from pipelines.records import tables as res
from pipelines.records.run_record import now_iso
from pipelines.records.storage import first_line
from pipelines.training.classify import evaluate, train
from pipelines.training.config import TrainConfig
from pipelines.training.loop import Metrics, State, default_device
from pipelines.training.tasks import TASKS

FINAL_FILE = "final.parquet"


@dataclass(frozen=True)
class FinalOptions:
    """`--final RUN_DIR` and the flags it takes."""

    run_dir: str
    sweep: str | None = None  # if given, the run must be of this sweep
    data_dir: str | None = None  # None: the directory the sweep used
    train_size: int | None = None  # None: every training image
    max_epochs: int | None = None  # None: as `epochs_from` says
    # without max_epochs: "best", the winner's best epoch (trials.parquet's best_epoch: where
    # its validation score peaked), or "budget", the epochs it was configured for
    epochs_from: str = "best"
    threads: int | None = None  # torch threads; None: torch's default


def final(options: FinalOptions) -> dict[str, Any]:
    """Retrain the best trial's configuration, test it once, record the score."""
    run = load_run(options.run_dir)
    _check_run(run, options)
    source = _source(run, options)  # first: the sweep's module registers its models
    trial_id, chosen_by, config, epochs_from = _final_config(run, options)
    data_dir = options.data_dir or run.meta.get("options", {}).get("data_dir")
    test_data = final_test_images(source, data_dir)  # none fails before hours of training
    train_data = final_training_images(source, data_dir, options.train_size, config.seed)
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    which = "the confirmed winner, " if chosen_by == "confirm" else ""
    print(f"final: retraining {which}trial {trial_id}'s configuration on "
          f"{len(train_data.train_idx)} training images for {config.epochs} epochs "
          f"({EPOCHS_FROM[epochs_from]}), then testing once", file=sys.stderr, flush=True)
    start = time.time()
    try:
        result = train(config, train_data, report=_print_epoch)
    except (TypeError, ValueError) as e:  # a config the sweep's code took, this one not
        raise UsageError(f"the best configuration (trial {trial_id}) does not train here "
                         f"({first_line(e)})") from None
    if result.diverged:
        raise UsageError(f"the best configuration (trial {trial_id}) diverged when retrained "
                         f"on {len(train_data.train_idx)} images; nothing was tested")
    assert result.model is not None  # train() returns the model it trained
    # as validation scored it: the same autocast and test-time flip
    test_loss, test_acc = evaluate(result.model, test_data, default_device(), cfg=config)
    score = {"trial_id": str(trial_id), "chosen_by": chosen_by,
             "test_acc": test_acc, "test_loss": test_loss,
             "train_size": int(len(train_data.train_idx)), "epochs": result.epochs,
             "epochs_from": epochs_from,
             "train_s": time.time() - start, "finished_at": now_iso(),
             "config": {k: v for k, v in vars(config).items()}}
    return _record(run, score)


def _check_run(run: Run, options: FinalOptions) -> None:
    from pipelines.search import sweep_name

    if options.sweep and sweep_name(options.sweep) != run.meta.get("sweep"):
        raise UsageError(f"{run.location} is a run of {run.meta.get('sweep')!r}, not "
                         f"{options.sweep!r}; drop the sweep name or pick the right run")
    kind = run.meta.get("task", "classification")
    if kind not in TASKS or not TASKS[kind].test_split:
        raise UsageError(f"--final scores a classification run on its data's test split; "
                         f"{run.location} is a {kind} run, whose held-out score is its "
                         f"validation metric (in trials.parquet)")
    status = run.meta.get("status")
    if status != "finished":
        raise UsageError(f"{run.location} is {status}, not finished: its best trial may still "
                         f"change; finish it (--resume) before --final")


def _source(run: Run, options: FinalOptions) -> ImageSource:
    """The run's data source: its sweep's `data`, the sweep loaded as --resume loads
    it (from where the run says it was defined, or the sweep named here)."""
    from pipelines.search import load_sweep

    named = options.sweep or run.meta.get("options", {}).get("sweep") or run.meta["sweep"]
    return classification_source(load_sweep(named).data)


def _chosen(run: Run) -> tuple[str, str]:
    """The trial whose configuration --final retrains, and what chose it: "confirm"
    (the winner by mean of the run's confirm.parquet) or "search" (its best trial)."""
    summary = confirmed_summary(run.location)
    if summary is not None and not summary.empty and np.isfinite(summary["mean"].iloc[0]):
        return str(summary["trial_id"].iloc[0]), "confirm"
    return str(leaderboard(run.trials, run.metric, run.mode, n=1)["trial_id"].iloc[0]), "search"


# where --final's epoch count came from, as it says and final.parquet's epochs_from records
EPOCHS_FROM = {"best": "the winner's best epoch", "budget": "its epoch budget",
               "max_epochs": "--max-epochs"}


def _final_config(run: Run, options: FinalOptions) -> tuple[str, str, TrainConfig, str]:
    """The trial --final retrains, what chose it (_chosen), its configuration as the
    search ran it (its seed too) for the epochs that `options` choose, and where
    that epoch count came from (a key of EPOCHS_FROM)."""
    config = best_config(run)  # first: a UsageError if no trial has a score
    trial_id, chosen_by = _chosen(run)
    row = run.trials[run.trials["trial_id"] == trial_id].iloc[0]
    if chosen_by == "confirm":
        config = config_of(row, int_config_keys(run.trials, run.space))
    if options.epochs_from not in ("best", "budget"):
        raise UsageError(f"--final-epochs must be best or budget, got {options.epochs_from!r}")
    epochs_from = options.epochs_from
    if options.max_epochs is not None:
        if options.max_epochs < 1:
            raise UsageError(f"--max-epochs must be >= 1, got {options.max_epochs}")
        config["epochs"], epochs_from = options.max_epochs, "max_epochs"
    elif epochs_from == "best":
        best_epoch = row.get("best_epoch")
        if pd.isna(best_epoch):  # no epoch scored (it cannot be the winner then)
            epochs_from = "budget"
        else:
            config["epochs"] = int(best_epoch)
    config["patience"] = 0  # no validation split to watch: it trains the epochs chosen here
    try:
        return trial_id, chosen_by, TrainConfig.from_dict(config), epochs_from
    except (TypeError, ValueError) as e:
        raise UsageError(f"the best trial's configuration is not valid here ({e})") from None


def final_training_images(source: ImageSource, data_dir: str | None, train_size: int | None,
                          seed: int) -> TrainValData:
    """Every image of the training pool (its own validation images too, if it has
    them: the selection is done), or a seeded `train_size` subset; no validation."""
    cache, _ = source.pool(resolve_data_dir(data_dir).resolve())
    images, labels = cache.open()
    idx = np.arange(len(labels))
    if train_size is not None:
        if not 1 <= train_size <= len(labels):
            raise UsageError(f"--train-size {train_size} must be 1..{len(labels)}")
        idx = np.sort(np.random.default_rng(seed).permutation(idx)[:train_size])
    return TrainValData(images, labels, idx, np.array([], dtype=np.int64), cache.meta()[0])


def final_test_images(source: ImageSource, data_dir: str | None) -> TrainValData:
    """The source's test split, every image in the validation role (nothing to train
    on); a UsageError if it has none."""
    data = source.test_data(data_dir)
    if data is None:
        where = source.locate(resolve_data_dir(data_dir).resolve())
        raise UsageError(f"--final scores a test split, and {where} has none; add labelled "
                         f"test images there ({source.test_layout})")
    return data


def _print_epoch(metrics: Metrics, state: State) -> None:
    print(f"  epoch {metrics['epoch']}: train_loss {metrics['train_loss']:.4f}, "
          f"{metrics['images_per_s']:.0f} images/s", file=sys.stderr, flush=True)


def _record(run: Run, score: dict[str, Any]) -> dict[str, Any]:
    """Append the evaluation to final.parquet and put it in run.json; returns the
    score with the number of evaluations so far."""
    meta = res.read_json(run.location / "run.json")  # the newest, not the one read at start
    if meta.get("status") != "finished" or meta.get("resumed") != run.meta.get("resumed"):
        raise UsageError(f"{run.location} changed while --final was training (it was "
                         f"resumed); run --final again on the finished run")
    row = {k: v for k, v in score.items() if k != "config"}
    row.update({res.CONFIG_PREFIX + k: v for k, v in score["config"].items()})
    where = run.location / FINAL_FILE
    earlier = res.read_parquet(where) if where.is_file() else pd.DataFrame()
    history = pd.concat([earlier, pd.DataFrame([row])], ignore_index=True)
    res.write_parquet(history, where)
    score = {**score, "evaluations": len(history)}
    res.write_json({**meta, "final": score}, run.location / "run.json")
    return score
