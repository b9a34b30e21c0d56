"""`UnlearningTrainer`: LoTUS (Spartalis et al., CVPR 2025; docs/method.md) as a `transformers.Trainer`.

What LoTUS shares with lotus-hf's Belief Relabel (the training stream, the teacher's logits, the loss, the probes'
pacing, the run's state) is `StreamTrainer`'s. LoTUS's own part is here: before every epoch a probe measures the
student's accuracy on the forget set and sets the temperature from its gap to the original model's accuracy on
unseen data, or stops training (the paper's rule; lotus-hf's bound rule probes after steps too); `targets` turns
the teacher's logits into LoTUS's targets.
"""

from __future__ import annotations

import torch

from .config import StreamConfig, UnlearningConfig
from .evaluation import accuracy
from .losses import accuracy_gap, lotus_targets, should_stop, temperature
from .runstate import RunState
from .stream_trainer import StreamTrainer


class UnlearningTrainer(StreamTrainer):
    """Unlearn a forget set from an image classifier with LoTUS.

    Args:
        model: the original model (any `AutoModelForImageClassification`); it becomes the student.
        args: an `UnlearningConfig`.
        forget_dataset: items `{"pixel_values", "labels"}` to forget (e.g. `UnlearningData.forget`).
        retain_dataset: the rest of the training data; `args.retain_fraction` of it is mixed in.
        unseen_dataset: held-out data of the same classes, never trained on; calibrates tau and the stop.
        teacher_model: the frozen original when `args.cache_teacher_logits=False` (default: a copy of `model`).
        The other arguments are `Trainer`'s.

    Example:
        >>> config = UnlearningConfig(output_dir="out", alpha=2.0)
        >>> trainer = UnlearningTrainer(model, config, forget_dataset=data.forget,
        ...                             retain_dataset=data.retain, unseen_dataset=data.unseen)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
    """

    config_class: type[StreamConfig] = UnlearningConfig
    # the temperature the targets use (set by each probe) and A_u, what the forget accuracy aims at (set before
    # training); `history` holds one entry per probe: epoch, accuracies, delta, tau, stop
    tau: float = 1.0
    unseen_accuracy: float | None = None

    def prepare_targets(self) -> None:
        """A_u, what the forget accuracy aims at: the original's accuracy on unseen data, 0 for classes."""
        self.unseen_accuracy = 0.0 if self.args.class_forgetting else accuracy(*self._predict(self.unseen_dataset))

    @property
    def paced_probes(self) -> bool:
        """Whether lotus-hf's bound stop rule runs (an extension of the paper; docs/method.md): probes after steps,
        paced by cost."""
        return self.args.stop_rule == "bound"

    def begin_epoch(self) -> bool:
        """The paper's probe before each epoch: set tau, or return True to stop. Under the bound rule only the
        first epoch's (tau needs a value before the first update); later ones probe after steps (`after_step`).
        Same on every process."""
        epoch = int(self.state.epoch or 0) + 1
        super().begin_epoch()
        if self.paced_probes and epoch > 1:
            return False
        done = self._recorded(epoch=epoch, probe=0)  # a run resumed inside this epoch
        return done if done is not None else self._probe(epoch, probe=0)

    def probe(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """LoTUS's probe: the student's forget accuracy against the original's unseen accuracy sets tau, or stops."""
        forget_accuracy = accuracy(logits, labels)
        delta = accuracy_gap(forget_accuracy, self.unseen_accuracy)
        self.tau = temperature(delta, self.args.alpha)
        stop = should_stop(delta, self.args.stop_margin, self.args.stop_rule)
        return {
            "forget_accuracy": forget_accuracy,
            "unseen_accuracy": self.unseen_accuracy,
            "delta": delta,
            "tau": self.tau,
            "stop": stop,
        }

    def targets(self, teacher_logits: torch.Tensor, is_forget: torch.Tensor, batch: dict) -> torch.Tensor:
        """Each row's target: LoTUS's soft, noisy forget targets and Gumbel-max retain labels."""
        return lotus_targets(teacher_logits, is_forget, self.tau, self.args.prob_transform, self._noise)

    def run_state(self) -> RunState:
        state = super().run_state()
        state.values.update(tau=self.tau, unseen_accuracy=self.unseen_accuracy)
        return state

    def restore(self, state: RunState) -> None:
        super().restore(state)
        self.tau, self.unseen_accuracy = state.values["tau"], state.values["unseen_accuracy"]
