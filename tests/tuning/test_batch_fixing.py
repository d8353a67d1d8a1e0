"""`--batch-size auto`: the batch-size finder's result fixed for every trial, lr
scaled by the linear rule, and the sweeps it cannot run on refused before
anything is written."""

import dataclasses

import pytest

from pipelines.errors import UsageError
from pipelines.training.tasks import TASKS
from pipelines.tuning import batch_fixing
from pipelines.tuning.run_plan import RunOptions, plan
from tests.user_sweeps import own_digits_sweep, write_function_sweep


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory):
    """A sweep file outside the repository on the user's own digits (not CIFAR-10),
    with a net registered in the file; the decoded cache of its own."""
    yield from own_digits_sweep(tmp_path_factory.mktemp("user"), n=600)


def test_batch_size_auto_fixes_the_batch_and_the_optimizer_scales_lr(digits_sweep, tmp_path):
    """--batch-size auto on digits from a sweep file outside the repository: the
    finder's batch becomes every trial's, no longer in the space (the sweep fixed
    32), and a trial's optimizer gets lr * batch / 256."""
    options = RunOptions(str(digits_sweep), quick=True, batch_size="auto", max_memory_mb=4.0,
                         storage=str(tmp_path / "r"))
    before = plan(options)
    batch_fixing.check(before)
    the_task = TASKS[before.sweep.task]
    data = the_task.prepare_data(None, before.sweep.data, before.budget.train_size,
                                 before.budget.val_size, 0)
    after, record = batch_fixing.fix_batch(before, data)
    batch = record["batch_size"]
    assert record["lr_rule"] == "linear" and record["before"] == {"type": "fixed", "value": 32}
    # the cap is also every trial's constraint: the batch keeps a margin below it
    assert record["cap_mb"] == pytest.approx(4.0 * batch_fixing.CAP_MARGIN)
    cap = record["cap_mb"]
    assert record["peak_mem_mb"] <= cap < max(p["peak_mem_mb"] for p in record["probes"])
    assert after.fixed["batch_size"] == batch != 32 and "batch_size" not in after.sweep.space
    assert batch_fixing.apply(before, record).fixed == after.fixed  # as a resumed run has it
    states = []
    values = {**after.fixed, "lr": 0.3, "width": 16, "epochs": 1}
    the_task.run_trial(values, the_task.open_data(data), resume_state=None,
                       report=lambda metrics, state: states.append(state))
    (state,) = states
    assert state is not None
    (group,) = state["optimizer"]["param_groups"]
    assert group["initial_lr"] == pytest.approx(0.3 * batch / 256, rel=1e-12)


def test_a_user_trainable_is_refused_before_anything_is_written(tmp_path):
    sweep = write_function_sweep(tmp_path / "elsewhere")
    options = RunOptions(str(sweep), quick=True, storage=str(tmp_path / "r"))
    with pytest.raises(UsageError, match="--batch-size auto"):
        plan(dataclasses.replace(options, batch_size="auto"))
    planned = plan(options)
    asked = dataclasses.replace(planned, options=dataclasses.replace(options, batch_size="auto"))
    with pytest.raises(UsageError, match="^--batch-size auto for a user trainable: .*; drop "):
        batch_fixing.check(asked)
    assert not (tmp_path / "r").exists()


def test_on_a_cpu_the_finder_needs_a_cap(digits_sweep, tmp_path):
    asked = plan(RunOptions(str(digits_sweep), quick=True, storage=str(tmp_path / "r")))
    asked = dataclasses.replace(asked, options=dataclasses.replace(asked.options,
                                                                   batch_size="auto"))
    with pytest.raises(UsageError, match="needs a memory cap: pass --max-memory-mb"):
        batch_fixing.check(asked)
    assert not (tmp_path / "r").exists()


def test_a_staged_sweep_loses_its_batch_size_stage(tmp_path):
    staged = plan(RunOptions("cifar_staged", quick=True, storage=str(tmp_path / "r")))
    assert any("batch_size" in stage.params for stage in staged.sweep.stages)
    fixed = batch_fixing.apply(staged, {"batch_size": 96})
    assert [s.name for s in fixed.sweep.stages] == \
        [s.name for s in staged.sweep.stages if s.params != ("batch_size",)]
    assert all("batch_size" not in s.params for s in fixed.sweep.stages)
    assert fixed.fixed["batch_size"] == 96 and "batch_size" not in fixed.sweep.space
