"""`python -m pipelines.analyze` on a run of a user's own trainer: a metric of its
own name, minimised, and epochs without val_loss, lr or epoch_s."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from pipelines.analyze import main
from tests.records.digits_runs import user_records, write_user_run


def test_analyze_reports_a_minimised_users_metric(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_user_run(tmp_path / "run", user_records(n=12))
    out = tmp_path / "report"
    assert main([run_dir, "--out", str(out), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "top 3 of 12 trials by val_rmse:" in printed
    trials = pd.read_parquet(f"{run_dir}/trials.parquet")
    lowest = trials.nsmallest(3, "best_val_rmse")["trial_id"].tolist()
    assert re.findall(r"^\s*(u\d\d) ", printed, flags=re.MULTILINE)[:3] == lowest
    assert "importance (fanova), of the best val_rmse up to epoch 4" in printed
    assert printed.strip().endswith(f"report: {out / 'report.html'}")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "val_rmse (lower is better)" in html and f"Trial {lowest[0]}: best val_rmse" in html
    for name in re.findall(r'src="([^"]+)"', html):
        assert (out / name).is_file(), name
