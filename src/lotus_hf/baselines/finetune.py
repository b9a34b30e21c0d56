"""Finetune: cross-entropy on the retain set only, so that the forget set fades as the model moves on."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F

from .base import BaselineConfig, BaselineTrainer


@dataclass
class FinetuneConfig(BaselineConfig):
    """Finetune's defaults (docs/evaluation.md): SGD with momentum 0.9, lr 1e-3, weight decay 5e-4, 5 epochs.
    NegGrad+, Random Labels and SalUn start from the same."""

    method = "finetune"
    optim: str = field(default="sgd", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=5e-4, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=5, metadata={"help": "Epochs.", "aliases": ["--epochs"]})


class FinetuneTrainer(BaselineTrainer):
    """Cross-entropy on the retain set (the default stream of `BaselineTrainer`)."""

    config_class = FinetuneConfig

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(pixel_values=inputs["pixel_values"])
        loss = F.cross_entropy(outputs.logits, inputs["labels"])
        return (loss, outputs) if return_outputs else loss
