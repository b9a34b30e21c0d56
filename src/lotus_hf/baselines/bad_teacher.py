"""Bad Teacher (Chundawat et al., AAAI 2023): distil the forget rows from an incompetent (randomly
initialised) teacher and the retain rows from the original model."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForImageClassification

from ..config import IN_UNIT_INTERVAL, POSITIVE
from ..evaluation import predict_logits
from ..stream import UnlearningStream, seeded_subset
from .base import BaselineConfig, BaselineTrainer, distillation_kl


@dataclass
class BadTeacherConfig(BaselineConfig):
    """Bad Teacher's defaults: Adam lr 1e-4 (no weight decay), 1 epoch over the forget set and 30% of the
    retain set, temperature 1."""

    method = "bad_teacher"
    checks = {"retain_fraction": IN_UNIT_INTERVAL, "bad_teacher_temperature": POSITIVE}
    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=1, metadata={"help": "Epochs.", "aliases": ["--epochs"]})

    retain_fraction: float = field(
        default=0.3,
        metadata={
            "help": "Share of the retain set mixed in.",
        },
    )
    bad_teacher_temperature: float = field(default=1.0, metadata={"help": "Distillation temperature."})


class BadTeacherTrainer(BaselineTrainer):
    """Stream: the forget set and a seeded `retain_fraction` of the retain set, each row with its teacher's
    logits (computed once, before training)."""

    config_class = BadTeacherConfig

    def build_stream(self, args: BadTeacherConfig) -> UnlearningStream:
        chosen = seeded_subset(len(self.retain_dataset), args.retain_fraction, args.seed)
        return UnlearningStream(self.forget_dataset, self.retain_dataset, chosen)

    def prepare(self) -> None:
        batch, n_forget = self.args.per_device_eval_batch_size, len(self.forget_dataset)
        torch.manual_seed(self.args.seed)
        incompetent = AutoModelForImageClassification.from_config(self.model.config).to(self.args.device)
        self.cost.meter.add(incompetent)  # its forward passes count like the original's
        retain_rows = torch.utils.data.Subset(self.train_dataset, range(n_forget, len(self.train_dataset)))
        self.train_dataset.teacher_logits = torch.cat(
            [
                predict_logits(incompetent, self.forget_dataset, batch),
                predict_logits(self.model, retain_rows, batch),
            ]
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(pixel_values=inputs["pixel_values"])
        loss = distillation_kl(outputs.logits, inputs["teacher_logits"], self.args.bad_teacher_temperature)
        return (loss, outputs) if return_outputs else loss
