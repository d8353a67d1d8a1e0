"""The learning-rate range test (Smith 2017) and its files."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.lr_range.files import write_range_test
    from pipelines.lr_range.finder import RangeResult, RangeTest, lr_at, range_test, suggest

__all__ = ["RangeResult", "RangeTest", "lr_at", "range_test", "suggest", "write_range_test"]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
