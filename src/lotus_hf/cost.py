"""What a run costs, counted the same way for every method and on every machine, and the budget that stops it.

A clock measures the machine as much as the method, so lotus-hf counts work the way training FLOPs are counted
(docs/evaluation.md): every example through a model's forward pass with gradients on counts 3 (forward and
backward), every example through a forward pass without them counts 1 (teacher logits, probes, saliency masks,
the verifier's tests inside a run). A retraining is counted the same way, so a run's cost is a share of one.

`CostMeter` counts with forward pre-hooks on the models a run uses, whatever the method does with them;
`CostCallback` counts a `Trainer`'s run and stops it when the count reaches a budget, as `EarlyStoppingCallback`
stops one that no longer improves, saving checkpoints as the count passes smaller budgets on the way.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(4, 2)
    >>> with CostMeter(layer) as meter:
    ...     loss = layer(torch.zeros(8, 4)).sum()  # 8 examples, forward and backward
    ...     with torch.no_grad():
    ...         _ = layer(torch.zeros(5, 4))  # 5 examples, forward only
    >>> meter.units
    29
"""

from __future__ import annotations

import contextlib
import time

import torch
from transformers import TrainerCallback

FORWARD = 1  # an example through a forward pass only
FORWARD_BACKWARD = 3  # an example through a forward and a backward pass (the backward costs about two forwards)


def retraining_cost(epochs: float, train_size: int) -> int:
    """The cost of a retraining: `epochs` passes over `train_size` examples, forward and backward.

    >>> retraining_cost(30, 5400)
    486000
    """
    return int(round(FORWARD_BACKWARD * epochs * train_size))


def _batch_size(args: tuple, kwargs: dict) -> int:
    """How many examples a forward call takes: the leading dimension of its first tensor argument."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    return 0


class CostMeter:
    """Counts the examples that pass through `models`' forward calls while it is active (a context manager):
    `FORWARD_BACKWARD` each while gradients are on, `FORWARD` each while they are off. Only the models' own
    (outermost) forward calls count, so a model's layers, gradient checkpointing's recomputation or a wrapper
    (DDP, FSDP) count nothing twice. Under several processes each counts its own examples; `total()` adds them up.

    Args:
        *models: the modules whose forward calls cost (the student, a live teacher, a second teacher).
    """

    def __init__(self, *models: torch.nn.Module):
        self.models = [m for m in models if m is not None]
        self.units = 0
        self.parts: dict[str, int] = {}  # units counted inside `part(name)` blocks: probes, checks
        # the costliest pass each part has asked to run (`affords`), so that a budget can keep room for it ahead
        self.passes: dict[str, int] = {}
        self._part: str | None = None
        self._handles: list = []

    @contextlib.contextmanager
    def part(self, name: str):
        """Count what runs inside the block under `name` too (`parts`), to say what share of a run its probes or
        checks cost."""
        outer, self._part = self._part, name
        try:
            yield self
        finally:
            self._part = outer

    def add(self, *models: torch.nn.Module) -> None:
        """Count `models` too (e.g. a teacher a method builds once training starts)."""
        for model in models:
            if model is not None and all(model is not m for m in self.models):
                self.models.append(model)
                if self._handles:
                    self._handles.append(model.register_forward_pre_hook(self._count, with_kwargs=True))

    def _count(self, module, args, kwargs) -> None:
        units = _batch_size(args, kwargs) * (FORWARD_BACKWARD if torch.is_grad_enabled() else FORWARD)
        self.units += units
        if self._part is not None:
            self.parts[self._part] = self.parts.get(self._part, 0) + units

    def __enter__(self) -> CostMeter:
        self._handles = [m.register_forward_pre_hook(self._count, with_kwargs=True) for m in self.models]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def total(self) -> int:
        """The count over every process (a collective: call it on all of them at the same point)."""
        return self._summed(self.units)[0]

    def affords(self, part: str, units: int, share: float) -> bool:
        """Whether `units` more under `part` keep that part within `share` of the whole run's count, over every
        process (a collective, so every process decides the same): how a stop's probes or checks are paced so that
        they never cost more than their share of the run they stop, on any data size.

        >>> meter = CostMeter()
        >>> meter.units, meter.parts = 19_000, {"probes": 0}  # 19,000 units of training, no probe yet
        >>> meter.affords("probes", 1000, share=0.05), meter.affords("probes", 1001, share=0.05)
        (True, False)
        """
        self.passes[part] = max(self.passes.get(part, 0), units)
        total, spent = self._summed(self.units, self.parts.get(part, 0))
        return spent + units <= share * (total + units)

    def counts(self) -> tuple[int, int]:
        """(everything, what ran inside parts), over every process (a collective: call it on all of them)."""
        total, in_parts = self._summed(self.units, sum(self.parts.values()))
        return total, in_parts

    @staticmethod
    def _summed(*counts: int) -> list[int]:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return list(counts)
        backend = torch.distributed.get_backend()
        device = "cuda" if backend == "nccl" else "cpu"
        summed = torch.tensor(counts, dtype=torch.long, device=device)
        torch.distributed.all_reduce(summed)
        return [int(c) for c in summed.tolist()]


def cost_summary(units: int, retrain_units: int | None, budget: float | None = None) -> dict:
    """What report.json, the card and the benchmark record of a run's cost.

    >>> cost_summary(900, 9000, budget=0.1)
    {'units': 900, 'retrain_units': 9000, 'share_of_retrain': 0.1, 'budget': 0.1, 'within_budget': True}
    """
    share = units / retrain_units if retrain_units else None
    within = None if budget is None or share is None else share <= budget + 1e-12
    return {
        "units": int(units),
        "retrain_units": retrain_units,
        "share_of_retrain": share,
        "budget": budget,
        "within_budget": within,
    }


def describe_cost(cost: dict) -> str:
    """A run's cost in one sentence, as the CLI prints it and the card says it.

    >>> cost = {"units": 98304, "retrain_units": 4860000, "share_of_retrain": 0.0202, "budget": 0.1,
    ...         "within_budget": True, "wall_share": 0.031}
    >>> describe_cost(cost)[-69:]
    ': 2.0% of a retraining (wall time: 3.1%), within its budget of 10.0%.'
    """
    text = f"It cost {cost['units']:,} units (3 per example through forward and backward, 1 through a forward only)"
    if cost.get("share_of_retrain") is not None:
        text += f": {cost['share_of_retrain']:.1%} of a retraining"
        if cost.get("wall_share") is not None:
            text += f" (wall time: {cost['wall_share']:.1%})"
    else:
        text += "; no retraining to compare with (`retrain_epochs` unknown)"
    if cost.get("budget") is not None:
        text += f", {'within' if cost['within_budget'] else 'over'} its budget of {cost['budget']:.1%}"
    return text + "."


class CostCallback(TrainerCallback):
    """Counts a `Trainer`'s run with a `CostMeter` (from training's start to its end: the passes a method makes before
    its first update included) and stops it at its budget, the same way for every method.

    The budget is checked after each optimizer step: training stops when one more step as costly as the costliest
    so far, followed by the costliest passes its probes and checks may run after it, would pass it, so a run ends
    within its budget. The passes are the larger of the costliest seen between two steps and what the parts have
    asked to run (`CostMeter.affords`, asked after every step before a pass runs): a first probe, paced to run just
    before a mark, is counted ahead of it. At each of `checkpoints` (smaller budgets) on the way, a checkpoint is
    saved, so that one run can be evaluated at 5%, 10% and 20% of a retraining, each within its share.

    Args:
        meter: the run's `CostMeter`, over the models the trainer runs.
        retrain_units: the cost of a retraining (`retraining_cost`), or None when unknown.
        budget: the share of `retrain_units` at which training stops (None: no budget).
        checkpoints: smaller shares at which a checkpoint is saved.

    Example:
        >>> callback = CostCallback(CostMeter(), retrain_units=10_000, budget=0.2, checkpoints=[0.05, 0.1])
        >>> callback.marks
        [500, 1000, 2000]
    """

    def __init__(
        self,
        meter: CostMeter,
        retrain_units: int | None = None,
        budget: float | None = None,
        checkpoints: list[float] = (),
    ):
        if budget is not None and not retrain_units:
            raise ValueError("`budget` needs the cost of a retraining (`retrain_units`).")
        self.meter, self.retrain_units, self.budget = meter, retrain_units, budget
        shares = [*checkpoints, budget] if budget is not None else []
        self.shares = [float(s) for s in shares]
        self.marks = [int(s * retrain_units) for s in self.shares] if shares else []
        self.reached: dict[float, dict] = {}  # share -> {"units", "step", "seconds"} where the run was taken at it
        self.stopped_by_budget = False
        self._last = (0, 0)  # (everything, what ran inside parts) at the previous step's end
        self._largest = 0  # the costliest training step so far, its probes and checks apart
        self._largest_passes = 0  # the costliest probes and checks that ran between two steps
        self._steps = 0
        self._start = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()
        self.meter.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        units, in_parts = self.meter.counts()
        passes = in_parts - self._last[1]
        step = units - self._last[0] - passes
        self._last = (units, in_parts)
        if self.marks:  # what share of its budget the run has spent, for the callbacks after this one (progress)
            state.budget_spent = min(1.0, units / self.marks[-1])
        self._largest_passes = max(self._largest_passes, passes)
        if self._steps:  # the first holds what the method did before its first update: not a step's cost
            self._largest = max(self._largest, step)
        self._steps += 1
        ahead = max(step if self._steps == 1 else 0, self._largest)
        ahead += max(self._largest_passes, sum(self.meter.passes.values()))
        for share, mark in zip(self.shares, self.marks, strict=True):
            if share not in self.reached and units + ahead > mark:
                self.reached[share] = {
                    "units": units,
                    "step": state.global_step,
                    "seconds": time.perf_counter() - self._start,
                    "parts": dict(self.meter.parts),
                }
                if share == self.budget:
                    control.should_training_stop = self.stopped_by_budget = True
                else:
                    control.should_save = True

    def on_train_end(self, args, state, control, **kwargs):
        self.meter.__exit__()

    def resume(self, units: int, reached: dict, parts: dict | None = None) -> None:
        """Go on from a checkpoint: this process's count then (with its probes' and checks' parts, which pace
        them), and the budgets the run had reached (a collective under several processes: call it on all of
        them)."""
        self.meter.units = units
        self.meter.parts = dict(parts or {})
        self._last = self.meter.counts()
        self.reached = {float(share): at for share, at in reached.items()}

    def summary(self) -> dict:
        """`cost_summary` of the run so far, with the checkpoints taken on the way (share -> units and step). A
        collective under several processes: call it on all of them."""
        summary = cost_summary(self.meter.total(), self.retrain_units, self.budget)
        summary["stopped_by_budget"] = self.stopped_by_budget
        summary["parts"] = dict(self.meter.parts)  # this process's units of its probes and checks
        if len(self.shares) > 1:
            summary["checkpoints"] = {str(s): r for s, r in self.reached.items() if s != self.budget}
        return summary


def track_cost(trainer, retain_size: int | None) -> CostCallback:
    """Give `trainer` its `CostCallback`, over its model (`trainer.cost.meter.add` takes any other model it runs),
    with the budget of its `args` (`budget`, `budget_checkpoints`, `retrain_epochs`) for a retain set of
    `retain_size` examples. Call it before adding the trainer's own hooks, so that what they do when training
    starts (teacher logits, saliency masks) counts."""
    args = trainer.args
    retrain_units = retraining_cost(args.retrain_epochs, retain_size) if args.retrain_epochs and retain_size else None
    if args.budget is not None and retrain_units is None:
        raise ValueError("`budget` needs a retain set whose length is known, to count what a retraining costs.")
    callback = CostCallback(CostMeter(trainer.model), retrain_units, args.budget, args.budget_checkpoints)
    trainer.add_callback(callback)
    return callback
