"""What a trial costs: the peak-memory measure on known allocations, the probes of
both tasks on real digits, the cost columns every epoch reports, and a trial
whose model breaks a start constraint recognised without training."""

import dataclasses
import math
import time

import pytest
import torch

from pipelines.data import ImageFolder, open_split
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.data.seg_folder import open_seg, prepare
from pipelines.records.tables import INFEASIBLE_KEY
from pipelines.search import load_sweep
from pipelines.training.classify import probe, train
from pipelines.training.config import SegConfig, TrainConfig
from pipelines.training.cost import Cost, count_params, exceeded, measure_peak_mb
from pipelines.training.loop import TrainResult
from pipelines.training.segment import probe_segmentation, train_segmentation
from pipelines.training.tasks import TASKS
from tests.data.test_seg_folder import digits_dataset, write_digits
from tests.digits import write_digits_folder
from tests.user_sweeps import write_data_sweep

CPU = torch.device("cpu")
MB = 2 ** 20


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """All 1,797 real 8x8 digits as an ImageFolder outside the repository, decoded
    into a cache of its own."""
    root = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(root / "cache"))
        folder = write_digits_folder(root / "digits")
        return folder, open_split(ImageFolder(str(folder)).prepare(None, None, None, 0))


def model_of(result: TrainResult) -> torch.nn.Module:
    assert result.model is not None
    return result.model


def cfg_of(**values) -> TrainConfig:
    return TrainConfig(**{"model": "simple_cnn", "width": 16, "batch_size": 64,
                          "crop_padding": 1, "flip_prob": 0.0, "epochs": 2, **values})


def test_the_peak_of_a_known_allocation_is_measured_even_once_freed():
    def step():
        big = torch.ones(48 * MB // 4)  # 48 MB of float32, touched
        del big
        torch.ones(MB // 4)  # a small one after it: the peak was the big one

    peak = measure_peak_mb(step, CPU)
    assert 47 <= peak <= 52, peak


def test_memory_freed_by_earlier_work_is_not_mistaken_for_free_space():
    """A Ray actor runs trial after trial: what an earlier one freed into the heap
    (many small tensors, below one still in use) would be reused without the process
    growing: 0 MB measured, were it not handed back to the system first."""
    earlier = [torch.ones(25_000) for _ in range(400)]  # 100 kB each: the heap, 40 MB
    still_in_use = earlier[-1]  # above the freed ones: glibc cannot trim the heap's top
    del earlier
    held: list[torch.Tensor] = []

    def step():
        held.extend(torch.ones(25_000) for _ in range(200))  # 20 MB, reusing that heap

    peak = measure_peak_mb(step, CPU)
    assert 18 <= peak <= 24, peak
    assert still_in_use.sum() == 25_000


def test_exceeded_names_each_broken_limit():
    cost = Cost(params=2_345_678, peak_mem_mb=3000.25)
    assert exceeded(cost, {"params": 1_000_000, "peak_mem_mb": 2048}) == [
        "params 2,345,678 > 1,000,000", "peak_mem_mb 3,000.2 > 2,048"]
    assert exceeded(cost, {"params": 3_000_000}) == []
    assert exceeded(Cost(1, math.inf), {"peak_mem_mb": 1e9}) == ["peak_mem_mb inf > 1,000,000,000"]
    with pytest.raises(ValueError, match="unknown start constraint"):
        exceeded(cost, {"latency_ms": 1})


def test_probe_is_repeatable_grows_with_the_batch_and_keeps_the_rng(digits_folder):
    """On 8x8 digits (not CIFAR-10): the same batch twice measures about the same
    (within a quarter: the heap may reuse one activation's memory or not), in well
    under a second once the process has run a step (torch's own first-call set-up
    takes seconds); four times the batch well over twice the memory, the
    parameters those the trainer's model has, and the caller's random state
    untouched."""
    _, data = digits_folder
    rng = torch.get_rng_state()
    small = probe(cfg_of(width=64, batch_size=256), data, CPU)  # the process's first, maybe
    start = time.perf_counter()
    again = probe(cfg_of(width=64, batch_size=256), data, CPU)
    took = time.perf_counter() - start
    large = probe(cfg_of(width=64, batch_size=1024), data, CPU)
    assert torch.equal(torch.get_rng_state(), rng)
    assert took < 1.0, took
    assert small.params == again.params == large.params
    assert abs(again.peak_mem_mb - small.peak_mem_mb) <= 0.25 * small.peak_mem_mb
    assert large.peak_mem_mb > 2.5 * small.peak_mem_mb, (small, large)
    trained = train(cfg_of(width=64, epochs=1), data, device=CPU, cost=small)
    assert count_params(model_of(trained)) == small.params


def test_every_epoch_reports_the_cost_and_a_resumed_trial_counts_on(digits_folder):
    """train() on digits reports params, peak_mem_mb, latency_ms and train_s with
    every epoch; train_s sums the epochs' training time (validation excluded) and
    a resumed trial goes on from its checkpoint's; the probe does not change what
    the trainer learns."""
    _, data = digits_folder
    reports = []
    result = train(cfg_of(), data, device=CPU, report=lambda m, s: reports.append((m, s)))
    (first, state), (second, _) = reports
    cost = probe(cfg_of(), data, CPU)
    for metrics, _ in reports:
        assert metrics["params"] == cost.params == count_params(model_of(result))
        assert metrics["peak_mem_mb"] > 0 and 0 < metrics["latency_ms"] < metrics["epoch_s"] * 1e3
    assert first["train_s"] == pytest.approx(first["epoch_s"])
    assert second["train_s"] == pytest.approx(first["epoch_s"] + second["epoch_s"])
    assert state["train_s"] == first["train_s"]
    resumed = []
    train(cfg_of(), data, device=CPU, resume_state=state, cost=cost,
          report=lambda m, s: resumed.append(m))
    assert [m["epoch"] for m in resumed] == [2]
    assert resumed[0]["train_s"] == pytest.approx(state["train_s"] + resumed[0]["epoch_s"])
    given = []
    train(cfg_of(), data, device=CPU, cost=Cost(7, 1.5), report=lambda m, s: given.append(m))
    assert given[0]["params"] == 7 and given[0]["peak_mem_mb"] == 1.5
    assert [m["train_loss"] for m in given] == [m["train_loss"] for m, _ in reports]


def test_without_a_validation_split_latency_is_nan(digits_folder):
    """A final training run has no validation images (--final): no latency to measure."""
    data = dataclasses.replace(digits_folder[1], val_idx=digits_folder[1].val_idx[:0])
    reports = []
    train(cfg_of(epochs=1), data, device=CPU, report=lambda m, s: reports.append(m))
    assert math.isnan(reports[0]["latency_ms"]) and reports[0]["train_s"] > 0


def test_an_oversize_model_is_infeasible_at_once_without_training(digits_folder, tmp_path):
    """From a sweep file outside the repository, on digits: a params limit below
    the model's size makes the trial's one report infeasible (epoch 0, no state),
    in well under a second; the same configuration under a loose limit trains."""
    folder, data = digits_folder
    sweep = load_sweep(str(write_data_sweep(tmp_path / "elsewhere",
                                            f"ImageFolder({str(folder)!r})")))
    values = {**sweep.fixed, **sweep.budget(quick=True).fixed, "lr": 0.3, "width": 32,
              "epochs": 1}
    the_task = TASKS[sweep.task]
    size = the_task.probe(the_task.config_class.from_dict(values), data).params
    reports = []
    start = time.perf_counter()
    result = the_task.run_trial(values, data, report=lambda m, s: reports.append((m, s)),
                                resume_state=None, limits={"params": size // 2})
    took = time.perf_counter() - start
    assert result is None and took < 1.0, took
    assert reports == [({INFEASIBLE_KEY: True, "epoch": 0, "params": size,
                         "peak_mem_mb": reports[0][0]["peak_mem_mb"]}, None)]
    trained = []
    result = the_task.run_trial(values, data, report=lambda m, s: trained.append(m),
                                resume_state=None, limits={"params": size, "peak_mem_mb": 1e6})
    assert result is not None and [m["epoch"] for m in trained] == [1]
    assert INFEASIBLE_KEY not in trained[0] and trained[0]["params"] == size


def test_segmentation_probe_and_cost_columns_on_digit_masks(tmp_path, monkeypatch):
    """A U-Net on a folder of digit masks (not CIFAR-10): the probe's parameters are
    the model's, its memory grows with the crops per step, and every epoch reports
    the cost."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    write_digits(tmp_path / "digits", "index", n=16)
    data = open_seg(prepare(None, digits_dataset(tmp_path / "digits"), None, None, seed=0))
    cfg = SegConfig(epochs=1, width=4, depth=2, crop_size=32, batch_size=2)
    small = probe_segmentation(cfg, data, CPU)
    large = probe_segmentation(SegConfig(**{**vars(cfg), "batch_size": 16}), data, CPU)
    assert large.params == small.params and large.peak_mem_mb > 2 * small.peak_mem_mb
    reports = []
    result = train_segmentation(cfg, data, device=CPU, cost=small,
                                report=lambda m, s: reports.append(m))
    assert reports[0]["params"] == count_params(model_of(result)) == small.params
    assert reports[0]["latency_ms"] > 0 and reports[0]["train_s"] > 0
