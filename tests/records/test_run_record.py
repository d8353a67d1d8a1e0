"""run.json's status lifecycle: "running" while the body runs, then the status the
body reached; a crash leaves "failed", a Ctrl-C "interrupted"."""

import json
import os

import pytest

from pipelines.errors import RunInterrupted
from pipelines.records.run_record import run_status
from pipelines.records.storage import resolve
from tests.records.cut_writes import write_cut_short

START = {"sweep": "s", "start_time": "t0", "end_time": None, "status": "running"}


def _read(tmp_path):
    return json.loads((tmp_path / "run.json").read_text())


def test_the_body_runs_under_running_and_ends_with_its_status(tmp_path):
    with run_status(START, resolve(str(tmp_path))) as record:
        during = _read(tmp_path)
        record.status = "finished"
    assert during["status"] == "running" and during["end_time"] is None
    assert during["driver"]["pid"] == os.getpid()
    after = _read(tmp_path)
    assert list(after) == ["sweep", "start_time", "end_time", "status", "driver"]
    assert after["status"] == "finished" and after["end_time"]


def test_a_crash_leaves_failed_and_propagates(tmp_path):
    with pytest.raises(ValueError), run_status(START, resolve(str(tmp_path))):
        raise ValueError("boom")
    assert _read(tmp_path)["status"] == "failed"


@pytest.mark.parametrize("stop", [KeyboardInterrupt, lambda: RunInterrupted("elsewhere")])
def test_ctrl_c_leaves_interrupted_as_run_interrupted(tmp_path, stop):
    run_dir = resolve(str(tmp_path))
    with pytest.raises(RunInterrupted) as caught, run_status(START, run_dir):
        raise stop()
    assert caught.value.run_dir == run_dir and _read(tmp_path)["status"] == "interrupted"


def test_flush_runs_before_the_last_write_even_when_it_fails(tmp_path):
    seen = []

    def flush():
        seen.append(_read(tmp_path)["status"])
        raise OSError("storage gone")

    with pytest.raises(OSError), run_status(START, resolve(str(tmp_path)), flush=flush) as r:
        r.status = "finished"
    assert seen == ["running"] and _read(tmp_path)["status"] == "finished"


def test_an_update_is_written_at_once_and_kept_at_the_end(tmp_path):
    with run_status(START, resolve(str(tmp_path))) as record:
        record.update(stage_results=[1])
        assert _read(tmp_path)["stage_results"] == [1]
    assert _read(tmp_path)["stage_results"] == [1]


def test_an_update_cut_short_mid_write_leaves_the_last_run_json(tmp_path):
    with run_status(START, resolve(str(tmp_path))) as record:
        record.update(stage_results=[1])
        before = (tmp_path / "run.json").read_bytes()
        # the next update (~2 MB of stage results) dies after 64 KB are on disk
        write_cut_short("from pipelines.records.run_record import RunStatus\n"
                        "from pipelines.records.storage import resolve\n"
                        f"record = RunStatus(resolve({str(tmp_path)!r}), {record.metadata!r})\n",
                        "record.update(stage_results=list(range(200_000)))", limit=64 * 1024)
        assert (tmp_path / "run.json").read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
        record.status = "finished"
