"""`UnlearningTrainer`: LoTUS (Spartalis et al., CVPR 2025; docs/method.md) as a `transformers.Trainer`.

The training stream is the forget set (is_forget=1) plus a seeded share of the retain set (is_forget=0),
shuffled by Trainer's own sampler. Before every epoch a probe measures the student's accuracy on the whole
forget set and sets the temperature from its gap to the original model's accuracy on unseen data, or stops
training. `compute_loss` turns the teacher's logits into LoTUS targets. Ground-truth labels never enter the
loss: they are used for accuracy only.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from . import _compat
from .cards import TAGS
from .config import StreamConfig, UnlearningConfig
from .cost import track_cost
from .distributed import StrategyMixin, prepare_teacher
from .evaluation import accuracy
from .hooks import RunHooks, stop_epoch, use_run_progress
from .losses import accuracy_gap, lotus_targets, should_stop, soft_cross_entropy, temperature
from .push import HubMixin
from .runstate import ResumableRun, RunState
from .stream import UnlearningStream, collate, in_memory, seeded_rows


class UnlearningTrainer(_compat.StopBeforeEpoch, ResumableRun, StrategyMixin, HubMixin, Trainer):
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
    _tag_names = TAGS

    def __init__(
        self,
        model: torch.nn.Module,
        args: StreamConfig | None = None,
        data_collator=None,
        forget_dataset=None,
        retain_dataset=None,
        unseen_dataset=None,
        eval_dataset=None,
        processing_class=None,
        compute_metrics=None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers=(None, None),
        teacher_model: torch.nn.Module | None = None,
    ):
        args = self.config_class(output_dir="lotus-hf-output") if args is None else args
        if not isinstance(args, self.config_class):
            raise TypeError(
                f"`args` must be an instance of `{self.config_class.__name__}`, got {type(args).__name__}."
            )
        # what a retraining would train on, for the run's cost as a share of one
        retain_size = len(retain_dataset) if hasattr(retain_dataset, "__len__") else None
        # The retain subset S_r is drawn once per run, seeded, before anything else touches the RNG.
        forget_dataset, retain_dataset, retain_indices = in_memory(
            forget_dataset, retain_dataset, unseen_dataset, args
        )
        self.forget_dataset, self.retain_dataset, self.unseen_dataset = (
            forget_dataset,
            retain_dataset,
            unseen_dataset,
        )
        super().__init__(
            model=model,
            args=_compat.without_unsupported_checkpointing(args, model),
            data_collator=data_collator or collate,
            train_dataset=UnlearningStream(forget_dataset, retain_dataset, retain_indices),
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self.cost = track_cost(self, retain_size)  # what the run costs, and its budget
        self.add_callback(RunHooks(self))
        use_run_progress(self)
        self.lay_out_model()
        self.model_accepts_loss_kwargs = False  # the loss is a per-row mean: Trainer scales it for accumulation
        self.teacher = None  # with cached teacher logits (the default) no teacher is kept
        if not self.args.cache_teacher_logits:
            teacher = teacher_model if teacher_model is not None else copy.deepcopy(self.model)
            self.teacher = prepare_teacher(teacher, self.accelerator)
            self.cost.meter.add(self.teacher)
        self._init_card(self.model)
        self.tau, self.unseen_accuracy = 1.0, None
        self.history: list[dict] = []  # one entry per probe: epoch, accuracies, delta, tau, stop
        self._noise: torch.Generator | None = None
        # Sums of the per-row loss and row counts (forget sum, forget n, retain sum, retain n) since the last log,
        # and the forget and retain rows trained on so far.
        self._loss_sums = torch.zeros(4, device=self.args.device)
        self._seen = torch.zeros(2, dtype=torch.long, device=self.args.device)
        self.resumed_from: str | None = None  # the checkpoint `train` resumes from

    @property
    def stream(self) -> UnlearningStream:
        """The training stream: forget items, then the retain subset, with cached teacher logits once set."""
        return self.train_dataset

    # ---------------------------------------------------------------------------------------- the probes
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Logits and labels, no loss: the probes run through `Trainer.predict`, in full precision, since their
        decisions depend on rounded accuracies."""
        inputs = self._prepare_inputs(inputs)
        # no_grad, not inference_mode: FSDP2 keeps the parameters a forward pass gathered, and ones gathered
        # under inference mode cannot take part in the next training step (torch 2.13).
        with torch.no_grad():
            logits = model(pixel_values=inputs["pixel_values"]).logits
        return None, logits.float(), inputs.get("labels")

    def _predict(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """`(logits, labels)` of the student (in eval mode) on all of `dataset`, every process computing a shard
        and receiving the whole; every row counts, whatever `dataloader_drop_last` says."""
        with _compat.overridden(self, dataloader_drop_last=False, compute_metrics=None):
            output = self.predict(dataset, metric_key_prefix="probe")
        logits, labels = (
            np.concatenate(x) if isinstance(x, list) else x for x in (output.predictions, output.label_ids)
        )
        return torch.from_numpy(logits), torch.from_numpy(labels)

    def prepare(self) -> None:
        """Before the first update, while the student is still the original f0: the unseen accuracy A_u and,
        when enabled, the teacher's logits on the stream. A resumed run reads its state back instead."""
        self._probe_rows = self.probe_set()
        if self.resumed_from is not None:
            self.restore(RunState.load(self.resumed_from, self.args.process_index))
            return
        self.unseen_accuracy = self.unseen_target()
        if self.args.cache_teacher_logits:
            self.stream.teacher_logits = self._predict(self.stream)[0]
        self.prepare_targets()
        # Each process draws its own Gumbel noise, seeded: runs are reproducible.
        self._noise = torch.Generator(device=self.args.device).manual_seed(self.args.seed + self.args.process_index)
        if self.args.save_strategy != "no":  # what stays fixed for the whole run, written once for a resume
            RunState.save_constants(self.args.output_dir, self.constants(), self.is_world_process_zero())

    def unseen_target(self) -> float:
        """A_u, what the forget accuracy aims at: the original's accuracy on unseen data, 0 for classes."""
        return 0.0 if self.args.class_forgetting else accuracy(*self._predict(self.unseen_dataset))

    def prepare_targets(self) -> None:
        """What a method fixes before training from the original's outputs (LoTUS: nothing)."""

    @property
    def bound_rule(self) -> bool:
        """Whether lotus-hf's bound stop rule runs (an extension of the paper; docs/method.md)."""
        return getattr(self.args, "stop_rule", "paper") == "bound"

    def probe_set(self):
        """What the probes read: the whole forget set (the paper), or under the bound rule a seeded subset of
        `probe_samples` of it, the same for the whole run."""
        size = getattr(self.args, "probe_samples", None) if self.bound_rule else None
        return seeded_rows(self.forget_dataset, size, self.args.seed)

    def begin_epoch(self) -> bool:
        """The paper's probe before each epoch: set tau, or return True to stop. Under the bound rule only the
        first epoch's (tau needs a value before the first update); later ones probe after steps (`after_step`).
        Same on every process."""
        epoch = int(self.state.epoch or 0) + 1
        self.start_epoch_rows()
        if self.bound_rule and epoch > 1:
            return False
        done = self._recorded(epoch=epoch, probe=0)  # a run resumed inside this epoch
        return done if done is not None else self._probe(epoch, probe=0)

    def after_step(self) -> bool:
        """The bound rule's probes: after any step where one more keeps the probes within `probe_share` of the
        run's cost so far (`CostMeter.affords`); True stops training at once, with the weights this probe
        measured."""
        if not self.bound_rule:
            return False
        if not self.cost.meter.affords("probes", self.probe_units(), self.args.probe_share):
            return False
        epoch = max(1, math.ceil(self.state.epoch))  # the epoch this step belongs to (its last step: a whole number)
        # numbered from 1 inside the epoch: 0 is the probe before it
        return self._probe(epoch, probe=1 + sum(e["epoch"] == epoch and e["probe"] > 0 for e in self.history))

    def probe_units(self) -> int:
        """What one probe costs (`lotus_hf.cost`): a forward pass over its rows."""
        return len(self._probe_rows)

    def _recorded(self, epoch: int, probe: int) -> bool | None:
        """The decision of a probe this run already took (a resumed run), or None if it has not. The tau it set is
        not taken back: the run's state holds the tau of its latest probe, which may come later in the epoch."""
        entry = next((e for e in self.history if e["epoch"] == epoch and e.get("probe", 0) == probe), None)
        return None if entry is None else entry["stop"]

    def _probe(self, epoch: int, probe: int) -> bool:
        with self.cost.meter.part("probes"):  # counted apart too, to say what share of the run probes cost
            measured = self.probe(*self._predict(self._probe_rows))
        entry = {
            "epoch": epoch,
            "probe": probe,
            "step": self.state.global_step,
            **measured,
            "cost": self.cost.meter.total(),
        }
        self.history.append(entry)
        self.log({k: float(v) for k, v in entry.items() if k not in ("epoch", "probe", "step", "stop")})
        return entry["stop"]

    def probe(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """LoTUS's probe: the student's forget accuracy against the original's unseen accuracy sets tau, or stops."""
        forget_accuracy = accuracy(logits, labels)
        delta = accuracy_gap(forget_accuracy, self.unseen_accuracy)
        self.tau = temperature(delta, self.args.alpha)
        stop = should_stop(delta, self.args.stop_margin, getattr(self.args, "stop_rule", "paper"))
        return {
            "forget_accuracy": forget_accuracy,
            "unseen_accuracy": self.unseen_accuracy,
            "delta": delta,
            "tau": self.tau,
            "stop": stop,
        }

    @property
    def stopped_at_epoch(self) -> int | None:
        """The epoch whose probe stopped training (1-based), or None if all epochs ran."""
        return stop_epoch(self.history)

    def samples_seen(self) -> dict[str, int]:
        """Forget and retain rows trained on so far, over all processes (call it on every process)."""
        forget, retain = self.accelerator.reduce(self._seen.clone(), reduction="sum").tolist()
        return {"forget": int(forget), "retain": int(retain)}

    # ------------------------------------------------------------------------------------------ the loss
    def targets(self, teacher_logits: torch.Tensor, is_forget: torch.Tensor, batch: dict) -> torch.Tensor:
        """Each row's target: LoTUS's soft, noisy forget targets and Gumbel-max retain labels."""
        return lotus_targets(teacher_logits, is_forget, self.tau, self.args.prob_transform, self._noise)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        batch = {k: inputs.pop(k) for k in ("is_forget", "labels", "teacher_logits", "forget_target") if k in inputs}
        teacher_logits = batch.get("teacher_logits")  # ground-truth labels are for accuracy only
        if teacher_logits is None:
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits
        outputs = model(**inputs)
        per_row = soft_cross_entropy(outputs.logits, self.targets(teacher_logits, batch["is_forget"], batch))
        real = self.real_rows(len(per_row))  # not accelerate's padding of an epoch's last batch
        forget, retain = batch["is_forget"].bool() & real, ~batch["is_forget"].bool() & real
        self._seen += torch.stack([forget.sum(), retain.sum()]).to(self._seen)
        with torch.no_grad():
            sums = [per_row[forget].sum(), forget.sum(), per_row[retain].sum(), retain.sum()]
            self._loss_sums += torch.stack(sums).to(self._loss_sums)
        loss = (per_row * real).sum() / real.sum().clamp_min(1)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log, reached on every process at the same step
            sums = self.accelerator.reduce(self._loss_sums, reduction="sum").tolist()
            logs["forget_loss"] = sums[0] / sums[1] if sums[1] else float("nan")
            logs["retain_loss"] = sums[2] / sums[3] if sums[3] else float("nan")
            self._loss_sums.zero_()
        super().log(logs, start_time)
