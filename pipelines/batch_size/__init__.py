"""The batch-size finder: the largest batch of a sweep's model and data that fits
in memory (or under a memory cap), and its files."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.batch_size.files import PROBE_COLUMNS, probes_frame, write_batch_size
    from pipelines.batch_size.finder import (
        BatchSizeResult,
        Probe,
        binsearch,
        check_buildable,
        find_batch_size,
        memory_cap,
        probe_config,
        search_device,
    )

__all__ = ["PROBE_COLUMNS", "BatchSizeResult", "Probe", "binsearch", "check_buildable",
           "find_batch_size", "memory_cap", "probe_config", "probes_frame", "search_device",
           "write_batch_size"]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
