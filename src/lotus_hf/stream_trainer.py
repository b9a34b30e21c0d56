"""`StreamTrainer`: what LoTUS (`UnlearningTrainer`) and lotus-hf's Belief Relabel (`BeliefRelabelTrainer`), two
sibling methods, share.

- The training stream: the forget set (is_forget=1) plus a seeded share of the retain set (is_forget=0), shuffled
  by Trainer's own sampler; the original's (teacher's) logits on it, cached once before the first update or from a
  live frozen teacher.
- The loss: a soft cross-entropy towards each row's target, which the method makes from the teacher's logits
  (`targets`). Ground-truth labels never enter it: they are used for accuracy only.
- Probes: the student's outputs on the forget set (`probe`), before an epoch or after a step when the run's cost
  can pay for one (`paced_probes`), each recorded in `history`; True stops training.
- The run's state (`RunState`), saved into every checkpoint and read back by `train(resume_from_checkpoint=...)`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from transformers import TrainerCallback

from . import _compat
from .base_trainer import UnlearningTrainerBase
from .config import StreamConfig
from .distributed import prepare_teacher
from .losses import soft_cross_entropy
from .runstate import RunState, resume_folder
from .stream import UnlearningStream, in_memory, seeded_rows


class StreamTrainer(UnlearningTrainerBase):
    """The base of LoTUS's and Belief Relabel's trainers (see the module's docstring).

    Args:
        model: the original model (any `AutoModelForImageClassification`); it becomes the student.
        args: the method's config (a `StreamConfig`).
        forget_dataset: items `{"pixel_values", "labels"}` to forget (e.g. `UnlearningData.forget`).
        retain_dataset: the rest of the training data; `args.retain_fraction` of it is mixed in.
        unseen_dataset: held-out data of the same classes, never trained on, that the probes calibrate on.
        teacher_model: the frozen original when `args.cache_teacher_logits=False` (default: a copy of `model`).
        The other arguments are `Trainer`'s.

    A method defines `targets` (each row's target from the teacher's logits) and `probe` (what a probe
    decides), and may define `prepare_targets` (what it fixes from the original before training), `paced_probes`
    and `begin_epoch`.
    """

    config_class: type[StreamConfig] = StreamConfig

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
        self.unseen_dataset = unseen_dataset
        super().__init__(
            model,
            self.config_class(output_dir="lotus-hf-output") if args is None else args,
            forget_dataset,
            retain_dataset,
            data_collator=data_collator,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self.teacher = None  # with cached teacher logits (the default) no teacher is kept
        if not self.args.cache_teacher_logits:
            teacher = teacher_model if teacher_model is not None else copy.deepcopy(self.model)
            self.teacher = prepare_teacher(teacher, self.accelerator)
            self.cost.meter.add(self.teacher)
        self._noise: torch.Generator | None = None  # the Gumbel noise of the targets, seeded per process
        # Sums of the per-row loss and row counts (forget sum, forget n, retain sum, retain n) since the last log,
        # and the forget and retain rows trained on so far.
        self._loss_sums = torch.zeros(4, device=self.args.device)
        self._seen = torch.zeros(2, dtype=torch.long, device=self.args.device)
        self.resumed_from: str | None = None  # the checkpoint `train` resumes from

    def build_stream(self, args: StreamConfig) -> UnlearningStream:
        # The retain subset S_r is drawn once per run, seeded, before anything else touches the RNG.
        self.forget_dataset, self.retain_dataset, indices = in_memory(
            self.forget_dataset, self.retain_dataset, self.unseen_dataset, args
        )
        return UnlearningStream(self.forget_dataset, self.retain_dataset, indices)

    @property
    def stream(self) -> UnlearningStream:
        """The training stream: forget items, then the retain subset, with cached teacher logits once set."""
        return self.train_dataset

    # ------------------------------------------------------------------------------ what a method defines
    def prepare_targets(self) -> None:
        """What the method fixes from the original before its first update (the student is still the original)."""

    def targets(self, teacher_logits: torch.Tensor, is_forget: torch.Tensor, batch: dict) -> torch.Tensor:
        """Each row's target distribution, from the teacher's logits."""
        raise NotImplementedError

    def probe(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """What a probe of the student's `logits` on the probe set decides: its measurements and `stop`."""
        raise NotImplementedError

    @property
    def paced_probes(self) -> bool:
        """Whether probes run after steps, paced by cost (`after_step`), on a seeded subset of the forget set."""
        return False

    def probe_units(self) -> int:
        """What one probe costs (`lotus_hf.cost`): a forward pass over its rows."""
        return len(self._probe_rows)

    # ------------------------------------------------------------------------------ before training
    def prepare(self) -> None:
        """Before the first update, while the student is still the original: the teacher's logits on the stream
        (when cached) and what the method fixes (`prepare_targets`). A resumed run reads its state back instead."""
        self._probe_rows = self.probe_set()
        if self.resumed_from is not None:
            self.restore(RunState.load(self.resumed_from, self.args.process_index))
            return
        if self.args.cache_teacher_logits:
            self.stream.teacher_logits = self._predict(self.stream)[0]
        self.prepare_targets()
        # Each process draws its own Gumbel noise, seeded: runs are reproducible.
        self._noise = torch.Generator(device=self.args.device).manual_seed(self.args.seed + self.args.process_index)
        if self.args.save_strategy != "no":  # what stays fixed for the whole run, written once for a resume
            RunState.save_constants(self.args.output_dir, self.constants(), self.is_world_process_zero())

    def probe_set(self):
        """What the probes read: the whole forget set, or when they are paced a seeded subset of `probe_samples`
        of it, the same for the whole run."""
        size = self.args.probe_samples if self.paced_probes else None
        return seeded_rows(self.forget_dataset, size, self.args.seed)

    # ------------------------------------------------------------------------------ the probes
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Logits and labels, no loss: the probes run through `Trainer.predict`, in full precision, since their
        decisions depend on rounded accuracies."""
        inputs = _compat.prepare_inputs(self, inputs)
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

    def after_step(self) -> bool:
        """Paced probes: after any step where one more keeps the probes within `probe_share` of the run's cost so
        far (`CostMeter.affords`); True stops training at once, with the weights this probe measured."""
        if not self.paced_probes:
            return False
        if not self.cost.meter.affords("probes", self.probe_units(), self.args.probe_share):
            return False
        epoch = max(1, math.ceil(self.state.epoch))  # the epoch this step belongs to (its last step: a whole number)
        # numbered from 1 inside the epoch: 0 is the probe before it
        return self._probe(epoch, probe=1 + sum(e["epoch"] == epoch and e["probe"] > 0 for e in self.history))

    def _recorded(self, epoch: int, probe: int) -> bool | None:
        """The decision of a probe this run already took (a resumed run), or None if it has not."""
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

    def samples_seen(self) -> dict[str, int]:
        """Forget and retain rows trained on so far, over all processes (call it on every process)."""
        forget, retain = self.accelerator.reduce(self._seen.clone(), reduction="sum").tolist()
        return {"forget": int(forget), "retain": int(retain)}

    # ------------------------------------------------------------------------------ the loss
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

    # ------------------------------------------------------------------------------ resuming
    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """`Trainer.train`. `resume_from_checkpoint` (a checkpoint folder, or True for the last one in
        `args.output_dir`) continues a run where its checkpoint left it, the method's state included (`RunState`):
        the weights end as those of a run that was never interrupted."""
        if resume_from_checkpoint:
            resume_from_checkpoint = resume_folder(self.args.output_dir, resume_from_checkpoint, type(self).__name__)
        self.resumed_from = resume_from_checkpoint or None
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint,
            trial=trial,
            ignore_keys_for_eval=ignore_keys_for_eval,
            **kwargs,
        )

    def constants(self) -> dict[str, torch.Tensor]:
        """What a run fixes before its first update and a resumed run reads back: the cached teacher logits."""
        logits = self.stream.teacher_logits
        return {} if logits is None else {"teacher_logits": logits}

    def run_state(self) -> RunState:
        """The run's state now: the probes so far, the cost, and this process's noise and counters."""
        values = {
            "history": self.history,
            "processes": self.accelerator.num_processes,
            "budgets_reached": {str(k): v for k, v in self.cost.reached.items()},
            "cost_parts": dict(self.cost.meter.parts),
        }
        tensors = {
            "noise": self._noise.get_state(),
            "loss_sums": self._loss_sums.cpu(),
            "seen": self._seen.cpu(),
            "epoch_rows": torch.tensor([self.epoch_rows]),
            "cost": torch.tensor([self.cost.meter.units]),
        }
        return RunState(values, tensors)

    def save_run_state(self, checkpoint) -> None:
        """Write `run_state()` into a checkpoint Trainer has just saved (every process calls it)."""
        self.run_state().save(checkpoint, self.args.process_index, self.accelerator, self.is_world_process_zero())

    def restore(self, state: RunState) -> None:
        """Continue from `state` (`RunState.load` of a checkpoint of this run)."""
        state.check_processes(self.accelerator.num_processes, self.resumed_from)
        self.history = state.values["history"]
        self._noise = torch.Generator(device=self.args.device)
        self._noise.set_state(state.tensors["noise"])
        self._loss_sums.copy_(state.tensors["loss_sums"])
        self._seen.copy_(state.tensors["seen"])
        self.epoch_rows = int(state.tensors["epoch_rows"])
        self.cost.resume(int(state.tensors["cost"]), state.values["budgets_reached"], state.values.get("cost_parts"))
        if "teacher_logits" in state.constants:
            self.stream.teacher_logits = state.constants["teacher_logits"]
