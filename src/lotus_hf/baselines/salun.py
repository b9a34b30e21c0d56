"""SalUn (Fan et al., ICLR 2024): Random Labels, updating only the weights most salient to the forget loss."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from ..config import IN_UNIT_INTERVAL
from .base import batches
from .random_labels import RandomLabelsConfig, RandomLabelsTrainer


@dataclass
class SalUnConfig(RandomLabelsConfig):
    """Random Labels' defaults plus `salun_sparsity`, the share of all weights that may change: those with the
    largest gradient of the forget loss."""

    method = "salun"
    checks = {"salun_sparsity": IN_UNIT_INTERVAL}

    salun_sparsity: float = field(
        default=0.1,
        metadata={
            "help": "Share of weights SalUn updates.",
        },
    )


class SalUnTrainer(RandomLabelsTrainer):
    """Random Labels with the gradients outside the saliency mask zeroed before each step."""

    config_class = SalUnConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.saliency_mask: list[torch.Tensor] | None = None  # computed when training starts
        self.add_callback(_MaskGradients(self))

    def prepare(self) -> None:
        super().prepare()
        self.saliency_mask = saliency_mask(
            self.model, self.forget_dataset, self.args.salun_sparsity, self.args.per_device_train_batch_size
        )


class _MaskGradients(TrainerCallback):
    """Zeroes every gradient outside the saliency mask, after the gradients of a step are complete and before
    the optimizer uses them."""

    def __init__(self, trainer: SalUnTrainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        for param, mask in zip(self.trainer.model.parameters(), self.trainer.saliency_mask, strict=True):
            if param.grad is not None:
                param.grad.mul_(mask)


def saliency_mask(model, forget, sparsity: float = 0.1, batch_size: int = 128) -> list[torch.Tensor]:
    """SalUn's weight saliency: 1 for the `sparsity` share of all weights with the largest |gradient of the
    forget-set cross-entropy| (one threshold over the whole model), 0 elsewhere. Eval mode: BatchNorm
    statistics do not move."""
    device = next(model.parameters()).device
    grads = [torch.zeros_like(p) for p in model.parameters()]
    was_training = model.training
    model.eval()
    try:
        for pixels, labels in batches([forget], batch_size):
            model.zero_grad(set_to_none=True)
            logits = model(pixel_values=pixels.to(device)).logits
            F.cross_entropy(logits, labels.to(device), reduction="sum").backward()
            for total, param in zip(grads, model.parameters(), strict=True):
                if param.grad is not None:
                    total.add_(param.grad.detach())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return top_share_mask(grads, sparsity)


def top_share_mask(grads: list[torch.Tensor], share: float) -> list[torch.Tensor]:
    """1 for the `share` of all entries of `grads` with the largest magnitudes (one threshold over all of them),
    0 elsewhere; an entry of magnitude 0 is never salient. (A model that fits its forget set has exactly zero
    gradients on many weights; with a threshold of 0 the mask was all ones, and SalUn was Random Labels.)"""
    magnitudes = torch.cat([g.abs().flatten() for g in grads])
    keep = max(1, int(round(share * magnitudes.numel())))
    threshold = torch.topk(magnitudes, keep, sorted=False).values.min()
    return [((g.abs() >= threshold) & (g != 0)).to(g.dtype) for g in grads]
