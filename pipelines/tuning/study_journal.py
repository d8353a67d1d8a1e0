"""A run's Optuna study, kept in the run directory as Optuna's journal file
(`<run>/optuna.journal`) while the run goes, for `optuna-dashboard` to show live
and afterwards, and for anything that reads Optuna studies.

The Optuna searchers (--algo optuna, gp, nsga2) keep their own study in it
(pipelines.search.searchers); for the other searchers and a sweep's own
trainable, a StudyMirror adds each trial as it ends: its parameters and their
distributions, its score per epoch, and its value, the trial's best (as
trials.parquet's best_ columns). A trial stopped early (ASHA, its own patience)
is pruned; one that failed, diverged or broke a constraint failed. A staged run
keeps one study per stage in the same file.

The journal is a local file, appended to (Optuna's file lock keeps concurrent
writers apart); a run directory on an object store has none. Optuna replays the
whole journal into memory when it opens it: ~2 KB per trial on the driver.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.records.storage import Location
from pipelines.records.tables import COST_COLUMNS, TrialRecord
from pipelines.search.space import Choice, Domain, IntUniform, LogUniform, Uniform

if TYPE_CHECKING:
    import optuna

__all__ = ["JOURNAL_FILE", "StudyJournal", "StudyMirror", "distributions", "study_journal",
           "trial_state"]

JOURNAL_FILE = "optuna.journal"
# Optuna's categorical distributions hold None, bools, numbers and strings; another
# choice (a tuple, say) is recorded as its repr
_PLAIN = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class StudyJournal:
    """Where a study lives: a journal file, and the study's name in it."""

    path: str
    study_name: str

    def storage(self) -> optuna.storages.JournalStorage:
        """The journal, opened (and replayed) now."""
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(self.path))


def study_journal(run_dir: Location, study_name: str,
                  journal_dir: Location | None = None) -> StudyJournal | None:
    """The journal of the study `study_name` in `journal_dir` (default: `run_dir`);
    None where that is not a local directory (an object store keeps no journal)."""
    where = journal_dir or run_dir
    if not where.is_local:
        return None
    return StudyJournal(str(where / JOURNAL_FILE), study_name)


def distributions(space: Mapping[str, Domain]) -> dict[str, Any]:
    """Optuna's distribution of each of a sweep's domains."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, domain in space.items():
        if isinstance(domain, (Uniform, LogUniform)):
            out[name] = FloatDistribution(domain.low, domain.high,
                                          log=isinstance(domain, LogUniform))
        elif isinstance(domain, IntUniform):
            out[name] = IntDistribution(domain.low, domain.high, log=domain.log)
        elif isinstance(domain, Choice):
            out[name] = CategoricalDistribution([_plain(o) for o in domain.options])
    return out


def _plain(value: object) -> Any:
    return value if isinstance(value, _PLAIN) else repr(value)


def trial_state(stop_reason: str | None) -> optuna.trial.TrialState:
    """How Optuna calls a trial that ended so: run to its budget, complete; stopped
    early (by the scheduler or its own patience), pruned; else failed."""
    from optuna.trial import TrialState

    if stop_reason == "completed":
        return TrialState.COMPLETE
    if stop_reason in ("early_stopped", "no_improvement"):
        return TrialState.PRUNED
    return TrialState.FAIL


class StudyMirror:
    """Adds each trial that ends to the run's Optuna study (created in the journal
    if new, or continued: a trial already in it, by its Tune trial id, is not added
    again, so a resumed run duplicates nothing). A write that fails is a warning:
    the journal is a view of the run, trials.parquet is its record."""

    def __init__(self, journal: StudyJournal, objectives: Sequence[tuple[str, str]],
                 space: Mapping[str, Domain]) -> None:
        self.journal = journal
        self.objectives = [tuple(o) for o in objectives]
        self.space = dict(space)
        self._study: optuna.Study | None = None
        self._known: set[str] = set()  # Tune trial ids in the study
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks: not the study
        return {**self.__dict__, "_study": None, "_known": set()}

    def _open(self) -> optuna.Study:
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                storage=self.journal.storage(), study_name=self.journal.study_name,
                load_if_exists=True,
                directions=["maximize" if mode == "max" else "minimize"
                            for _, mode in self.objectives])
            self._known = {str(t.user_attrs.get("trial_id"))
                           for t in self._study.get_trials(deepcopy=False)}
        return self._study

    def add(self, record: TrialRecord, stop_reason: str | None) -> None:
        """Add one ended trial (once)."""
        try:
            study = self._open()
            if record.trial_id in self._known:
                return
            study.add_trial(self.frozen_trial(record, stop_reason))
            self._known.add(record.trial_id)
        except (OSError, ValueError) as e:
            if not self._warned:
                print(f"warning: could not add trial {record.trial_id} to the Optuna study "
                      f"in {self.journal.path} ({e}); trials.parquet has it",
                      file=sys.stderr, flush=True)
                self._warned = True

    def frozen_trial(self, record: TrialRecord, stop_reason: str | None
                     ) -> optuna.trial.FrozenTrial:
        """The trial as Optuna records it: searched parameters, best value(s),
        and (one objective) the score of each epoch."""
        import optuna
        from optuna.trial import TrialState

        dists = distributions({k: d for k, d in self.space.items() if k in record.config})
        params = {k: _plain(record.config[k]) for k in dists}
        state = trial_state(stop_reason)
        values = self._values(record)
        if values is None and state != TrialState.FAIL:
            state = TrialState.FAIL  # it ended without a score
        if state == TrialState.FAIL:
            values = None
        primary, primary_mode = self.objectives[0]
        intermediate = ({e: s for e, s in record.scores(primary).items()}
                        if len(self.objectives) == 1 else None)
        return optuna.trial.create_trial(
            state=state, values=values, params=params, distributions=dists,
            intermediate_values=intermediate,
            user_attrs={"trial_id": record.trial_id, "stop_reason": stop_reason,
                        "epochs": len(record.epochs)})

    def _values(self, record: TrialRecord) -> list[float] | None:
        values = []
        for metric, mode in self.objectives:
            if metric in COST_COLUMNS:
                value = record.costs.get(metric)
            else:
                scores = record.scores(metric).values()
                value = (max if mode == "max" else min)(scores) if scores else None
            if value is None or not math.isfinite(value):
                return None
            values.append(float(value))
        return values
