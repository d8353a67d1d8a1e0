"""A sweep's own training function under the report contract, without Ray: the
epochs numbered across a resume, the state handed back, bad reports refused."""

import numpy as np
import pytest
import torch

from pipelines.training.function import NoMetricReported, run_function


def counting_loop(config, report, resume_state=None):
    """A real (tiny) loop: fits y = 3x by SGD, reporting its loss each epoch."""
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=config["lr"])
    start = 0
    if resume_state is not None:
        w.data.copy_(resume_state["w"])
        start = resume_state["done"]
    x = torch.linspace(-1, 1, 32)
    for done in range(start + 1, config["epochs"] + 1):
        loss = ((w * x - 3 * x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        report({"mse": loss.item(), "w": w.detach()[0]}, {"w": w.detach().clone(), "done": done})


def test_each_report_is_an_epoch_and_its_state_is_saved():
    saved = []
    epochs = run_function(counting_loop, {"lr": 0.5, "epochs": 4}, metric="mse",
                          save=lambda m, s: saved.append((m, s)))
    assert epochs == 4 and [m["epoch"] for m, _ in saved] == [1, 2, 3, 4]
    assert saved[-1][0]["mse"] < saved[0][0]["mse"]  # it really fitted
    assert isinstance(saved[-1][0]["w"], float)  # a 0-d tensor arrives as a number
    state = saved[1][1]
    assert state is not None and state["epoch"] == 2 and state["state"]["done"] == 2


def test_a_resumed_function_gets_its_state_back_and_counts_on():
    saved = []
    run_function(counting_loop, {"lr": 0.5, "epochs": 2}, metric="mse",
                 save=lambda m, s: saved.append((m, s)))
    resumed = []
    run_function(counting_loop, {"lr": 0.5, "epochs": 4}, metric="mse",
                 save=lambda m, s: resumed.append((m, s)), resume_state=saved[-1][1])
    assert [m["epoch"] for m, _ in resumed] == [3, 4]
    uninterrupted = []
    run_function(counting_loop, {"lr": 0.5, "epochs": 4}, metric="mse",
                 save=lambda m, s: uninterrupted.append((m, s)))
    assert resumed[-1][0]["w"] == pytest.approx(uninterrupted[-1][0]["w"])


def test_a_function_that_never_reports_is_an_error_naming_the_metric():
    with pytest.raises(NoMetricReported, match="without reporting 'mse'"):
        run_function(lambda config, report: None, {}, metric="mse", save=lambda m, s: None)


@pytest.mark.parametrize("metrics, message", [
    ({"loss": 1.0}, "without the sweep's metric 'mse'"),
    ({"mse": "low"}, "'mse' must be a number"),
    ({"mse": 1.0, "epoch": 7}, "this is epoch 1, but it reported epoch=7"),
    ({"mse": 1.0, "node_id": "x"}, "set by raysweep"),
])
def test_a_bad_report_says_what_is_wrong(metrics, message):
    with pytest.raises((TypeError, ValueError), match=message):
        run_function(lambda config, report: report(metrics), {}, metric="mse",
                     save=lambda m, s: None)


def test_a_0d_tensor_metric_is_a_number_and_a_state_must_load_with_weights_only():
    saved = []

    def loop(config, report, resume_state=None):
        report({"mse": torch.tensor(0.25)}, {"w": torch.zeros(2), "step": 1})
        report({"mse": torch.tensor(0.5)}, {"w": np.zeros(2)})  # numpy: refused at once

    with pytest.raises(TypeError, match=r"state\['w'\] is a numpy.ndarray"):
        run_function(loop, {}, metric="mse", save=lambda m, s: saved.append(m))
    assert saved == [{"mse": 0.25, "epoch": 1}]


@pytest.mark.parametrize("name", ["node_id", "timestamp", "time_total_s", "pid"])
def test_a_metric_named_as_raysweep_or_tune_would_overwrite_it_is_refused(name):
    with pytest.raises(ValueError, match="set by raysweep"):
        run_function(lambda config, report: report({"mse": 1.0, name: 2.0}), {}, metric="mse",
                     save=lambda m, s: None)


def test_a_state_needs_a_function_that_can_take_it_back():
    def no_resume(config, report):
        report({"mse": 1.0}, {"w": torch.zeros(1)})

    with pytest.raises(TypeError, match="takes no resume_state"):
        run_function(no_resume, {}, metric="mse", save=lambda m, s: None)
