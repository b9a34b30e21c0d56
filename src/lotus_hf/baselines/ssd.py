"""SSD, Selective Synaptic Dampening (Foster et al., AAAI 2024): no training, one pass. Parameters far more
important to the forget set than to all training data are shrunk."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..config import POSITIVE
from .base import BaselineConfig, batches


@dataclass
class SSDConfig(BaselineConfig):
    """SSD's constants: parameters with `I_forget > ssd_alpha * I_all` are multiplied by
    `min(ssd_lambda * I_all / I_forget, 1)`. Only `per_device_train_batch_size` and `seed` of the training
    fields matter: SSD takes no optimizer step."""

    method = "ssd"
    checks = {"ssd_alpha": POSITIVE, "ssd_lambda": POSITIVE}
    optim: str = field(default="sgd", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=0.0, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=1, metadata={"help": "Epochs.", "aliases": ["--epochs"]})
    training_fields = ()
    trains = False  # one pass: importances, then dampening

    ssd_alpha: float = field(default=10.0, metadata={"help": "SSD selection threshold a."})
    ssd_lambda: float = field(default=1.0, metadata={"help": "SSD dampening constant l."})


def ssd(model, forget_dataset, retain_dataset, args: SSDConfig) -> dict:
    """Run SSD on `model` in place, as `lotus_hf.unlearn` runs a baseline's trainer; returns what it did,
    `{"dampened_parameters": n}`, for the report."""
    model.to(args.device)
    dampened = selective_synaptic_dampening(
        model,
        forget_dataset,
        retain_dataset,
        alpha=args.ssd_alpha,
        lam=args.ssd_lambda,
        batch_size=args.per_device_train_batch_size,
        seed=args.seed,
    )
    return {"dampened_parameters": dampened}


def selective_synaptic_dampening(
    model, forget, retain, alpha: float = 10.0, lam: float = 1.0, batch_size: int = 128, seed: int = 0
) -> int:
    """SSD, in place: parameters whose importance on `forget` exceeds `alpha` times their importance on all
    training data (`forget` and `retain`) are multiplied by `min(lam * I_all / I_forget, 1)`. Importance is
    the diagonal Fisher estimate of `squared_gradients`. Batches of all training data are shuffled (seeded),
    as the SSD authors' training loader is: with batches of forget rows only, `I_all` could never fall below
    a tenth of `I_forget` for a 10% forget set, and `alpha = 10` would select nothing. Returns how many
    scalars were dampened."""
    forget_importance = squared_gradients(model, [forget], batch_size, seed)
    all_importance = squared_gradients(model, [forget, retain], batch_size, seed)
    return dampen(list(model.parameters()), forget_importance, all_importance, alpha, lam)


@torch.no_grad()
def dampen(params, forget_importance, all_importance, alpha: float, lam: float) -> int:
    """Multiply the selected entries of `params` in place; returns how many were selected."""
    changed = 0
    for param, i_f, i_d in zip(params, forget_importance, all_importance, strict=True):
        selected = i_f > alpha * i_d
        factor = torch.clamp(lam * i_d / i_f.clamp_min(1e-30), max=1.0)
        param.mul_(torch.where(selected, factor, torch.ones_like(factor)))
        changed += int(selected.sum())
    return changed


def squared_gradients(model, datasets, batch_size: int, seed: int = 0) -> list[torch.Tensor]:
    """Mean over batches of the squared gradient of the batch cross-entropy (diagonal Fisher estimate), in
    eval mode so that BatchNorm statistics do not move."""
    device = next(model.parameters()).device
    params = list(model.parameters())
    sums = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    count = 0
    try:
        for pixels, labels in batches(datasets, batch_size, seed):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(pixel_values=pixels.to(device)).logits, labels.to(device)).backward()
            for total, param in zip(sums, params, strict=True):
                if param.grad is not None:
                    total.add_(param.grad.detach() ** 2)
            count += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [total / max(count, 1) for total in sums]
