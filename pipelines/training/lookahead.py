"""Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step
back") over any of the trainer's optimizers: the optimizer's own ("fast") weights
take `k` steps, then a copy of "slow" weights moves `alpha` of the way toward
them and the fast weights restart from there. airbench's recipe averages its
SGD-Nesterov steps this way. It hooks the optimizer's step, so schedules and
checkpoints of the optimizer itself are unchanged; its slow weights and step
count are a state of their own in the trainer's checkpoint."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Lookahead"]


class Lookahead:
    """Every `k` steps of `opt`: slow += alpha * (fast - slow); fast = slow. The slow
    weights start as the parameters are when it is made (after a resume's load)."""

    def __init__(self, opt: torch.optim.Optimizer, *, k: int, alpha: float) -> None:
        if k < 1 or not 0 < alpha <= 1:
            raise ValueError(f"Lookahead needs k >= 1 steps and alpha in (0, 1]; "
                             f"got k={k}, alpha={alpha}")
        self.k, self.alpha = k, alpha
        self.params = [p for group in opt.param_groups for p in group["params"]]
        self.slow = [p.detach().clone() for p in self.params]
        self.steps = 0
        self._hook = opt.register_step_post_hook(self._after_step)

    @torch.no_grad()
    def _after_step(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.steps += 1
        if self.steps % self.k:
            return
        for fast, slow in zip(self.params, self.slow):
            slow.lerp_(fast, self.alpha)
            fast.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]
        for slow, saved in zip(self.slow, state["slow"], strict=True):
            slow.copy_(saved)
