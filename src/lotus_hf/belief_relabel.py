"""Belief Relabel: lotus-hf's own method for forgetting whole classes, a sibling of LoTUS that shares its training
stream, teacher and loss (`StreamTrainer`) but not its targets or its stop (docs/method.md, "Belief Relabel").

When whole classes are forgotten, LoTUS's rule aims at an unseen accuracy of 0, so its stop cannot fire and its
targets come from an original that still ranks the forgotten class first. A model retrained without the class
instead files each of its images under some other class, often with confidence. Belief Relabel does that:

1. before training, each forget sample gets one class, drawn once from the original's softmax over the
   *remaining* classes (Gumbel-max, the noise LoTUS draws its retain labels with); forget rows are trained
   towards it, and the forgotten classes are masked out of every target (retain rows keep LoTUS's Gumbel-max
   labels from the original);
2. after a step, as soon as one more probe keeps the probes within `probe_share` of the run's cost (paced as
   LoTUS's bound stop: `CostMeter.affords`), an entropy membership attack is fitted on the student (up to
   `membership_rows` retain rows of the stream as members against as many unseen rows of the kept classes) and read
   on a seeded subset of `probe_samples` forget samples; training stops once the rounded forget accuracy is 0
   **and** the attack calls at least as large a share of the forget samples members as the original's own attack
   calls of the unseen samples it gets wrong (a model that never saw a class is about as sure of its images as of
   the unseen images it misclassifies). It needs no probe before training: it has no temperature to set.

Its stop reads only the unseen split (the calibration half of the test split), never the test half that the
evaluation's MIA and `lotus-hf verify` read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from .config import StreamConfig
from .errors import ArgumentError
from .evaluation import accuracy
from .losses import lotus_targets, round_accuracy, sample_gumbel
from .runstate import RunState
from .stream import ItemList, is_streamed
from .stream_trainer import StreamTrainer


@dataclass
class BeliefRelabelConfig(StreamConfig):
    """Configuration of the [`BeliefRelabelTrainer`]: every `TrainingArguments` field, plus the share of the
    retain set mixed in and how teacher logits become retain labels (as LoTUS's). It has no alpha and no stop
    margin: its stop is the membership rule above, and the learning rate sets how finely it lands."""

    method = "belief_relabel"

    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "AdamW learning rate (as LoTUS's; bundled models carry their tuned picks)."},
    )
    probe_samples: int | None = field(
        default=500,  # fewer than LoTUS's 1,000: each probe also fits an attack on 2 x `membership_rows` rows
        metadata={"help": "The probes read a seeded subset of this many forget samples (all: None)."},
    )
    membership_rows: int = field(
        default=250,
        metadata={"help": "Rows of each side (retain members, unseen non-members) the probes' attack is fitted on."},
    )

    checks: ClassVar[dict] = {
        **StreamConfig.checks,
        "membership_rows": (lambda value: value >= 2, ">= 2"),
    }

    def summary(self) -> str:
        return (
            f"Belief Relabel, lotus-hf's class forgetting (not the paper's; docs/method.md): "
            f"{self.num_train_epochs:g} epochs at most, lr {self.learning_rate:g}"
        )

    def card_description(self) -> str:
        return (
            "with Belief Relabel, lotus-hf's own method for forgetting whole classes (not the LoTUS paper's; it\n"
            "reuses LoTUS's retain targets): each image of the forgotten classes is trained towards one remaining\n"
            "class drawn from the original's own belief, and training stops once the model never predicts the\n"
            "forgotten classes and a membership attack calls at least as many of their images members as it calls\n"
            "of the unseen images the original gets wrong."
        )

    def method_hyperparameters(self) -> dict:
        return {
            **super().method_hyperparameters(),
            "probe_share": self.probe_share,
            "probe_samples": self.probe_samples,
            "membership_rows": self.membership_rows,
        }


# ------------------------------------------------------------------ Belief Relabel's targets
def remaining_class_targets(
    teacher_logits: torch.Tensor, forgotten: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One class per row, drawn from the teacher's belief over the classes that are not `forgotten` (Gumbel-max:
    `argmax(z + g)` with the forgotten classes' logits at -inf), as LoTUS draws its retain labels. Belief
    Relabel draws them once per run: a model that never saw a class files each of its samples under one other class.

    >>> z = torch.tensor([[9.0, 0.0, 5.0], [9.0, 5.0, 0.0]])
    >>> remaining_class_targets(z, torch.tensor([0]), torch.Generator().manual_seed(0)).tolist()
    [2, 1]
    """
    masked = teacher_logits.float().index_fill(-1, forgotten.to(teacher_logits.device), float("-inf"))
    return (masked + sample_gumbel(masked, generator)).argmax(dim=-1)


def entropies(logits: torch.Tensor) -> torch.Tensor:
    """The Shannon entropy (nats) of each row of `softmax(logits)`, in float64.

    >>> entropies(torch.tensor([[0.0, 0.0], [50.0, 0.0]])).tolist()[0]
    0.6931471805599453
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
    """The rows of the kept classes (labels not in `forgotten`) that `logits` get wrong: Belief Relabel's reference,
    the unseen samples a model cannot classify (docs/method.md).

    >>> unseen_errors(torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]), torch.tensor([0, 1, 2]), torch.tensor([2]))
    tensor([False,  True, False])
    """
    kept = ~torch.isin(labels, forgotten.to(labels.device))
    return kept & (logits.argmax(dim=-1) != labels)


class BeliefRelabelTrainer(StreamTrainer):
    """Forget whole classes with Belief Relabel (the forget set must hold whole classes, and not all of them).
    Takes the arguments of `UnlearningTrainer` (`StreamTrainer`'s), with a `BeliefRelabelConfig`."""

    config_class = BeliefRelabelConfig

    def __init__(self, model: torch.nn.Module, args: BeliefRelabelConfig | None = None, *more, **kwargs):
        super().__init__(model, args, *more, **kwargs)
        self.forgotten = forgotten_classes(self.forget_dataset, self.retain_dataset, model).to(self.args.device)
        self.member_threshold: float | None = None  # the entropy below which the student's outputs look trained on
        self.reference_member_rate: float | None = None  # what the forget set must reach
        self._membership_rows: dict[str, torch.Tensor] = {}
        self._membership_sets: tuple | None = None

    @property
    def paced_probes(self) -> bool:
        """Always: probes after steps, paced by cost, on a seeded subset (`probe_set`, `after_step`). None before an
        epoch: Belief Relabel has no temperature to set, and the original never stops."""
        return True

    def probe_units(self) -> int:
        """A probe's forward passes: the forget subset and both sides of the membership attack."""
        return len(self._probe_rows) + sum(len(rows) for rows in self._membership_sets or ())

    def prepare_targets(self) -> None:
        """From the original (the student before its first update): each forget sample's class, drawn once and
        alike on every process; the rows the membership attack is fitted on; and the share of the original's
        unseen errors that its own attack calls members."""
        forgotten, forget_rows = self.forgotten.cpu(), len(self.forget_dataset)
        stream_logits = self.stream.teacher_logits
        if stream_logits is None:
            stream_logits = self._predict(self.stream)[0]
        draws = torch.Generator().manual_seed(self.args.seed)
        self.stream.forget_targets = remaining_class_targets(stream_logits[:forget_rows], forgotten, draws)
        unseen_logits, unseen_labels = self._predict(self.unseen_dataset)
        kept = torch.nonzero(~torch.isin(unseen_labels, forgotten)).flatten()
        rows = self.args.membership_rows
        members = torch.arange(forget_rows, min(len(self.stream), forget_rows + rows))
        nonmembers = kept[torch.randperm(len(kept), generator=draws)[:rows]].sort().values
        self._set_membership_rows(members, nonmembers)
        threshold = membership_threshold(entropies(stream_logits[members]), entropies(unseen_logits[nonmembers]))
        errors = unseen_errors(unseen_logits, unseen_labels, forgotten)
        self.reference_member_rate = member_rate(entropies(unseen_logits[errors]), threshold)

    def _set_membership_rows(self, members: torch.Tensor, nonmembers: torch.Tensor) -> None:
        self._membership_rows = {"members": members, "nonmembers": nonmembers}
        if is_streamed(self.unseen_dataset):
            picked = set(nonmembers.tolist())
            unseen = ItemList([item for i, item in enumerate(self.unseen_dataset) if i in picked])
        else:
            unseen = Subset(self.unseen_dataset, nonmembers.tolist())
        self._membership_sets = (Subset(self.stream, members.tolist()), unseen)

    def probe(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """The forgotten classes are never predicted, and their samples look to a membership attack fitted on the
        student as much like training data as the unseen samples the original gets wrong: stop."""
        forget_accuracy = accuracy(logits, labels)
        members, nonmembers = (entropies(self._predict(rows)[0]) for rows in self._membership_sets)
        self.member_threshold = membership_threshold(members, nonmembers)
        rate = member_rate(entropies(logits), self.member_threshold)
        stop = round_accuracy(forget_accuracy) == 0 and rate >= self.reference_member_rate
        return {
            "forget_accuracy": forget_accuracy,
            "forget_member_rate": rate,
            "reference_member_rate": self.reference_member_rate,
            "stop": stop,
        }

    def targets(self, teacher_logits: torch.Tensor, is_forget: torch.Tensor, batch: dict) -> torch.Tensor:
        """Retain rows: LoTUS's Gumbel-max label from the original's belief over the remaining classes. Forget rows:
        the class drawn for them before training."""
        masked = teacher_logits.index_fill(-1, self.forgotten, float("-inf"))
        # LoTUS's targets at temperature 1: the same noise as LoTUS draws, forget rows included
        targets = lotus_targets(masked, is_forget, 1.0, self.args.prob_transform, self._noise)
        drawn = batch["forget_target"] >= 0
        targets[drawn] = torch.nn.functional.one_hot(batch["forget_target"][drawn], targets.shape[-1]).to(targets)
        return targets

    def constants(self) -> dict[str, torch.Tensor]:
        rows = {f"membership_{k}": v for k, v in self._membership_rows.items()}
        return {**super().constants(), "forget_targets": self.stream.forget_targets, **rows}

    def run_state(self) -> RunState:
        state = super().run_state()
        state.values.update(member_threshold=self.member_threshold, reference_member_rate=self.reference_member_rate)
        return state

    def restore(self, state: RunState) -> None:
        super().restore(state)
        self.member_threshold = state.values["member_threshold"]
        self.reference_member_rate = state.values["reference_member_rate"]
        self.stream.forget_targets = state.constants["forget_targets"]
        self._set_membership_rows(state.constants["membership_members"], state.constants["membership_nonmembers"])


def forgotten_classes(forget_dataset, retain_dataset, model) -> torch.Tensor:
    """The classes of a class request's forget set, checked: whole classes, and not all of them."""
    forgotten = torch.unique(_labels_of(forget_dataset))
    classes = getattr(getattr(model, "config", None), "num_labels", None)
    if classes is not None and len(forgotten) >= classes:
        raise ArgumentError(
            f"Belief Relabel files the forgotten classes' samples under the remaining ones, but the forget set holds "
            f"all {classes} classes: forget whole classes (`ForgetRequest.classes`), or unlearn samples with LoTUS "
            "(`method='lotus'`)."
        )
    retain_labels = getattr(retain_dataset, "labels", None)
    if isinstance(retain_labels, torch.Tensor):
        kept = torch.unique(retain_labels[torch.isin(retain_labels, forgotten)]).tolist()
        if kept:
            raise ArgumentError(
                f"Belief Relabel forgets whole classes, but the retain set still holds samples of the forgotten "
                f"class(es) {kept}: forget whole classes (`ForgetRequest.classes`), or unlearn samples with LoTUS "
                "(`method='lotus'`)."
            )
    return forgotten


def _labels_of(dataset) -> torch.Tensor:
    if isinstance(getattr(dataset, "labels", None), torch.Tensor):
        return dataset.labels
    return torch.as_tensor([int(dataset[i]["labels"]) for i in range(len(dataset))])
