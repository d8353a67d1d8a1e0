"""Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step
back") over any of the trainer's optimizers: the optimizer's own ("fast") weights
take `k` steps, then a copy of "slow" weights moves `alpha` of the way toward
them and the fast weights restart from there. airbench's recipe averages its
SGD-Nesterov steps this way, starting after its first epochs and with a step of
the slow weights that shrinks as the run goes (`start`, `ramp`), over the
BatchNorm statistics too (`extra`). It hooks the optimizer's step, so schedules
and checkpoints of the optimizer itself are unchanged; its slow weights and step
count are a state of their own in the trainer's checkpoint."""

from __future__ import annotations

from typing import Any, Iterable

import torch

__all__ = ["Lookahead"]


class Lookahead:
    """Every `k` steps of `opt` after its first `start`: slow += a * (fast - slow);
    fast = slow, where a is `alpha`, or with `ramp` > 0 at step t of `total`
    1 - (1 - alpha) * (t / total) ** ramp (near 1 early: hardly any averaging; alpha
    at the end). The first such step after `start` only takes the slow weights from
    the fast ones. `extra` tensors (float buffers: BatchNorm's running statistics)
    are averaged as the parameters are. `sync()` sets the fast weights to the slow."""

    def __init__(self, opt: torch.optim.Optimizer, *, k: int, alpha: float, start: int = 0,
                 ramp: float = 0.0, total: int = 0,
                 extra: Iterable[torch.Tensor] = ()) -> None:
        if k < 1 or not 0 < alpha <= 1 or start < 0 or ramp < 0 or (ramp and total < 1):
            raise ValueError(f"Lookahead needs k >= 1 steps, alpha in (0, 1], start >= 0, "
                             f"ramp >= 0 (with total >= 1 steps); got k={k}, alpha={alpha}, "
                             f"start={start}, ramp={ramp}, total={total}")
        self.k, self.alpha, self.start, self.ramp, self.total = k, alpha, start, ramp, total
        self.params = [p for group in opt.param_groups for p in group["params"]]
        self.tensors = [*self.params, *extra]
        self.slow = [t.detach().clone() for t in self.tensors]
        self.steps = 0
        self.started = start == 0
        self._hook = opt.register_step_post_hook(self._after_step)

    def alpha_at(self, step: int) -> float:
        """How far the slow weights move at optimizer step `step` (from 1)."""
        if not self.ramp:
            return self.alpha
        return 1 - (1 - self.alpha) * min(1.0, step / self.total) ** self.ramp

    @torch.no_grad()
    def _after_step(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.steps += 1
        if self.steps % self.k or self.steps <= self.start:
            return
        if not self.started:
            for fast, slow in zip(self.tensors, self.slow):
                slow.copy_(fast)
            self.started = True
            return
        alpha = self.alpha_at(self.steps)
        for fast, slow in zip(self.tensors, self.slow):
            slow.lerp_(fast, alpha)
            fast.copy_(slow)

    @torch.no_grad()
    def sync(self) -> None:
        """The fast weights (and `extra`) set to the slow ones, once those started."""
        if self.started:
            for fast, slow in zip(self.tensors, self.slow):
                fast.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "started": self.started,
                "slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]
        self.started = state.get("started", True)  # older states: started at step 0
        saved = state["slow"]
        # older states hold the parameters' slow weights only: `extra` starts from its own
        if len(saved) not in (len(self.slow), len(self.params)):
            raise ValueError(f"a Lookahead state of {len(saved)} tensors does not fit "
                             f"{len(self.slow)}: the checkpoint is of another model")
        for slow, value in zip(self.slow, saved):
            slow.copy_(value)
