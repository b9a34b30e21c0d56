"""A stop the verifier would sign, for any method: `VerifiedStop` runs the verifier's own tests (`lotus_hf.evidence`)
during training, on the calibration half of the held-out data (`UnlearningData.unseen`), and ends the run as soon as
they say `forgotten`. The final verdict still comes from the other half (`UnlearningData.test`), which nothing in
the run has seen, so a run cannot stop on noise in the data that judges it.

Each check reads seeded subsets of the forget set and of the calibration half (`samples` of each); their forward
passes count in the run's cost like every other (`lotus_hf.cost`), and a check runs after a step only when it keeps
the checks within `share` of the run's cost so far, so they never cost more than that share of the run they stop.

Example:
    >>> trainer = FinetuneTrainer(model, config, data.forget, data.retain)  # doctest: +SKIP
    >>> stop = VerifiedStop(data.forget, data.unseen, "samples", meter=trainer.cost.meter)  # doctest: +SKIP
    >>> trainer.add_callback(stop)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Subset
from transformers import TrainerCallback

from .cost import CostMeter
from .evaluation import predict_logits
from .evidence import log_softmax, verify_outputs
from .stream import seeded_rows


class VerifiedStop(TrainerCallback):
    """Stops training at the first check where the verifier's tests, on the calibration half, say `forgotten`.

    Args:
        forget_dataset: the forget set (`pixel_values`/`labels` items).
        calibration_dataset: held-out data of the same classes that the final verdict does not read
            (`UnlearningData.unseen`).
        kind: the request's kind (`ForgetRequest.kind`: `"classes"`, `"first_percent"`, ...).
        meter: the run's `CostMeter` (`trainer.cost.meter`): the checks count in it apart (`part("checks")`),
            and it paces them.
        share: the largest share of the run's cost the checks may take; a check runs after a step (never before
            the first update) as soon as it fits.
        samples: how many forget and calibration rows a check reads (a seeded subset of each; None: all).
        seed: the subsets' seed.

    `checks` lists every check: its step, verdict and each test's statistic.
    """

    def __init__(
        self,
        forget_dataset,
        calibration_dataset,
        kind: str,
        meter: CostMeter,
        share: float = 0.05,
        samples: int | None = 1000,
        seed: int = 0,
    ):
        if not 0 < share < 1:
            raise ValueError(f"`share` must be in (0, 1), got {share!r}.")
        self.forget = seeded_rows(forget_dataset, samples, seed)
        self.calibration = seeded_rows(calibration_dataset, samples, seed + 1)
        self.kind, self.meter, self.share = kind, meter, share
        self.checks: list[dict] = []
        self._labels = [self._labels_of(d) for d in (self.forget, self.calibration)]

    @staticmethod
    def _labels_of(dataset) -> np.ndarray:
        if isinstance(dataset, Subset) and hasattr(dataset.dataset, "labels"):
            return np.asarray(dataset.dataset.labels)[dataset.indices]
        if hasattr(dataset, "labels"):
            return np.asarray(dataset.labels)
        return np.asarray([int(dataset[i]["labels"]) for i in range(len(dataset))])

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if control.should_training_stop:
            return
        if not self.meter.affords("checks", len(self.forget) + len(self.calibration), self.share):
            return
        verdict = self.check(model, state.global_step, args.per_device_eval_batch_size)
        if verdict == "forgotten":
            control.should_training_stop = True

    def check(self, model, step: int, batch_size: int = 512) -> str:
        """The verifier's verdict on `model` now, from the subsets (the same on every process)."""
        with self.meter.part("checks"):
            forget_lp, held_lp = [
                log_softmax(predict_logits(model, rows, batch_size).numpy().astype(np.float64))
                for rows in (self.forget, self.calibration)
            ]
        result = verify_outputs(forget_lp, self._labels[0], held_lp, self._labels[1], kind=self.kind)
        verdict = _same_everywhere(result.verdict)
        self.checks.append({"step": step, "verdict": verdict, **{e.test: e.statistic for e in result.evidence}})
        return verdict


def _same_everywhere(verdict: str) -> str:
    """The first process's verdict on every process (they all computed it; this keeps their decisions one)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return verdict
    shared = [verdict]
    torch.distributed.broadcast_object_list(shared, src=0)
    return shared[0]
