"""`UnlearningTrainer`: LoTUS (Spartalis et al., CVPR 2025; docs/method.md) as a `transformers.Trainer`.

The training stream is the forget set (is_forget=1) plus a seeded share of the retain set (is_forget=0),
shuffled by Trainer's own sampler. Before every epoch a probe measures the student's accuracy on the whole
forget set and sets the temperature from its gap to the original model's accuracy on unseen data, or stops
training. `compute_loss` turns the teacher's logits into LoTUS targets. Ground-truth labels never enter the
loss: they are used for accuracy only.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Subset
from transformers import Trainer, TrainerCallback

from . import _compat
from .cards import TAGS
from .config import UnlearningConfig
from .data import ItemList, UnlearningStream, collate, is_streamed, reservoir_sample, seeded_subset
from .distributed import StrategyMixin, prepare_teacher, real_rows
from .evaluation import accuracy
from .hub import HubMixin
from .losses import (
    accuracy_gap,
    entropies,
    lotus_targets,
    member_rate,
    membership_threshold,
    remaining_class_targets,
    round_accuracy,
    should_stop,
    soft_cross_entropy,
    temperature,
    unseen_errors,
)

# class mode: rows of each side an entropy membership attack is fitted on, before every epoch
MEMBERSHIP_ROWS = 1000


class RunHooks(TrainerCallback):
    """Calls the trainer's `prepare()` when training starts (after accelerate has prepared the model) and its
    `begin_epoch()` before each epoch, stopping training when that returns True. The baselines use it too."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.prepare()

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.trainer.begin_epoch():
            control.should_training_stop = True


class UnlearningTrainer(_compat.StopBeforeEpoch, StrategyMixin, HubMixin, Trainer):
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

    _tag_names = TAGS

    def __init__(
        self,
        model: torch.nn.Module,
        args: UnlearningConfig | None = None,
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
        args = UnlearningConfig(output_dir="lotus-hf-output") if args is None else args
        if not isinstance(args, UnlearningConfig):
            raise TypeError(f"`args` must be an `UnlearningConfig`, got {type(args).__name__}.")
        if is_streamed(forget_dataset):  # a forget set is small: it is read once and held
            forget_dataset = ItemList(list(forget_dataset))
        for name, dataset in (("forget_dataset", forget_dataset), ("unseen_dataset", unseen_dataset)):
            if dataset is None or (not is_streamed(dataset) and len(dataset) == 0):
                raise ValueError(f"`{name}` must be a non-empty data set of `pixel_values`/`labels` items.")
        if retain_dataset is None:
            raise ValueError("`retain_dataset` must be given: the retain subset keeps the model's behaviour.")
        # The retain subset S_r is drawn once per run, seeded, before anything else touches the RNG.
        if is_streamed(retain_dataset):
            retain_dataset = ItemList(
                reservoir_sample(retain_dataset, _reservoir_size(retain_dataset, args), args.seed)
            )
            retain_indices = torch.arange(len(retain_dataset))
        else:
            retain_indices = seeded_subset(len(retain_dataset), args.retain_fraction, args.seed)
        self.forget_dataset = forget_dataset
        self.retain_dataset = retain_dataset
        self.unseen_dataset = unseen_dataset
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
        self.add_callback(RunHooks(self))
        self.lay_out_model()
        # The loss is a per-row mean: Trainer scales it for gradient accumulation.
        self.model_accepts_loss_kwargs = False
        self.teacher = None  # with cached teacher logits (the default) no teacher is kept
        if not self.args.cache_teacher_logits:
            teacher = teacher_model if teacher_model is not None else copy.deepcopy(self.model)
            self.teacher = prepare_teacher(teacher, self.accelerator)
        self._init_card(self.model)
        self.tau = 1.0
        self.unseen_accuracy: float | None = None
        self.history: list[dict] = []  # one entry per probe: epoch, accuracies, delta, tau, stop
        self._noise: torch.Generator | None = None
        # Sums of the per-row loss and row counts (forget sum, forget n, retain sum, retain n) since the last log,
        # and the forget and retain rows trained on so far.
        self._loss_sums = torch.zeros(4, device=self.args.device)
        self._seen = torch.zeros(2, dtype=torch.long, device=self.args.device)
        self._epoch_rows = 0  # rows this process has trained on in the current epoch, padding included
        self._resume_from: str | None = None  # the checkpoint `train` resumes from
        # lotus-hf's class mode: the forgotten classes, masked out of every target; the entropy below which the
        # original's outputs look like training data, and the share of its unseen errors below it (what to reach)
        remaining = self.args.class_forgetting and self.args.class_mode == "remaining"
        self._forgotten = _forgotten_classes(forget_dataset, retain_dataset, model) if remaining else None
        if self._forgotten is not None:
            self._forgotten = self._forgotten.to(self.args.device)
        self.member_threshold: float | None = None
        self.reference_member_rate: float | None = None
        self._membership_sets: tuple | None = None
        self._membership_rows: dict[str, torch.Tensor] = {}

    def _set_signature_columns_if_needed(self):
        # Keep our columns ourselves instead of asking users for `remove_unused_columns=False`.
        if self._signature_columns is None:
            self._signature_columns = [
                "pixel_values",
                "labels",
                "is_forget",
                "teacher_logits",
                "forget_target",
            ]

    @property
    def stream(self) -> UnlearningStream:
        """The training stream: forget items, then the retain subset, with cached teacher logits once set."""
        return self.train_dataset

    # ---------------------------------------------------------------------------------------- the probes
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Logits and labels, no loss: LoTUS's loss needs the targets of the training stream, which
        evaluation batches do not carry. `Trainer.predict` (the probes) and `Trainer.evaluate` use it.
        Full precision, as the decisions of the probes depend on rounded accuracies."""
        inputs = self._prepare_inputs(inputs)
        # no_grad, not inference_mode: FSDP2 keeps the parameters a forward pass gathered, and ones gathered
        # under inference mode cannot take part in the next training step (torch 2.13).
        with torch.no_grad():
            logits = model(pixel_values=inputs["pixel_values"]).logits
        return None, logits.float(), inputs.get("labels")

    def _predict(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """`(logits, labels)` of the student on all of `dataset` (in eval mode), every process computing a
        shard and all of them receiving the whole: `Trainer.predict`, gathered with `gather_for_metrics`. Every
        row counts, whatever `dataloader_drop_last` says, and the user's `compute_metrics` is not run."""
        drop_last, compute_metrics = self.args.dataloader_drop_last, self.compute_metrics
        self.args.dataloader_drop_last, self.compute_metrics = False, None
        if self.accelerator.num_processes == 1:
            # Nothing to gather. accelerate's `gather_for_metrics` would still trim a last batch by a remainder it
            # keeps in one process-wide `GradientState`, which a trainer in another thread (the Space runs its
            # sessions in threads) can overwrite meanwhile. `evaluation_loop` puts it back when it is done.
            self.gather_function = _identity
        try:
            output = self.predict(dataset, metric_key_prefix="probe")
        except ValueError as error:
            if "does not contain any data" in str(
                error
            ):  # accelerate's words for a stream that yields nothing
                raise ValueError(
                    "`unseen_dataset` yielded no items: pass held-out data of the same classes."
                ) from None
            raise
        finally:
            self.args.dataloader_drop_last, self.compute_metrics = drop_last, compute_metrics
            self.gather_function = self.accelerator.gather_for_metrics
        logits, labels = (
            np.concatenate(x) if isinstance(x, list) else x for x in (output.predictions, output.label_ids)
        )
        if not is_streamed(dataset) and len(logits) != len(dataset):
            raise RuntimeError(
                f"a probe saw {len(logits)} rows of {len(dataset)}"
            )  # a bug of ours, not an input
        return torch.from_numpy(logits), torch.from_numpy(labels)

    def prepare(self) -> None:
        """Before the first update, while the student is still the original f0: the unseen accuracy A_u and,
        when enabled, the teacher's logits on the stream. A resumed run reads them, and the rest of LoTUS's
        state, from its checkpoint instead."""
        if self._resume_from is not None:
            self._load_state(self._resume_from)
            return
        if self.args.class_forgetting:
            self.unseen_accuracy = 0.0
        else:
            self.unseen_accuracy = accuracy(*self._predict(self.unseen_dataset))
        stream_logits = None
        if self.args.cache_teacher_logits:
            self.stream.teacher_logits = stream_logits = self._predict(self.stream)[0]
        if self._forgotten is not None:
            self._prepare_class_mode(stream_logits)
        # Each process draws its own Gumbel noise, seeded: runs are reproducible.
        self._noise = torch.Generator(device=self.args.device).manual_seed(
            self.args.seed + self.args.process_index
        )

    def _prepare_class_mode(self, stream_logits: torch.Tensor | None) -> None:
        """lotus-hf's class mode, from the original (the student before its first update): each forget sample's
        class, drawn once and alike on every process; the rows a membership attack is fitted on each epoch (up to
        `MEMBERSHIP_ROWS` of the stream's retain rows as members, of the kept classes' unseen rows as
        non-members); and what to reach: the share of the original's unseen errors that its own attack calls
        members."""
        forgotten, forget_rows = self._forgotten.cpu(), len(self.forget_dataset)
        if stream_logits is None:
            stream_logits = self._predict(self.stream)[0]
        draws = torch.Generator().manual_seed(self.args.seed)
        self.stream.forget_targets = remaining_class_targets(stream_logits[:forget_rows], forgotten, draws)
        unseen_logits, unseen_labels = self._predict(self.unseen_dataset)
        kept = torch.nonzero(~torch.isin(unseen_labels, forgotten)).flatten()
        members = torch.arange(forget_rows, min(len(self.stream), forget_rows + MEMBERSHIP_ROWS))
        nonmembers = kept[torch.randperm(len(kept), generator=draws)[:MEMBERSHIP_ROWS]].sort().values
        self._set_membership_rows(members, nonmembers)
        threshold = membership_threshold(
            entropies(stream_logits[members]), entropies(unseen_logits[nonmembers])
        )
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

    def _forget_member_rate(self, forget_logits: torch.Tensor) -> float:
        """The share of the forget set that an entropy attack fitted on the student now calls members."""
        members, nonmembers = (entropies(self._predict(rows)[0]) for rows in self._membership_sets)
        self.member_threshold = membership_threshold(members, nonmembers)
        return member_rate(entropies(forget_logits), self.member_threshold)

    def begin_epoch(self) -> bool:
        """Probe the student on the whole forget set; set tau, or return True to stop. Same on every process."""
        epoch = int(self.state.epoch or 0)  # the epochs done: this epoch's index
        if epoch < len(self.history):  # a run resumed inside an epoch whose probe already ran
            self.tau = self.history[epoch]["tau"]
            return self.history[epoch]["stop"]
        logits, labels = self._predict(self.forget_dataset)
        forget_accuracy = accuracy(logits, labels)
        delta = accuracy_gap(forget_accuracy, self.unseen_accuracy)
        self.tau = temperature(delta, self.args.alpha)
        entry = {
            "epoch": len(self.history) + 1,
            "forget_accuracy": forget_accuracy,
            "unseen_accuracy": self.unseen_accuracy,
            "delta": delta,
            "tau": self.tau,
        }
        if self._forgotten is None:
            entry["stop"] = should_stop(delta, self.args.stop_margin)
        else:  # class mode: the forgotten classes are never predicted, and their samples look to a membership
            # attack as much like training data as the unseen samples the original gets wrong
            entry["forget_member_rate"] = self._forget_member_rate(logits)
            entry["reference_member_rate"] = self.reference_member_rate
            entry["stop"] = (
                round_accuracy(forget_accuracy) == 0
                and entry["forget_member_rate"] >= self.reference_member_rate
            )
        stop = entry["stop"]
        self.history.append(entry)
        self.log({k: float(v) for k, v in entry.items() if k not in ("epoch", "stop")})
        self._epoch_rows = 0
        return stop

    # ------------------------------------------------------------------------------------- checkpoints
    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None,
              **kwargs):  # fmt: skip
        """`Trainer.train`. `resume_from_checkpoint` (a checkpoint folder, or True for the last complete one in
        `args.output_dir`) continues a run where its checkpoint left it, LoTUS's state included (probe history,
        temperature, unseen accuracy, cached teacher logits, Gumbel noise): the weights end as those of a run
        that was never interrupted."""
        if resume_from_checkpoint:
            folder = self.args.output_dir if resume_from_checkpoint is True else resume_from_checkpoint
            resume_from_checkpoint = last_checkpoint(folder) if resume_from_checkpoint is True else folder
            if not (Path(resume_from_checkpoint) / STATE_FILE).is_file():
                raise ValueError(
                    f"`resume_from_checkpoint` {str(resume_from_checkpoint)!r} holds no {STATE_FILE}: pass a "
                    "checkpoint an `UnlearningTrainer` wrote (`save_strategy`, `save_steps`)."
                )
        self._resume_from = resume_from_checkpoint or None
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial,
                             ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)  # fmt: skip

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        # Trainer saves these only into checkpoints, before their trainer_state.json and before it rotates old
        # ones: LoTUS's state goes with them, in safetensors and JSON (no pickle).
        super()._save_optimizer_and_scheduler(output_dir)
        folder, rank = Path(output_dir), self.args.process_index
        state = {"noise": self._noise.get_state(), "loss_sums": self._loss_sums.cpu(), "seen": self._seen.cpu(),
                 "epoch_rows": torch.tensor([self._epoch_rows])}  # fmt: skip
        if self.stream.forget_targets is not None:
            state["forget_targets"] = self.stream.forget_targets.contiguous()
            state.update({f"membership_{k}": v.contiguous() for k, v in self._membership_rows.items()})
        save_file(state, folder / f"lotus_state_rank{rank}.safetensors")
        if self.stream.teacher_logits is not None and self.is_world_process_zero():
            save_file(
                {"teacher_logits": self.stream.teacher_logits.contiguous()},
                folder / "teacher_logits.safetensors",
            )
        self.accelerator.wait_for_everyone()
        if self.is_world_process_zero():  # last: a checkpoint with this file is complete
            record = {"history": self.history, "tau": self.tau, "unseen_accuracy": self.unseen_accuracy,
                      "member_threshold": self.member_threshold,
                      "reference_member_rate": self.reference_member_rate,
                      "processes": self.accelerator.num_processes}  # fmt: skip
            (folder / STATE_FILE).write_text(json.dumps(record, indent=2) + "\n")

    def _load_state(self, checkpoint: str) -> None:
        folder = Path(checkpoint)
        record = json.loads((folder / STATE_FILE).read_text())
        if record["processes"] != self.accelerator.num_processes:
            raise ValueError(
                f"the checkpoint {str(folder)!r} was written by {record['processes']} processes: resume it with as "
                f"many (this run has {self.accelerator.num_processes})."
            )
        self.history, self.tau, self.unseen_accuracy = (
            record["history"],
            record["tau"],
            record["unseen_accuracy"],
        )
        self.member_threshold = record.get("member_threshold")
        self.reference_member_rate = record.get("reference_member_rate")
        state = load_file(folder / f"lotus_state_rank{self.args.process_index}.safetensors")
        self._noise = torch.Generator(device=self.args.device)
        self._noise.set_state(state["noise"])
        self._loss_sums.copy_(state["loss_sums"])
        self._seen.copy_(state["seen"])
        self._epoch_rows = int(state["epoch_rows"])
        if "forget_targets" in state:
            self.stream.forget_targets = state["forget_targets"]
            self._set_membership_rows(state["membership_members"], state["membership_nonmembers"])
        if self.args.cache_teacher_logits:
            self.stream.teacher_logits = load_file(folder / "teacher_logits.safetensors")["teacher_logits"]

    @property
    def stopped_at_epoch(self) -> int | None:
        """The epoch whose probe stopped training (1-based), or None if all epochs ran."""
        return next((e["epoch"] for e in self.history if e["stop"]), None)

    def samples_seen(self) -> dict[str, int]:
        """Forget and retain rows trained on so far, over all processes (call it on every process)."""
        forget, retain = self.accelerator.reduce(self._seen.clone(), reduction="sum").tolist()
        return {"forget": int(forget), "retain": int(retain)}

    # ------------------------------------------------------------------------------------------ the loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        is_forget = inputs.pop("is_forget")
        inputs.pop("labels", None)  # ground truth is for accuracy only
        forget_target = inputs.pop("forget_target", None)
        teacher_logits = inputs.pop("teacher_logits", None)
        if teacher_logits is None:
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits
        outputs = model(**inputs)
        if self._forgotten is not None:  # class mode: the teacher's belief over the remaining classes only
            teacher_logits = teacher_logits.index_fill(-1, self._forgotten, float("-inf"))
        targets = lotus_targets(teacher_logits, is_forget, self.tau, self.args.prob_transform, self._noise)
        if forget_target is not None:  # class mode: each forget sample's class, drawn once per run
            drawn = forget_target >= 0
            targets[drawn] = torch.nn.functional.one_hot(forget_target[drawn], targets.shape[-1]).to(targets)
        per_row = soft_cross_entropy(outputs.logits, targets)
        real = self._real_rows(len(per_row))
        forget, retain = is_forget.bool() & real, ~is_forget.bool() & real
        self._seen += torch.stack([forget.sum(), retain.sum()]).to(self._seen)
        with torch.no_grad():
            sums = [per_row[forget].sum(), forget.sum(), per_row[retain].sum(), retain.sum()]
            self._loss_sums += torch.stack(sums).to(self._loss_sums)
        loss = (per_row * real).sum() / real.sum().clamp_min(1)
        return (loss, outputs) if return_outputs else loss

    def _real_rows(self, rows: int) -> torch.Tensor:
        """The rows of this batch that are not accelerate's padding of an epoch's last batch."""
        accelerator, world = self.accelerator, self.accelerator.num_processes
        if world == 1 or not accelerator.even_batches or accelerator.split_batches:
            mask = torch.ones(rows, dtype=torch.bool)
        else:
            mask = real_rows(len(self.stream), self.args.per_device_train_batch_size, world,
                             accelerator.process_index, self._epoch_rows, rows)  # fmt: skip
        self._epoch_rows += rows
        return mask.to(self.args.device)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log, reached on every process at the same step
            sums = self.accelerator.reduce(self._loss_sums, reduction="sum").tolist()
            logs["forget_loss"] = sums[0] / sums[1] if sums[1] else float("nan")
            logs["retain_loss"] = sums[2] / sums[3] if sums[3] else float("nan")
            self._loss_sums.zero_()
        super().log(logs, start_time)


STATE_FILE = "lotus_state.json"


def last_checkpoint(folder: str | Path) -> str:
    """The last complete checkpoint of an `UnlearningTrainer` run in `folder` (the highest step whose
    checkpoint holds both Trainer's trainer_state.json and LoTUS's state)."""
    steps = []
    for path in Path(folder).glob("checkpoint-*"):
        if (
            path.name.split("-")[-1].isdigit()
            and (path / STATE_FILE).is_file()
            and (path / "trainer_state.json").is_file()
        ):
            steps.append((int(path.name.split("-")[-1]), path))
    if not steps:
        raise ValueError(f"`output_dir` {str(folder)!r} holds no complete checkpoint to resume from.")
    return str(max(steps)[1])


def _forgotten_classes(forget_dataset, retain_dataset, model) -> torch.Tensor:
    """The classes of a class request's forget set, checked: whole classes, and not all of them."""
    forgotten = torch.unique(_labels_of(forget_dataset))
    classes = getattr(getattr(model, "config", None), "num_labels", None)
    if classes is not None and len(forgotten) >= classes:
        raise ValueError(
            f"`class_mode='remaining'` files the forgotten classes' samples under the remaining ones, but the forget "
            f"set holds all {classes} classes: forget whole classes (`ForgetRequest.classes`), or set "
            "`class_forgetting=False` for samples (or `class_mode='paper'`)."
        )
    retain_labels = getattr(retain_dataset, "labels", None)
    if isinstance(retain_labels, torch.Tensor):
        kept = torch.unique(retain_labels[torch.isin(retain_labels, forgotten)]).tolist()
        if kept:
            raise ValueError(
                f"`class_forgetting` is on but the retain set still holds samples of the forgotten class(es) {kept}: "
                "forget whole classes (`ForgetRequest.classes`), or set `class_forgetting=False` for samples."
            )
    return forgotten


def _labels_of(dataset) -> torch.Tensor:
    if isinstance(getattr(dataset, "labels", None), torch.Tensor):
        return dataset.labels
    return torch.as_tensor([int(dataset[i]["labels"]) for i in range(len(dataset))])


def _identity(tensor):
    return tensor


def _reservoir_size(retain, args: UnlearningConfig) -> int:
    if args.retain_samples is not None:
        return args.retain_samples
    try:
        return int(args.retain_fraction * len(retain))
    except TypeError:
        raise ValueError(
            "the streamed `retain_dataset` has no length: set `retain_samples` (how many retain samples to draw)."
        ) from None
