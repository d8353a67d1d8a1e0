"""A run's Optuna study in its journal file, continued on a resume without a trial
twice: the mirror of a non-Optuna search, and an Optuna searcher restored from a
snapshot older than the journal (real Optuna, real files, Ray's searcher class)."""

from __future__ import annotations

import optuna
from ray import tune

from pipelines.records.tables import TrialRecord
from pipelines.search.searchers import build_searcher
from pipelines.search.space import Choice, Domain, LogUniform
from pipelines.tuning.study_journal import JOURNAL_FILE, StudyJournal, StudyMirror

SPACE: dict[str, Domain] = {"lr": LogUniform(1e-3, 0.5), "hidden": Choice((8, 32))}


def _record(trial_id: str, scores: list[float]) -> TrialRecord:
    record = TrialRecord(trial_id, {"lr": 0.01, "hidden": 8, "seed": 0}, started=0.0, ended=1.0)
    for epoch, score in enumerate(scores, 1):
        record.add_epoch({"epoch": epoch, "val_nll": score, "train_loss": 1.0})
    return record


def _trials(journal: StudyJournal) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=journal.study_name, storage=journal.storage()).trials


def test_mirror_adds_each_trial_once_across_a_resume(tmp_path):
    journal = StudyJournal(str(tmp_path / JOURNAL_FILE), "digits/run")
    mirror = StudyMirror(journal, [("val_nll", "min")], SPACE)
    mirror.add(_record("a", [0.9, 0.5, 0.7]), "completed")
    mirror.add(_record("b", [1.5]), "early_stopped")
    mirror.add(_record("a", [0.9, 0.5, 0.7]), "completed")  # the same trial ended again
    resumed = StudyMirror(journal, [("val_nll", "min")], SPACE)  # a resumed driver's
    resumed.add(_record("b", [1.5]), "early_stopped")
    resumed.add(_record("c", []), "error")
    trials = _trials(journal)
    assert [t.user_attrs["trial_id"] for t in trials] == ["a", "b", "c"]
    a, b, c = trials
    assert a.state.name == "COMPLETE" and a.value == 0.5  # the best epoch's, not the last
    assert a.intermediate_values == {1: 0.9, 2: 0.5, 3: 0.7}
    assert a.params == {"lr": 0.01, "hidden": 8}  # the searched keys only
    assert b.state.name == "PRUNED" and c.state.name == "FAIL"


def _searcher(journal: StudyJournal):
    searcher = build_searcher("optuna", metric="val_nll", mode="min", seed=0, num_samples=8,
                              journal=journal)
    searcher.set_search_properties(None, None, {"lr": tune.loguniform(1e-3, 0.5),
                                                "hidden": tune.choice([8, 32])})
    return searcher


def _report(searcher, trial_id: str, values: list[float]) -> None:
    for epoch, value in enumerate(values[:-1], 1):
        searcher.on_trial_result(trial_id, {"epoch": epoch, "val_nll": value,
                                            "training_iteration": epoch})
    searcher.on_trial_complete(trial_id, {"epoch": len(values), "val_nll": values[-1],
                                          "training_iteration": len(values)})


def test_optuna_searcher_continues_its_journal_after_a_restore(tmp_path):
    journal = StudyJournal(str(tmp_path / JOURNAL_FILE), "digits/run")
    searcher = _searcher(journal)
    for trial_id in ("t1", "t2", "t3"):
        searcher.suggest(trial_id)
    _report(searcher, "t1", [0.8, 0.4, 0.6])
    searcher.save(str(tmp_path / "searcher.pkl"))  # Tune's snapshot
    _report(searcher, "t2", [0.9, 0.7])  # after the snapshot: ended in the journal only
    searcher.suggest("t4")  # asked for after the snapshot: Tune never saw it
    # the driver dies; a new one restores the snapshot
    restored = _searcher(journal)
    restored.restore(str(tmp_path / "searcher.pkl"))
    _report(restored, "t2", [0.9, 0.7])  # Tune runs t2 again from its checkpoint
    _report(restored, "t3", [1.2, 0.3])
    restored.suggest("t5")
    _report(restored, "t5", [0.5])
    trials = _trials(journal)
    assert len(trials) == 5  # t1..t5, none twice
    by_id = {t.user_attrs.get("trial_id"): t for t in trials}
    assert by_id["t1"].value == 0.4  # the trial's best epoch
    assert by_id["t2"].value == 0.7 and by_id["t3"].value == 0.3
    assert [t.state.name for t in trials].count("FAIL") == 1  # t4, orphaned
    assert None in by_id and by_id[None].state.name == "FAIL"
