"""Checkpoints are loaded without unpickling anything but tensors and plain
containers: a tampered checkpoint in shared storage cannot run code."""

import os

import pytest
import torch

from pipelines.tuning.trainable import load_state


class RunsCodeOnLoad:
    def __reduce__(self):  # what a malicious pickle does: call something on load
        return (os.system, ("touch pwned",))


def test_plain_state_loads(tmp_path):
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "state.pt")
    state = load_state(tmp_path / "state.pt")
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))


def test_a_checkpoint_holding_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"epoch": 1, "payload": RunsCodeOnLoad()}, tmp_path / "state.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        load_state(tmp_path / "state.pt")
    assert not (tmp_path / "pwned").exists()
