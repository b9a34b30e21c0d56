"""NegGrad+: per step, descend the cross-entropy of a retain batch and ascend that of a forget batch,
`beta * CE(retain) - (1 - beta) * CE(forget)`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..config import IN_UNIT_INTERVAL
from .finetune import FinetuneConfig, FinetuneTrainer


@dataclass
class NegGradPlusConfig(FinetuneConfig):
    """Finetune's defaults plus `neggrad_beta`, the weight of the retain loss (0.95-0.999 in the literature)."""

    method = "neggrad_plus"
    checks = {**FinetuneConfig.checks, "neggrad_beta": IN_UNIT_INTERVAL}

    neggrad_beta: float = field(default=0.99, metadata={"help": "NegGrad+ weight beta of the retain loss."})


class NegGradPlusTrainer(FinetuneTrainer):
    """The retain set is the stream; each step also takes the next batch of the forget set, from a data loader
    accelerate prepares (with several processes each takes its own share)."""

    config_class = NegGradPlusConfig

    def prepare(self) -> None:
        self._forget_batches = self.forget_batches()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = self._prepare_inputs(next(self._forget_batches))
        retain_rows = len(inputs["labels"])
        logits = model(pixel_values=torch.cat([inputs["pixel_values"], forget["pixel_values"]])).logits
        retain_loss = F.cross_entropy(logits[:retain_rows], inputs["labels"])
        forget_loss = F.cross_entropy(logits[retain_rows:], forget["labels"])
        beta = self.args.neggrad_beta
        loss = beta * retain_loss - (1 - beta) * forget_loss
        return (loss, logits) if return_outputs else loss
