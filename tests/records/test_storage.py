"""Results on local paths and on object stores. The S3 tests run a real sweep
against a local S3 server (moto's, on loopback), through the same pyarrow
S3 filesystem that would talk to AWS: Parquet, run.json, Tune's checkpoints
and experiment state all go there, and a stopped run resumes from there."""

import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.fs as pafs
import pytest

from pipelines.errors import UsageError
from pipelines.records.storage import Location, check_writable, resolve
from pipelines.records.tables import write_parquet
from pipelines.tuning.resume_checks import storage_root
from tests import processes as proc
from tests.conftest import REPO, data_dir
from tests.records.cut_writes import write_cut_short


def test_local_paths_resolve_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    where = resolve("results")
    assert where.is_local and where.path == str(tmp_path / "results")
    assert (where / "a").uri == str(tmp_path / "results" / "a")


def test_file_uris_are_local_paths(tmp_path):
    where = resolve(f"file://{tmp_path}")
    assert where.is_local and where.path == str(tmp_path)


def test_children_keep_the_uri_query():
    s3 = pafs.S3FileSystem(anonymous=True, region="us-east-1")  # no request is made
    where = Location(s3, "b/p", "s3://b/p?endpoint_override=h:1")
    child = where / "sweep" / "run"
    assert child.path == "b/p/sweep/run" and child.name == "run"
    assert child.uri == "s3://b/p/sweep/run?endpoint_override=h:1"
    assert storage_root(child) == "s3://b/p?endpoint_override=h:1"


def test_local_paths_may_contain_a_question_mark(tmp_path):
    child = resolve(str(tmp_path / "what?x")) / "cifar_sweep" / "run"
    assert child.uri == child.path == str(tmp_path / "what?x" / "cifar_sweep" / "run")
    assert storage_root(child) == str(tmp_path / "what?x")


def test_unknown_scheme_is_a_usage_error():
    with pytest.raises(UsageError, match="--storage nope://x: cannot open it"):
        resolve("nope://x")


def test_local_writes_replace_whole_files(tmp_path):
    target = resolve(str(tmp_path)) / "f.json"
    target.write_bytes(b"one")
    target.write_bytes(b"two")
    assert (tmp_path / "f.json").read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp files left


def test_a_local_write_cut_short_leaves_the_old_file_and_no_temp_file(tmp_path):
    old = b'{"status": "running"}\n'
    (resolve(str(tmp_path)) / "f.json").write_bytes(old)
    new_size = 1 << 20  # bytes; the write is cut at half of them
    write_cut_short(f"from pipelines.records.storage import resolve\n"
                    f"new = bytes(range(256)) * {new_size // 256}\n",
                    f"(resolve({str(tmp_path)!r}) / 'f.json').write_bytes(new)",
                    limit=new_size // 2)
    assert (tmp_path / "f.json").read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_parquet_write_cut_short_leaves_the_old_table_readable(tmp_path):
    old = pd.DataFrame({"trial_id": ["a", "b"], "val_acc": [0.5, 0.25]})
    write_parquet(old, resolve(str(tmp_path)) / "trials.parquet")
    old_bytes = (tmp_path / "trials.parquet").read_bytes()
    # 100,000 random float64s: ~800 KB of Parquet, whatever the compression
    write_cut_short("import numpy as np, pandas as pd\n"
                    "from pipelines.records.storage import resolve\n"
                    "from pipelines.records.tables import write_parquet\n"
                    "new = pd.DataFrame({'val_acc': np.random.default_rng(0).random(100_000)})\n",
                    f"write_parquet(new, resolve({str(tmp_path)!r}) / 'trials.parquet')",
                    limit=64 * 1024)
    assert (tmp_path / "trials.parquet").read_bytes() == old_bytes
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "trials.parquet"), old)
    assert [p.name for p in tmp_path.iterdir()] == ["trials.parquet"]


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 endpoint with an empty bucket `sweeps`; yields (uri query, filesystem)."""
    port = proc.free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    server = proc.start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                         str(port)], {**os.environ, **S3_ENV}, log)
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    try:
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                               allow_bucket_creation=True)
        proc.wait_for(lambda: _try_create_bucket(fs), 60, "the S3 server")
        yield f"endpoint_override=127.0.0.1:{port}&scheme=http", fs
    finally:
        proc.stop(server)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _try_create_bucket(fs) -> bool:
    try:
        fs.create_dir("sweeps")
    except OSError:
        return False
    return True


def test_missing_bucket_is_refused(s3):
    query, _ = s3
    with pytest.raises(UsageError, match="is not writable"):
        check_writable(resolve(f"s3://no-such-bucket/r?{query}"))


@pytest.mark.integration
def test_sweep_to_s3_stops_and_resumes_there(s3, tmp_path):
    query, fs = s3
    storage = f"s3://sweeps/results?{query}"
    env = {**os.environ, **S3_ENV}
    # a trial takes both of the 2 cores: one trial worker to start, not two (its start is
    # most of the cost; not --max-concurrent 1, which Tune ignores for random search);
    # the Ctrl-C after the first result still leaves trials unstarted
    driver = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", "cifar_sweep", "--quick", "--algo", "random",
         "--scheduler", "none", "--num-samples", "4", "--max-epochs", "2", "--train-size",
         "500", "--val-size", "100", "--cpus-per-trial", "2", "--data-dir", str(data_dir()),
         "--storage", storage, "--name", "s3run"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        out, err = proc.ctrl_c_after_first_result(driver)
    finally:
        proc.stop(driver)
    run_uri = f"s3://sweeps/results/cifar_sweep/s3run?{query}"
    assert driver.returncode == 130, err
    assert out.strip().splitlines()[-1] == f"results: {run_uri}"

    proc.run_to_completion([sys.executable, "-m", "pipelines.run", "--resume", run_uri,
                            "--data-dir", str(data_dir())], env, tmp_path / "resume.log")
    run = "sweeps/results/cifar_sweep/s3run"
    trials = pd.read_parquet(f"{run}/trials.parquet", filesystem=fs)
    epochs = pd.read_parquet(f"{run}/epochs.parquet", filesystem=fs)
    assert len(trials) == 4 and (trials["stop_reason"] == "completed").all()
    assert len(epochs) == 8 and not epochs.duplicated(["trial_id", "epoch"]).any()
    with fs.open_input_stream(f"{run}/run.json") as f:
        meta = json.loads(f.readall())
    assert meta["status"] == "finished" and len(meta["resumed"]) == 1
    checkpoints = fs.get_file_info(pafs.FileSelector(f"{run}/tune", recursive=True))
    assert any(i.path.endswith("/state.pt") for i in checkpoints)  # Tune's, on S3 too
    assert not any(i.path.rsplit("/", 1)[-1].startswith(".raysweep-write-check")
                   for i in fs.get_file_info(pafs.FileSelector("sweeps/results")))
