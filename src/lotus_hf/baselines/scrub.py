"""SCRUB (Kurmanji et al., NeurIPS 2023): alternate "max" passes that push the student's outputs on the
forget set away from the original's and "min" steps that keep it close to the original on the retain set.
Unlike the LoTUS paper's reference code, the trained student is returned, not the untouched original."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .._compat import training_loader
from ..config import POSITIVE
from ..evaluation import predict_logits
from ..stream import UnlearningStream
from .base import BaselineConfig, BaselineTrainer, distillation_kl


@dataclass
class ScrubConfig(BaselineConfig):
    """SCRUB's defaults: Adam lr 5e-4 (no weight decay), 3 epochs, a max pass in the first 2, distillation
    temperature 4, min steps `0.99 CE + 0.001 KL`."""

    method = "scrub"
    checks = {"scrub_temperature": POSITIVE, "scrub_max_epochs": (lambda v: v >= 0, ">= 0")}
    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=3, metadata={"help": "Epochs.", "aliases": ["--epochs"]})

    scrub_temperature: float = field(
        default=4.0,
        metadata={"help": "SCRUB's distillation temperature."},
    )
    scrub_max_epochs: int = field(
        default=2,
        metadata={
            "help": "First epochs that begin with a max pass (msteps).",
        },
    )
    scrub_ce_weight: float = field(default=0.99, metadata={"help": "Min-step cross-entropy weight (gamma)."})
    scrub_kl_weight: float = field(default=0.001, metadata={"help": "Min-step KL weight (alpha)."})


class ScrubTrainer(BaselineTrainer):
    """The stream is the retain set (min steps); each of the first `scrub_max_epochs` epochs opens with one
    pass of max steps over the forget set, through the trainer's own `training_step` and optimizer."""

    config_class = ScrubConfig

    def prepare(self) -> None:
        """The original's logits on both sets (the student is still the original here)."""
        batch = self.args.per_device_eval_batch_size
        self.train_dataset.teacher_logits = predict_logits(self.model, self.train_dataset, batch)
        forget = UnlearningStream(self.forget_dataset, [], torch.arange(0))
        forget.teacher_logits = predict_logits(self.model, self.forget_dataset, batch)
        self._forget_loader = training_loader(self, forget, "forget")

    def begin_epoch(self) -> bool:
        super().begin_epoch()
        if len(self.history) > self.args.scrub_max_epochs:
            return False
        self.current_gradient_accumulation_steps = 1  # each max step is an optimizer step of its own
        for batch in self._forget_loader:  # the max pass
            self.training_step(self.model_wrapped, batch)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(pixel_values=inputs["pixel_values"])
        kl = distillation_kl(outputs.logits, inputs["teacher_logits"], self.args.scrub_temperature)
        if inputs["is_forget"].bool().all():  # a max step: move away from the original on the forget set
            loss = -kl
        else:  # a min step: stay close to the original, and right, on the retain set
            ce = F.cross_entropy(outputs.logits, inputs["labels"])
            loss = self.args.scrub_ce_weight * ce + self.args.scrub_kl_weight * kl
        return (loss, outputs) if return_outputs else loss
