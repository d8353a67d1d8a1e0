"""A run's trials.parquet, epochs.parquet and steps.parquet, kept as results
arrive at a cost that does not grow with the run's history.

A finished trial's rows are final: they are turned into Arrow once, when the
trial ends, and appended to in-memory tables (compact columns, ~1 KB a trial,
~0.5 KB more an epoch for its step windows). A write serialises those tables and
the running trials' rows, built afresh, into the files, each replaced atomically:
a reader always sees a whole file holding every trial written so far. Finished
rows come first, in the order the trials ended, so `written` (how many finished
rows the files hold) says exactly which rows a snapshot of the run had seen (see `restore`).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.records.storage import Location
from pipelines.records.tables import (
    COST_COLUMNS,
    Objectives,
    TrialRecord,
    epochs_frame,
    steps_frame,
    trials_frame,
)

TRIALS_FILE, EPOCHS_FILE, STEPS_FILE = "trials.parquet", "epochs.parquet", "steps.parquet"
FILES = (TRIALS_FILE, EPOCHS_FILE, STEPS_FILE)
CHUNKS_KEPT = 64  # appended batches before a table is combined into one chunk


@dataclass(frozen=True)
class Written:
    """How many finished rows the files held after a write: trials, epochs, steps."""

    trials: int = 0
    epochs: int = 0
    steps: int = 0  # a snapshot from before steps.parquet: the class default, 0


class ResultLog:
    """The finished trials' rows (append-only) and the writes of both files."""

    def __init__(self, run_dir: Location, *, metric: str, mode: str, max_epochs: int,
                 objectives: Objectives = (), constraints: Mapping[str, float] | None = None
                 ) -> None:
        self.run_dir = run_dir
        self.metric, self.mode, self.max_epochs = metric, mode, max_epochs
        self.objectives = objectives  # all of them, the primary (metric) first
        self.constraints = dict(constraints or {})
        self._tables: dict[str, pa.Table | None] = {n: None for n in FILES}
        self._dtypes: dict[str, dict[str, Any]] = {n: {} for n in FILES}
        self.written = Written()
        self.write_count, self.write_s, self.max_write_s = 0, 0.0, 0.0

    @property
    def finished(self) -> int:
        """Finished trials appended so far."""
        table = self._tables[TRIALS_FILE]
        return 0 if table is None else table.num_rows

    def add_finished(self, records: list[TrialRecord]) -> None:
        """Append trials that ended: O(their rows), whatever came before."""
        if records:
            self._append(TRIALS_FILE, self._trials(records, time.time()))
            self._append(EPOCHS_FILE, self._epochs(records))
            self._append(STEPS_FILE, steps_frame(records))

    def write(self, running: list[TrialRecord], ended: Sequence[TrialRecord] = ()) -> None:
        """Both files: the finished rows, then `ended`'s (trials that ended since),
        then `running`'s rows as they stand now. `ended` joins the finished rows only
        if the write succeeds: on an error the log is as it was, and the caller still
        holds them."""
        start = time.perf_counter()
        before = dict(self._tables), {n: dict(d) for n, d in self._dtypes.items()}
        self.add_finished(list(ended))
        try:
            finished = Written(self.finished, self._rows(EPOCHS_FILE), self._rows(STEPS_FILE))
            now = time.time()
            for name, frame in ((TRIALS_FILE, self._trials(running, now)),
                                (EPOCHS_FILE, self._epochs(running)),
                                (STEPS_FILE, steps_frame(running))):
                table = self._with(name, frame)
                buffer = io.BytesIO()  # serialised first: a failure writes nothing
                pq.write_table(table, buffer)
                (self.run_dir / name).write_bytes(buffer.getvalue())
        except BaseException:
            self._tables, self._dtypes = before
            raise
        self.written = finished
        elapsed = time.perf_counter() - start
        self.write_count += 1
        self.write_s += elapsed
        self.max_write_s = max(self.max_write_s, elapsed)

    def restore(self, written: Written) -> None:
        """Take back the finished rows of a snapshot that had seen `written` of them,
        from the files: rows a later write added (trials the snapshot still saw
        running, which Tune runs again) are left out."""
        for name, rows in ((TRIALS_FILE, written.trials), (EPOCHS_FILE, written.epochs),
                           (STEPS_FILE, written.steps)):
            self._tables[name], self._dtypes[name] = None, {}
            if rows:
                frame = pd.read_parquet((self.run_dir / name).path,
                                        filesystem=self.run_dir.fs).iloc[:rows]
                self._append(name, frame)
        self.written = written

    def stats(self) -> dict[str, float]:
        """The writes so far: how many, and their seconds in all and at most."""
        return {"writes": self.write_count, "write_s": round(self.write_s, 3),
                "max_write_s": round(self.max_write_s, 3)}

    def _trials(self, records: list[TrialRecord], now: float) -> pd.DataFrame:
        return trials_frame(records, metric=self.metric, mode=self.mode,
                            max_epochs=self.max_epochs, now=now, objectives=self.objectives,
                            constraints=self.constraints)

    def _epochs(self, records: list[TrialRecord]) -> pd.DataFrame:
        return epochs_frame(records, metrics=tuple(m for m, _ in self.objectives
                                                   if m not in COST_COLUMNS) or (self.metric,))

    def _rows(self, name: str) -> int:
        table = self._tables[name]
        return 0 if table is None else table.num_rows

    def _append(self, name: str, frame: pd.DataFrame) -> None:
        self._dtypes[name].update({c: frame[c].dtype for c in frame.columns})
        table = self._joined(self._tables[name], pa.Table.from_pandas(frame, preserve_index=False))
        if table.column(0).num_chunks > CHUNKS_KEPT:
            table = table.combine_chunks()
        self._tables[name] = table

    def _with(self, name: str, frame: pd.DataFrame) -> pa.Table:
        """The finished table, then `frame`, with pandas' metadata for every column
        (so pandas reads back the dtypes it wrote: string, Int64, boolean)."""
        dtypes = {**self._dtypes[name], **{c: frame[c].dtype for c in frame.columns}}
        table = self._joined(self._tables[name], pa.Table.from_pandas(frame, preserve_index=False))
        like = pd.DataFrame({c: pd.Series(dtype=_dtype(dtypes.get(c), table.schema.field(c).type))
                             for c in table.column_names})
        return table.replace_schema_metadata(
            pa.Schema.from_pandas(like, preserve_index=False).metadata)

    @staticmethod
    def _joined(table: pa.Table | None, more: pa.Table) -> pa.Table:
        """`table` then `more`: a column one lacks is null there; a column whose
        types differ (a metric reported as a bool, later a number) becomes float64
        (or text, if either is not a number)."""
        if table is None:
            return more
        types = {f.name: f.type for f in table.schema}
        clashes = {f.name: _common(types[f.name], f.type) for f in more.schema
                   if f.name in types and _clash(types[f.name], f.type)}
        return pa.concat_tables([_cast(table, clashes), _cast(more, clashes)],
                                promote_options="permissive")


def _dtype(recorded: Any, arrow: pa.DataType) -> Any:
    """The pandas dtype a column reads back as: the one it was written from, unless
    a clash turned the column into float64 or text."""
    if pa.types.is_floating(arrow) and not pd.api.types.is_float_dtype(recorded):
        return "float64"
    if pa.types.is_large_string(arrow) and recorded is not None \
            and not pd.api.types.is_string_dtype(recorded):
        return "string"
    return recorded if recorded is not None else arrow.to_pandas_dtype()


def _clash(a: pa.DataType, b: pa.DataType) -> bool:
    return a != b and not (pa.types.is_null(a) or pa.types.is_null(b)
                           or (pa.types.is_string(a) or pa.types.is_large_string(a))
                           and (pa.types.is_string(b) or pa.types.is_large_string(b)))


def _common(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    def numeric(t: pa.DataType) -> bool:
        return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))
    return pa.float64() if numeric(a) and numeric(b) else pa.large_string()


def _cast(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    for name, to in types.items():
        if name in table.column_names and table.schema.field(name).type != to:
            column = table.column(name)
            if pa.types.is_boolean(column.type) and pa.types.is_floating(to):
                column = column.cast(pa.int8())
            table = table.set_column(table.column_names.index(name), name, column.cast(to))
    return table
