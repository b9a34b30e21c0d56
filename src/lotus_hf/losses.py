"""Pure tensor functions of LoTUS: targets, temperature, stop rule and the soft cross-entropy.

Nothing here knows about models, data or the Trainer, so every piece can be checked by hand.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PROB_TRANSFORMS = ("gumbel_softmax", "softmax")
ACCURACY_DECIMALS = 2  # the reference experiments round A_f and A_u, so delta moves in steps of 0.01


def round_accuracy(accuracy: float) -> float:
    """Round an accuracy the way the stop rule sees it (2 decimals).

    >>> round_accuracy(0.9349)
    0.93
    """
    return round(float(accuracy), ACCURACY_DECIMALS)


def accuracy_gap(forget_accuracy: float, unseen_accuracy: float) -> float:
    """`delta = round(A_f) - round(A_u)`, itself rounded so float noise never flips the stop rule.

    >>> accuracy_gap(0.987, 0.912)
    0.08
    """
    return round(round_accuracy(forget_accuracy) - round_accuracy(unseen_accuracy), ACCURACY_DECIMALS)


def temperature(delta: float, alpha: float) -> float:
    """LoTUS temperature `tau = exp(alpha * delta)`: the more the forget set is still known, the flatter.

    >>> temperature(0.0, 8.0)
    1.0
    >>> round(temperature(0.05, 2.0), 6)
    1.105171
    """
    return math.exp(alpha * delta)


STOP_RULES = ("bound", "paper")


def should_stop(delta: float, margin: float = 0.01, rule: str = "paper") -> bool:
    """The paper's rule stops once the forget accuracy has fallen `margin` below the unseen accuracy; lotus-hf's
    `"bound"` rule once it has reached the unseen accuracy within `margin` (docs/method.md).

    >>> should_stop(-0.01), should_stop(0.0), should_stop(0.01, rule="bound"), should_stop(0.02, rule="bound")
    (True, False, True, False)
    """
    # delta is a multiple of 0.01 after rounding; the epsilon keeps -0.01 <= -0.01 true in floats.
    return delta <= (margin if rule == "bound" else -margin) + 1e-9


def sample_gumbel(shape_like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """I.i.d. Gumbel(0, 1) noise shaped like `shape_like`, drawn from `generator` when given.

    Uses `-log(E)` with `E ~ Exponential(1)`, as `torch.nn.functional.gumbel_softmax` does, but with an
    explicit generator so targets are reproducible in tests.
    """
    exponential = torch.empty_like(shape_like, dtype=torch.float32).exponential_(generator=generator)
    return -exponential.log()


def lotus_targets(
    teacher_logits: torch.Tensor,
    is_forget: torch.Tensor,
    tau: float,
    prob_transform: str = "gumbel_softmax",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-row training targets of LoTUS.

    Forget rows get the teacher's prediction made uncertain: a Gumbel-softmax sample at temperature
    `tau`. Retain rows get a hard one-hot label sampled from the teacher (Gumbel-max at `tau = 1`),
    with noise independent of the forget rows'. With `prob_transform="softmax"` both are noiseless:
    `softmax(z / tau)` for forget rows and `onehot(argmax z)` for retain rows.

    Example:
        >>> z = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> lotus_targets(z, torch.tensor([0, 1]), tau=1.0, prob_transform="softmax")
        tensor([[1.0000, 0.0000],
                [0.1192, 0.8808]])
    """
    if prob_transform not in PROB_TRANSFORMS:
        raise ValueError(f"`prob_transform` must be one of {PROB_TRANSFORMS}, got {prob_transform!r}.")
    logits = teacher_logits.float()
    if prob_transform == "gumbel_softmax":
        soft_input = logits + sample_gumbel(logits, generator)
        hard_input = logits + sample_gumbel(logits, generator)  # an independent draw (spec detail 3)
    else:
        soft_input = hard_input = logits
    soft = F.softmax(soft_input / tau, dim=-1)
    hard = F.one_hot(hard_input.argmax(dim=-1), num_classes=logits.shape[-1]).to(soft.dtype)
    forget = is_forget.to(soft.dtype).unsqueeze(-1)
    return forget * soft + (1.0 - forget) * hard


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy `-sum_c t_c log softmax(logits)_c` against probability targets.

    >>> soft_cross_entropy(torch.zeros(1, 4), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    tensor([1.3863])
    """
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)
