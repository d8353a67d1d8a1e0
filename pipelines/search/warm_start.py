"""--warm-start: an earlier run's finished trials, as evaluated points that a new
search starts from (the Optuna samplers add them to their study, HyperOpt to its
trial history: pipelines.search.searchers), so it starts where the old one stopped.

A trial's value is what the search optimises: per objective, its best epoch's
value (trials.parquet's best_ columns; a cost column as it is). A trial counts
when it ended with one: completed, stopped early (ASHA or its own patience: its
best is a real observation, and a poor one is what the searcher should learn)
or diverged (its best before the divergence, as the live searcher was told it).
Errored, infeasible and unfinished trials are skipped: an error says nothing of
the configuration, and an infeasible trial trained nothing.

A point holds this run's searched keys, each value as the old trial had it. It
is dropped, and counted, when a value lies outside this space's domain, the old
trial has no value for a key searched here, the old run searched a key that this
run fixes and the trial's value differs (its score was measured elsewhere), the
trial built on a configuration carried from an earlier stage (its config/
columns do not say it all), or it has no finite value of an objective. Keys that
the old run did not search (its seed, its epochs) are not compared.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from ray.tune.search.sample import Domain as TuneDomain

from pipelines.analysis import Run, config_of, int_config_keys, load_run
from pipelines.errors import UsageError
from pipelines.records import objective_column
from pipelines.search.space import Choice, Domain, IntUniform
from pipelines.search.sweep import CARRIED_KEY, Sweep

__all__ = ["WARM_START_ALGOS", "WarmStart", "load_warm_start"]

# the searchers that take evaluated points (random and grid choose without a history)
WARM_START_ALGOS = ("optuna", "gp", "nsga2", "hyperopt")
# the stop reasons of a trial whose best epoch is an observation of its configuration
OBSERVED = ("completed", "early_stopped", "no_improvement", "diverged")


@dataclass(frozen=True)
class WarmStart:
    """An earlier run's trials as a searcher takes them: `points` (each exactly this
    run's searched keys) and, per point, `rewards` in the objectives' own units and
    direction (a float; a list in the sweep's objective order for several)."""

    source: str  # the run directory, as the user named it
    points: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[Any] = field(default_factory=list)
    dropped: int = 0  # observed trials left out: see `reasons`
    reasons: Mapping[str, int] = field(default_factory=dict)  # why dropped -> trials
    skipped: int = 0  # trials without an observation: errored, infeasible, unfinished

    def summary(self) -> str:
        """One line: 'warm start: 11 finished trials of RUN (1 dropped: lr outside
        this space's domain)'."""
        notes = []
        if self.dropped:
            why = ", ".join(f"{n} {reason}" if len(self.reasons) > 1 else reason
                            for reason, n in self.reasons.items())
            notes.append(f"{self.dropped} dropped: {why}")
        if self.skipped:
            notes.append(f"{self.skipped} not finished, skipped")
        return (f"warm start: {len(self.points)} finished trial"
                f"{'' if len(self.points) == 1 else 's'} of {self.source}"
                + (f" ({'; '.join(notes)})" if notes else ""))


def load_warm_start(source: str, sweep: Sweep, algo: str,
                    param_space: Mapping[str, Any]) -> WarmStart:
    """The finished trials of the run directory `source` (a path or URI) that fit
    `sweep`'s space (as compiled to `param_space`: the run's final domains) and
    score its objectives, for searcher `algo`. A UsageError when `algo` takes no
    evaluated points, the sweep runs in stages, `source` is not a run, shares no
    parameter with the space, lacks an objective, or no trial of it fits."""
    flag = f"--warm-start {source}"
    if algo not in WARM_START_ALGOS:
        raise UsageError(f"{flag}: --algo {algo} takes no evaluated points; use one of "
                         f"{', '.join(WARM_START_ALGOS)}")
    if sweep.stages:
        raise UsageError(f"{flag}: the sweep runs in stages, each a search of its own; "
                         f"add --joint to search its whole space at once from the old trials")
    try:
        run = load_run(source)
    except UsageError as e:
        raise UsageError(f"{flag}: {e}") from None
    if not (run.location / "trials.parquet").is_file():
        raise UsageError(f"{flag}: {run.location} has no trials.parquet: no trial of it "
                         f"has ended; pass a run with finished trials")
    searched = {k: d for k, d in sweep.space.items()
                if isinstance(param_space.get(k), TuneDomain)}
    _check_compatible(flag, run, searched, sweep)
    return _warm_start(run, source, searched, sweep, param_space)


def _check_compatible(flag: str, run: Run, searched: Mapping[str, Domain],
                      sweep: Sweep) -> None:
    shared = [k for k in searched if k in run.space]
    if not shared:
        raise UsageError(f"{flag}: its space ({', '.join(run.space) or 'none'}) shares no "
                         f"parameter with this one ({', '.join(searched)}); warm-start from "
                         f"a run of this sweep or of one that searched some of its parameters")
    absent = [m for m, _ in sweep.objectives if objective_column(m) not in run.trials]
    if absent:
        old = ", ".join(m for m, _ in run.objectives)
        raise UsageError(f"{flag}: it recorded no {', '.join(absent)} (its objectives: "
                         f"{old}); warm-start from a run that optimised "
                         f"{', '.join(m for m, _ in sweep.objectives)}")


def _warm_start(run: Run, source: str, searched: Mapping[str, Domain], sweep: Sweep,
                param_space: Mapping[str, Any]) -> WarmStart:
    trials = run.trials
    observed = trials[trials["stop_reason"].isin(OBSERVED)
                      & trials["feasible"].fillna(True).astype(bool)]
    int_keys = int_config_keys(trials, run.space)
    # keys the old run searched and this one fixes: a trial measured at another value
    fixed_here = {k: v for k, v in param_space.items()
                  if k in run.space and k not in searched and not isinstance(v, TuneDomain)}
    columns = [objective_column(m) for m, _ in sweep.objectives]
    points, rewards, reasons = [], [], Counter[str]()
    for _, row in observed.iterrows():
        config = config_of(row, int_keys)
        point, why = _point(config, searched, fixed_here)
        values = [row[c] for c in columns]
        if why is None:
            missing = [m for (m, _), v in zip(sweep.objectives, values) if not _finite(v)]
            why = f"no {', '.join(missing)} value" if missing else None
        if why is not None:
            reasons[why] += 1
            continue
        points.append(point)
        scores = [float(v) for v in values]
        rewards.append(scores[0] if len(scores) == 1 else scores)
    dropped = sum(reasons.values())
    if not points:
        why = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        raise UsageError(f"--warm-start {source}: none of its {len(trials)} trials fits this "
                         f"run ({why or 'none finished'}); pass a run with finished trials "
                         f"in this space, or widen the space's domains")
    return WarmStart(source=run.location.uri, points=points, rewards=rewards, dropped=dropped,
                     reasons=dict(reasons.most_common()), skipped=len(trials) - len(observed))


def _point(config: Mapping[str, Any], searched: Mapping[str, Domain],
           fixed_here: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The trial's values of the searched keys, or why it does not fit."""
    if CARRIED_KEY in config:
        return {}, "carried from an earlier stage"
    for key, value in fixed_here.items():
        if key in config and not _same(config[key], value):
            return {}, f"{key} differs from this run's fixed {value!r}"
    point = {}
    for key, domain in searched.items():
        if key not in config:
            return {}, f"no {key} value"
        value = _in_domain(domain, config[key])
        if value is None:
            return {}, f"{key} outside this space's domain"
        point[key] = value
    return point, None


def _in_domain(domain: Domain, value: Any) -> Any:
    """`value` as the domain takes it (a Choice's own option, an int of an IntUniform),
    None if the domain does not hold it."""
    if isinstance(domain, Choice):
        return next((option for option in domain.options if _same(option, value)), None)
    if not _finite(value):
        return None
    if isinstance(domain, IntUniform) and not float(value).is_integer():
        return None
    if not domain.low <= value <= domain.high:
        return None
    return int(value) if isinstance(domain, IntUniform) else float(value)


def _same(a: Any, b: Any) -> bool:
    """Equal values of one kind: True is not 1, but 32.0 (a Parquet float) is 32."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b
    return type(a) is type(b) and a == b


def _finite(value: Any) -> bool:
    """A number (numpy's too), not a bool, NaN, infinite or missing (pandas' NA)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)
