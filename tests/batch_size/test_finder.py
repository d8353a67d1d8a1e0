"""The batch-size finder: its search on known memory curves, and through the CLI
(pipelines.bs_find) the CPU acceptance on digits from a sweep file outside the
repository, and bad input."""

import json

import pandas as pd
import pytest
import torch

from pipelines import bs_find
from pipelines.batch_size.finder import START_BATCH, binsearch
from tests.user_sweeps import own_digits_sweep, write_function_sweep

CAP_MB = 12.0  # a digits net (width 32) fits ~100 examples per step in it on a CPU
on_a_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's finder, no cap")


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory):
    """A sweep file outside the repository on the user's own digits (not CIFAR-10),
    with a net registered in the file; the decoded cache of its own."""
    yield from own_digits_sweep(tmp_path_factory.mktemp("user"))


def searched(fits, top=10_000):
    tried = []

    def probe(batch):
        tried.append(batch)
        return fits(batch)

    return binsearch(probe, top), tried


def test_doubles_then_bisects_to_the_largest_batch_that_fits():
    (found, failed), tried = searched(lambda b: b <= 37)
    assert (found, failed) == (37, 38)
    assert tried == [2, 4, 8, 16, 32, 64, 48, 40, 36, 38, 37]
    (found, failed), tried = searched(lambda b: b <= 2 ** 20, top=1000)
    assert (found, failed, tried[-1]) == (1000, None, 1000)  # the split's size caps it
    assert searched(lambda b: b <= 1)[0] == (1, 2)  # 2 does not fit: bisected down to 1
    assert searched(lambda b: False)[0] == (0, 1) and START_BATCH == 2


def test_cpu_finder_stays_under_the_cap_and_the_next_power_of_two_does_not(digits_sweep,
                                                                          tmp_path, capsys):
    """Acceptance: `bs_find --max-memory-mb` on a CPU, for a sweep file outside the
    repository on digits; the files say what was found and every probe."""
    code = bs_find.main([str(digits_sweep), "--quick", "--max-memory-mb", str(CAP_MB),
                         "--storage", str(tmp_path / "results")])
    out = capsys.readouterr()
    assert code == 0, out.err
    (run,) = (tmp_path / "results" / "digits_sweep").iterdir()
    assert run.name.endswith("-bs_find")
    assert {p.name for p in run.iterdir()} == {"probes.parquet", "batch_size.json"}
    found = json.loads((run / "batch_size.json").read_text())
    probes = pd.read_parquet(run / "probes.parquet")
    batch = found["batch_size"]
    assert f"largest batch size that fits: {batch}" in out.out
    assert found["cap_mb"] == CAP_MB and found["device"] == "cpu" and found["limit"] == "memory"
    assert found["model"] == "tiny_digits_net" and found["config"]["width"] == 32  # the largest
    at = probes.set_index("batch_size")
    assert at.loc[batch, "fits"] and at.loc[batch, "peak_mem_mb"] <= CAP_MB
    power = 1 << batch.bit_length()  # the next power of two above it
    assert not at.loc[power, "fits"] and at.loc[power, "peak_mem_mb"] > CAP_MB
    assert (probes["fits"] == (probes["peak_mem_mb"] <= CAP_MB)).all()
    assert probes.loc[probes["batch_size"] > batch, "fits"].eq(False).all()
    assert 8 < batch < 1000  # the memory ended the search, not the split's size
    assert out.err.count("batch ") >= len(probes)  # one progress line per probe


@pytest.mark.parametrize("args,message", [
    ([], "needs a memory cap: pass --max-memory-mb"),
    (["--max-memory-mb", "0"], "--max-memory-mb must be a number of MB > 0"),
    (["--max-memory-mb", "8", "--max-batch", "0"], "--max-batch must be >= 1"),
])
@on_a_gpu
def test_bad_input_is_one_line_exit_2_and_nothing_written(digits_sweep, tmp_path, capsys,
                                                          args, message):
    code = bs_find.main([str(digits_sweep), "--quick", "--storage", str(tmp_path / "r"),
                         *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_a_sweep_with_its_own_trainable_has_no_model_to_probe(tmp_path, capsys):
    sweep = write_function_sweep(tmp_path / "elsewhere")
    code = bs_find.main([str(sweep), "--quick", "--max-memory-mb", "8",
                         "--storage", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no model the batch-size finder" in err
    assert not (tmp_path / "r").exists()
