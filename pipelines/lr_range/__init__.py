"""The learning-rate range test (Smith 2017) and its files."""

from pipelines.lr_range.files import write_range_test
from pipelines.lr_range.finder import RangeResult, RangeTest, lr_at, range_test, suggest

__all__ = ["RangeResult", "RangeTest", "lr_at", "range_test", "suggest", "write_range_test"]
