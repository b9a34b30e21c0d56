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


def should_stop(delta: float, margin: float = 0.01) -> bool:
    """Stop once the forget accuracy has fallen `margin` below the unseen accuracy.

    >>> should_stop(-0.01), should_stop(0.0)
    (True, False)
    """
    # delta is a multiple of 0.01 after rounding; the epsilon keeps -0.01 <= -0.01 true in floats.
    return delta <= -margin + 1e-9


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


# ------------------------------------------------------------------ lotus-hf's class mode ("remaining")
def remaining_class_targets(
    teacher_logits: torch.Tensor, forgotten: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One class per row, drawn from the teacher's belief over the classes that are not `forgotten` (Gumbel-max:
    `argmax(z + g)` with the forgotten classes' logits at -inf), as LoTUS draws its retain labels. Class mode
    draws them once per run: a model that never saw a class files each of its samples under one other class.

    >>> z = torch.tensor([[9.0, 0.0, 5.0], [9.0, 5.0, 0.0]])
    >>> remaining_class_targets(z, torch.tensor([0]), torch.Generator().manual_seed(0)).tolist()
    [2, 1]
    """
    masked = teacher_logits.float().index_fill(-1, forgotten.to(teacher_logits.device), float("-inf"))
    return (masked + sample_gumbel(masked, generator)).argmax(dim=-1)


def entropies(logits: torch.Tensor) -> torch.Tensor:
    """The Shannon entropy (nats) of each row of `softmax(logits)`, in float64.

    >>> entropies(torch.tensor([[0.0, 0.0], [50.0, 0.0]])).tolist()[0] == math.log(2)
    True
    """
    log_probs = F.log_softmax(logits.double(), dim=-1)
    return -(log_probs.exp() * log_probs).nansum(dim=-1)


def membership_threshold(members: torch.Tensor, nonmembers: torch.Tensor) -> float:
    """The entropy below which a sample looks like training data: the threshold that best tells `members`'
    entropies from `nonmembers'` (highest balanced accuracy, "member" meaning entropy <= threshold; the lowest
    such threshold on ties). It is the entropy attack of the evaluation's MIA, as a decision stump.

    >>> round(membership_threshold(torch.tensor([0.0, 0.1, 0.5]), torch.tensor([0.4, 0.9, 1.0])), 6)
    0.1
    """
    candidates = torch.cat([members, nonmembers]).double().unique()  # sorted
    tpr = torch.searchsorted(members.double().sort().values, candidates, right=True) / len(members)
    tnr = 1 - torch.searchsorted(nonmembers.double().sort().values, candidates, right=True) / len(nonmembers)
    return float(candidates[torch.argmax(tpr + tnr)])


def member_rate(entropy: torch.Tensor, threshold: float) -> float:
    """The share of rows whose entropy is at most `threshold`: those a membership attack calls training data.

    >>> member_rate(torch.tensor([0.0, 0.2, 0.3, 0.9]), 0.25)
    0.5
    """
    return float((entropy <= threshold).double().mean()) if len(entropy) else 0.0


def unseen_errors(logits: torch.Tensor, labels: torch.Tensor, forgotten: torch.Tensor) -> torch.Tensor:
    """The rows of the kept classes (labels not in `forgotten`) that `logits` get wrong: class mode's reference,
    the unseen samples a model cannot classify (docs/method.md).

    >>> unseen_errors(torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]), torch.tensor([0, 1, 2]), torch.tensor([2]))
    tensor([False,  True, False])
    """
    kept = ~torch.isin(labels, forgotten.to(labels.device))
    return kept & (logits.argmax(dim=-1) != labels)
