"""The batch-size finder's files: probes.parquet (every batch size tried) and
batch_size.json (what it found, against which cap, on which device, measured how)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.records import tables as res

if TYPE_CHECKING:
    from pipelines.batch_size.finder import BatchSizeResult
    from pipelines.records.storage import Location

# probes.parquet, one row per batch size tried, in the order tried (the schema's home: tables)
PROBE_COLUMNS = res.BATCH_PROBE_COLUMNS


def probes_frame(result: BatchSizeResult) -> pd.DataFrame:
    rows = [{"batch_size": p.batch_size, "peak_mem_mb": p.peak_mem_mb, "fits": p.fits}
            for p in result.probes]
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS)).astype(PROBE_COLUMNS)


def write_batch_size(out: Location, result: BatchSizeResult, sweep: str) -> dict[str, Any]:
    """probes.parquet and batch_size.json in `out`; returns the JSON."""
    res.write_parquet(probes_frame(result), out / "probes.parquet")
    summary = {"sweep": sweep, **result.summary(), "probes": len(result.probes)}
    res.write_json(summary, out / "batch_size.json")
    return summary
