"""`UnlearningTrainer`: LoTUS as a `transformers.Trainer` subclass.

The stream is the forget set (is_forget=1) plus a seeded share of the retain set (is_forget=0), shuffled by
Trainer's own sampler. Before every epoch a callback measures the student's forget accuracy, sets the
temperature from its gap to the original model's unseen accuracy, or stops training. `compute_loss` turns
the teacher's logits into LoTUS targets. Ground-truth labels never enter the loss.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import platform
from pathlib import Path
from string import Template

import torch
from transformers import Trainer, TrainerCallback
from transformers.utils import logging

from .config import UnlearningConfig
from .data import FASHION_MNIST_HUB_ID, FASHION_MNIST_IDS, ItemList, collate, is_streamed, reservoir_sample
from .evaluation import accuracy, predict_logits
from .losses import accuracy_gap, lotus_targets, should_stop, soft_cross_entropy, temperature

logger = logging.get_logger(__name__)
_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
PROBE_SECTION = """Per-epoch probe (forget accuracy of the student, unseen accuracy of the original, their rounded gap,
the temperature, and the decision):

| epoch | forget acc | unseen acc | delta | tau | decision |
|---|---|---|---|---|---|
{epochs}

"""
LOTUS_CITATION = """@inproceedings{spartalis2025lotus,
  title     = {LoTUS: Large-Scale Machine Unlearning with a Taste of Uncertainty},
  author    = {Spartalis, Christoforos N. and Semertzidis, Theodoros and Gavves, Efstratios and Daras, Petros},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2025},
  note      = {arXiv:2503.18314}
}"""


def prepare_teacher(teacher: torch.nn.Module, accelerator) -> torch.nn.Module:
    """Place the frozen teacher for the run's strategy, as TRL prepares its reference model.

    - DeepSpeed: its own inference engine; ZeRO-3 shards it like the student, other stages keep it whole.
    - FSDP (1 or 2): wrapped with the run's FSDP plugin, so each process holds a shard; forward only.
    - DDP, one process: moved to the device, unwrapped (it never takes a gradient, so it needs no DDP).
    Every process then calls it once per step, which sharded strategies need.
    """
    from accelerate.utils import DistributedType

    teacher.requires_grad_(False)
    teacher.eval()
    state = accelerator.state
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        import deepspeed

        config = copy.deepcopy(state.deepspeed_plugin.deepspeed_config)
        stage = config.get("zero_optimization", {}).get("stage", 0)
        config = {
            "train_micro_batch_size_per_gpu": 1,  # unused: the engine only runs forward passes
            "zero_optimization": {"stage": 3} if stage == 3 else {"stage": 0},
            **{key: config[key] for key in ("bf16", "fp16") if key in config},
        }
        engine, *_ = deepspeed.initialize(model=teacher, config=config)
        engine.eval()
        return engine
    if accelerator.distributed_type == DistributedType.FSDP:
        if accelerator.is_fsdp2:
            from accelerate.utils.fsdp_utils import fsdp2_prepare_model

            ram_efficient = state.fsdp_plugin.cpu_ram_efficient_loading
            teacher = fsdp2_prepare_model(accelerator, fsdp2_compatible(teacher, ram_efficient))
        else:
            from torch.distributed.fsdp import FullyShardedDataParallel

            plugin = state.fsdp_plugin
            plugin.set_auto_wrap_policy(teacher)
            teacher = FullyShardedDataParallel(
                teacher,
                sharding_strategy=plugin.sharding_strategy,
                cpu_offload=plugin.cpu_offload,
                auto_wrap_policy=plugin.auto_wrap_policy,
                mixed_precision=plugin.mixed_precision_policy,
                device_id=accelerator.device,
            )
        teacher.eval()
        return teacher
    return teacher.to(accelerator.device)


def honour_fsdp_on_cpu(accelerator, fsdp_plugin_args: dict | None) -> bool:
    """Turn an FSDP2 request into FSDP2 sharding on CPU processes; True when it did.

    accelerate 1.15 enables FSDP only on accelerators: with CPU processes (gloo) it drops an FSDP config and
    runs plain data parallelism. torch 2.13's FSDP2 (`fully_shard`) shards over gloo on CPU, so a request made
    through `accelerate launch` (its FSDP environment) or `fsdp`/`fsdp_config` is honoured here. FSDP1 on CPU
    is left to accelerate's fallback (it needs a device id).
    """
    import os

    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    asked = fsdp_plugin_args is not None or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if not asked or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin(**(fsdp_plugin_args or {}))
    if plugin.fsdp_version != 2:
        logger.warning("FSDP1 does not run on CPU processes: training with data parallelism (DDP) instead.")
        return False
    # AcceleratorState copies PartialState's fields whenever it is built again: set the type in both.
    PartialState().distributed_type = accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    return True


def fsdp2_compatible(model: torch.nn.Module, cpu_ram_efficient_loading: bool = False) -> torch.nn.Module:
    """Make `model` ready for accelerate 1.15's FSDP2 preparation, in place, or say which setting cannot work.

    - `fsdp2_prepare_model` calls `get_input_embeddings()`, which transformers 5.24 raises on for vision
      models such as ResNet (`NotImplementedError`); such a model answers None, as one without embeddings.
    - Its RAM-efficient loading takes every state-dict entry for a sharded parameter, so it fails on a
      model with buffers (BatchNorm statistics): that is a clear error here instead of a deep traceback.
    """
    saved = model.state_dict().keys() if cpu_ram_efficient_loading else ()
    buffer = next((name for name, _ in model.named_buffers() if name in saved), None)
    if buffer is not None:
        raise ValueError(
            f"FSDP2's `fsdp_cpu_ram_efficient_loading` cannot load {type(model).__name__}: it has buffers "
            f"({buffer}, ...) and accelerate 1.15 expects only parameters. Set "
            "`fsdp_cpu_ram_efficient_loading: false` in the accelerate config."
        )
    try:
        model.get_input_embeddings()
    except NotImplementedError:
        model.get_input_embeddings = lambda: None
    except AttributeError:  # not a transformers model: accelerate finds no embeddings either
        pass
    return model


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Put a model with `Conv2d` layers in the channels-last memory format, in place; others are untouched.

    Convolutions run about 20% faster this way on CPU (oneDNN) and with mixed precision on GPU. Values are
    unchanged, and `save_pretrained` writes the same safetensors either way."""
    if any(isinstance(module, torch.nn.Conv2d) for module in model.modules()):
        model.to(memory_format=torch.channels_last)
    return model


class UnlearningStream(torch.utils.data.Dataset):
    """Forget items (is_forget=1) followed by the chosen retain items (is_forget=0), with cached teacher
    logits per row once set (LoTUS's teacher; Bad Teacher's and SCRUB's targets in lotus_hf.baselines)."""

    def __init__(self, forget, retain, retain_indices: torch.Tensor):
        self.forget, self.retain, self.retain_indices = forget, retain, retain_indices
        self.teacher_logits: torch.Tensor | None = None
        self._is_forget = (torch.tensor(0), torch.tensor(1))

    def __len__(self) -> int:
        return len(self.forget) + len(self.retain_indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        in_forget = index < len(self.forget)
        source = (
            self.forget[index]
            if in_forget
            else self.retain[int(self.retain_indices[index - len(self.forget)])]
        )
        item = {
            "pixel_values": source["pixel_values"],
            "labels": source["labels"],
            "is_forget": self._is_forget[in_forget],
        }
        if self.teacher_logits is not None:
            item["teacher_logits"] = self.teacher_logits[index]
        return item

    def pixel_items(self):
        """Items without `is_forget`/`teacher_logits`, in stream order (for the teacher pass)."""
        return _Pixels(self)


class _Pixels(torch.utils.data.Dataset):
    def __init__(self, stream: UnlearningStream):
        self.stream = stream

    def __len__(self) -> int:
        return len(self.stream)

    def __getitem__(self, index: int):
        item = self.stream[index]
        return {"pixel_values": item["pixel_values"], "labels": item["labels"]}


class _LotusCallback(TrainerCallback):
    """Runs the LoTUS probe before each epoch: sets `tau`, or stops training."""

    def __init__(self, trainer: UnlearningTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._prepare_unlearning()

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.trainer._begin_epoch():
            control.should_training_stop = True


class CardMixin:
    """Saving and model cards, shared by `UnlearningTrainer` and the baselines' `BaselineTrainer`.

    Needs `base_model`, `forget_fingerprint`, `report`, `dataset_name`, `history` and `_previous_lineage`."""

    def unlearning_lineage(self) -> list[dict]:
        """The model's chain of unlearning steps: those it came with, plus this run (kept in its config)."""
        return [
            *self._previous_lineage,
            lineage_entry(
                self.base_model,
                self.forget_fingerprint,
                self.dataset_name,
                self.args.method_hyperparameters()["method"],
            ),
        ]

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save as `Trainer` does, with the unlearning chain in the config and without `training_args.bin`
        (a pickle: lotus-hf writes none)."""
        self.model.config.lotus_hf_unlearning = self.unlearning_lineage()
        super().save_model(output_dir, _internal_call)
        pickled = Path(output_dir or self.args.output_dir) / "training_args.bin"
        if self.args.should_save and pickled.exists():
            pickled.unlink()

    def create_model_card(
        self,
        model_name: str | None = None,
        base_model: str | None = None,
        forget: dict | None = None,
        report: dict | None = None,
        **kwargs,
    ) -> None:
        """Write README.md (the model card) into `args.output_dir`; `push_to_hub()` calls it too.

        Defaults: `self.forget_fingerprint`, `self.report` and `self.dataset_name` (set them, or let
        `lotus_hf.pipeline.unlearn` do it, before pushing)."""
        if not self.is_world_process_zero():
            return
        text = render_model_card(
            model_name=model_name or Path(self.args.output_dir).name,
            base_model=base_model or self.base_model,
            config=self.args,
            history=self.history,
            forget=forget or self.forget_fingerprint,
            report=report or self.report,
            lineage=self.unlearning_lineage(),
            dataset=self.dataset_name,
        )
        Path(self.args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.args.output_dir) / "README.md").write_text(text)


class UnlearningTrainer(CardMixin, Trainer):
    """Unlearn a forget set from an image classifier with LoTUS (Spartalis et al., CVPR 2025).

    Args:
        model: the original model (any `AutoModelForImageClassification`); it becomes the student.
        args: an `UnlearningConfig`.
        forget_dataset: items `{"pixel_values", "labels"}` to forget (e.g. `UnlearningData.forget`).
        retain_dataset: the rest of the training data; `args.retain_fraction` of it is mixed in.
        unseen_dataset: held-out data of the same classes, never trained on; calibrates tau and the stop.
        teacher_model: the frozen teacher, when `args.cache_teacher_logits=False` (default: a copy of `model`).

    Example:
        >>> config = UnlearningConfig(output_dir="out", alpha=2.0)
        >>> trainer = UnlearningTrainer(model, config, forget_dataset=data.forget,
        ...                             retain_dataset=data.retain, unseen_dataset=data.unseen)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
    """

    _tag_names = ["lotus-hf", "machine-unlearning", "image-classification"]

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
        if args is None:
            args = UnlearningConfig(output_dir="lotus-hf-output")
        if not isinstance(args, UnlearningConfig):
            raise TypeError(f"`args` must be an `UnlearningConfig`, got {type(args).__name__}.")
        if is_streamed(forget_dataset):  # a forget set is small: it is read once and held
            forget_dataset = ItemList(list(forget_dataset))
        for name, dataset in (("forget_dataset", forget_dataset), ("unseen_dataset", unseen_dataset)):
            if dataset is None or (not is_streamed(dataset) and len(dataset) == 0):
                raise ValueError(f"`{name}` must be a non-empty data set of `pixel_values`/`labels` items.")
        if args.class_forgetting is False and unseen_dataset is None:
            raise ValueError("`unseen_dataset` is required unless `class_forgetting=True`.")
        if retain_dataset is None:
            raise ValueError("`retain_dataset` must be given: the retain subset keeps the model's behaviour.")
        # The retain subset is drawn once per run, seeded, before anything else touches the RNG.
        if is_streamed(retain_dataset):
            retain_dataset = ItemList(
                reservoir_sample(retain_dataset, _reservoir_size(retain_dataset, args), args.seed)
            )
            retain_indices = torch.arange(len(retain_dataset))
        else:
            generator = torch.Generator().manual_seed(args.seed)
            size = math.floor(args.retain_fraction * len(retain_dataset))
            retain_indices = torch.randperm(len(retain_dataset), generator=generator)[:size].sort().values
        self.forget_dataset, self.retain_dataset, self.unseen_dataset = (
            forget_dataset,
            retain_dataset,
            unseen_dataset,
        )
        stream = UnlearningStream(forget_dataset, retain_dataset, retain_indices)
        # transformers 5.24 renamed `gradient_checkpointing` to `activation_checkpointing` (the old name is an
        # alias until v6); read and clear both.
        wants = getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing
        if wants and not getattr(model, "supports_gradient_checkpointing", False):
            logger.warning(
                f"{type(model).__name__} does not support gradient checkpointing: training without it."
            )
            off = {"gradient_checkpointing": False}
            if hasattr(args, "activation_checkpointing"):
                off["activation_checkpointing"] = False
            args = dataclasses.replace(args, **off)

        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator or collate,
            train_dataset=stream,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self.add_callback(_LotusCallback(self))
        if self.is_fsdp_enabled and self.accelerator.is_fsdp2:
            # Trainer shards it when training starts
            fsdp2_compatible(self.model, self.accelerator.state.fsdp_plugin.cpu_ram_efficient_loading)
        if args.channels_last and not (self.is_fsdp_enabled or self.is_deepspeed_enabled):
            # FSDP2 (torch 2.13) and DeepSpeed 0.19 shard and broadcast only contiguous parameters
            to_channels_last(self.model)
        # Our loss is a per-row mean; let Trainer scale it for gradient accumulation.
        self.model_accepts_loss_kwargs = False
        self.teacher = None
        if not args.cache_teacher_logits:
            teacher = teacher_model if teacher_model is not None else copy.deepcopy(self.model)
            self.teacher = prepare_teacher(teacher, self.accelerator)
        # What the model card records: the original (with its revision), its earlier unlearning steps, and
        # what was forgotten; `pipeline.unlearn` fills in the last three.
        self.base_model = getattr(self.model.config, "_name_or_path", None) or "unknown"
        self._previous_lineage = list(getattr(self.model.config, "lotus_hf_unlearning", None) or [])
        self.forget_fingerprint: dict = {}
        self.report: dict = {}
        self.dataset_name: str | None = None
        self.tau = 1.0
        self.unseen_accuracy: float | None = None
        self.history: list[dict] = []  # one entry per probe: epoch, accuracies, delta, tau, stop
        self._noise = None
        self._loss_sums = torch.zeros(4, device=args.device)  # forget sum, forget n, retain sum, retain n
        self._seen = torch.zeros(2, dtype=torch.long, device=args.device)  # forget, retain rows trained on
        self._epoch_rows = 0  # rows this process has trained on in the current epoch, padding included

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if honour_fsdp_on_cpu(self.accelerator, self.args.fsdp_plugin_args):
            self.is_fsdp_enabled = True

    # ------------------------------------------------------------------------------------ data hooks
    def _set_signature_columns_if_needed(self):
        # Keep our columns ourselves instead of asking users for `remove_unused_columns=False`.
        if self._signature_columns is None:
            self._signature_columns = ["pixel_values", "labels", "is_forget", "teacher_logits"]

    @property
    def stream(self) -> UnlearningStream:
        return self.train_dataset

    # ------------------------------------------------------------------------------ the LoTUS probes
    def _global_logits(self, model: torch.nn.Module, dataset) -> torch.Tensor:
        """Logits of `model` on all of `dataset`, each process computing a shard, gathered on every rank."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        batch = self.args.per_device_eval_batch_size
        if world == 1:
            return predict_logits(model, dataset, batch, self.args.device)
        n = len(dataset)
        per_rank = math.ceil(n / world)
        mine = list(range(rank, n, world))
        mine += mine[-1:] * (per_rank - len(mine))  # pad to equal length for `gather`
        logits = predict_logits(model, dataset, batch, self.args.device, indices=mine).to(self.args.device)
        gathered = self.accelerator.gather(logits).cpu()
        # gathered is rank-major: row (r, j) is sample r + j * world.
        return gathered.view(world, per_rank, -1).transpose(0, 1).reshape(world * per_rank, -1)[:n]

    @torch.no_grad()  # not inference_mode: see evaluation.predict_logits
    def _streamed_accuracy(self, model: torch.nn.Module, stream) -> float:
        """Accuracy of `model` on a stream read once: item i goes to process i mod world, counts are summed.
        Every process runs as many forward passes as the busiest one (sharded models need all of them)."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        device, batch = self.args.device, self.args.per_device_eval_batch_size
        counts = torch.zeros(2, device=device)  # correct, total
        pending: list = []
        passes, spare = 0, None
        was_training = model.training
        model.eval()

        def count(items: list) -> None:
            inputs = collate(items)
            predicted = model(pixel_values=inputs["pixel_values"].to(device)).logits.argmax(-1).cpu()
            counts.add_(torch.tensor([(predicted == inputs["labels"]).sum(), len(items)], device=device))

        for index, item in enumerate(stream):
            spare = item["pixel_values"] if spare is None else spare
            if index % world == rank:
                pending.append({"pixel_values": item["pixel_values"], "labels": item["labels"]})
            if len(pending) == batch:
                count(pending)
                pending, passes = [], passes + 1
        if pending:
            count(pending)
            passes += 1
        if world > 1 and spare is not None:
            most = torch.tensor([passes], device=device)
            torch.distributed.all_reduce(most, op=torch.distributed.ReduceOp.MAX)
            for _ in range(int(most) - passes):
                model(pixel_values=torch.as_tensor(spare)[None].to(device))
        model.train(was_training)
        total = self.accelerator.reduce(counts, reduction="sum")
        if total[1] == 0:
            raise ValueError("`unseen_dataset` yielded no items: pass held-out data of the same classes.")
        return float(total[0] / total[1])

    def _prepare_unlearning(self) -> None:
        """Before the first epoch: the unseen accuracy A_u and, when enabled, the teacher's logits."""
        teacher = self.teacher if self.teacher is not None else self.model  # the student is still f0 here
        if self.args.class_forgetting:
            self.unseen_accuracy = 0.0
        elif is_streamed(self.unseen_dataset):
            self.unseen_accuracy = self._streamed_accuracy(teacher, self.unseen_dataset)
        else:
            logits = self._global_logits(teacher, self.unseen_dataset)
            self.unseen_accuracy = accuracy(logits, _labels_of(self.unseen_dataset))
        if self.args.cache_teacher_logits:
            self.stream.teacher_logits = self._global_logits(self.model, self.stream.pixel_items())
        self._noise = torch.Generator(device=self.args.device).manual_seed(
            self.args.seed + self.args.process_index
        )

    def _begin_epoch(self) -> bool:
        """Probe the student on the whole forget set; set tau or return True to stop. Same on every rank."""
        forget_accuracy = accuracy(
            self._global_logits(self.model, self.forget_dataset), _labels_of(self.forget_dataset)
        )
        self._epoch_rows = 0
        delta = accuracy_gap(forget_accuracy, self.unseen_accuracy)
        stop = should_stop(delta, self.args.stop_margin)
        self.tau = temperature(delta, self.args.alpha)
        entry = {
            "epoch": len(self.history) + 1,
            "forget_accuracy": forget_accuracy,
            "unseen_accuracy": self.unseen_accuracy,
            "delta": delta,
            "tau": self.tau,
            "stop": stop,
        }
        self.history.append(entry)
        self.log({k: float(v) for k, v in entry.items() if k not in ("epoch", "stop")})
        return stop

    def _run_epoch(self, *args, **kwargs):
        # transformers 5.24 checks `should_training_stop` only after an epoch's first step; when the probe
        # before an epoch says stop, that epoch must not update the model at all.
        if self.control.should_training_stop:
            return None
        return super()._run_epoch(*args, **kwargs)

    @property
    def stopped_at_epoch(self) -> int | None:
        """The epoch whose probe stopped training (1-based), or None if all epochs ran."""
        return next((e["epoch"] for e in self.history if e["stop"]), None)

    def samples_seen(self) -> dict[str, int]:
        """Forget and retain rows trained on so far, over all processes (call it on every rank)."""
        forget, retain = self.accelerator.reduce(self._seen.clone(), reduction="sum").tolist()
        return {"forget": int(forget), "retain": int(retain)}

    # ------------------------------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        is_forget = inputs.pop("is_forget")
        inputs.pop("labels", None)  # ground truth is for accuracy only
        teacher_logits = inputs.pop("teacher_logits", None)
        if teacher_logits is None:
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits
        outputs = model(**inputs)
        targets = lotus_targets(teacher_logits, is_forget, self.tau, self.args.prob_transform, self._noise)
        per_row = soft_cross_entropy(outputs.logits, targets)
        real = self._real_rows(len(per_row))
        forget, retain = is_forget.bool() & real, ~is_forget.bool() & real
        self._seen += torch.stack([forget.sum(), retain.sum()]).to(self._seen)
        with torch.no_grad():
            self._loss_sums += torch.stack(
                [per_row[forget].sum(), forget.sum(), per_row[retain].sum(), retain.sum()]
            ).to(self._loss_sums)
        loss = (per_row * real).sum() / real.sum().clamp_min(1)
        return (loss, outputs) if return_outputs else loss

    def _real_rows(self, rows: int) -> torch.Tensor:
        """Mask of the rows that are not padding. With several processes, accelerate completes the last batch
        of an epoch with repeated samples (`even_batches`); this rank's share of real rows per epoch is known,
        so rows past it are masked out of the loss and the counts, and N processes train on exactly the
        samples one process does."""
        mask = torch.ones(rows, dtype=torch.bool, device=self.args.device)
        world = self.accelerator.num_processes
        if world > 1 and self.accelerator.even_batches and not self.accelerator.split_batches:
            batch, rank = self.args.per_device_train_batch_size, self.accelerator.process_index
            full, remainder = divmod(len(self.stream), batch * world)
            quota = full * batch + min(max(remainder - rank * batch, 0), batch)
            mask[max(quota - self._epoch_rows, 0) :] = False
        self._epoch_rows += rows
        return mask

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log, reached on every rank at the same step
            sums = self.accelerator.reduce(self._loss_sums, reduction="sum").tolist()
            logs["forget_loss"] = sums[0] / sums[1] if sums[1] else float("nan")
            logs["retain_loss"] = sums[2] / sums[3] if sums[3] else float("nan")
            self._loss_sums.zero_()
        super().log(logs, start_time)


def _reservoir_size(retain, args: UnlearningConfig) -> int:
    if args.retain_samples is not None:
        return args.retain_samples
    try:
        return math.floor(args.retain_fraction * len(retain))
    except TypeError:
        raise ValueError(
            "the streamed `retain_dataset` has no length: set `retain_samples` (how many retain samples to draw)."
        ) from None


def _labels_of(dataset) -> torch.Tensor:
    if hasattr(dataset, "labels") and isinstance(dataset.labels, torch.Tensor):
        return dataset.labels
    return torch.as_tensor([int(dataset[i]["labels"]) for i in range(len(dataset))])


def _yaml_list(values) -> str:
    return "\n".join(f"- {v}" for v in values)


def lineage_entry(base_model: str, forget: dict, dataset: str | None = None, method: str = "lotus") -> dict:
    """One step of a checkpoint's unlearning history, as kept in `config.lotus_hf_unlearning`."""
    keys = ("kind", "request", "size", "per_class", "sha256")
    forget = {k: forget.get(k) for k in keys}
    return {"base_model": base_model, "dataset": dataset, "method": method, "forget": forget}


def render_model_card(
    model_name: str,
    base_model: str,
    config: UnlearningConfig,
    history: list[dict],
    forget: dict,
    report: dict,
    lineage: list[dict] | None = None,
    dataset: str | None = None,
) -> str:
    """Render templates/model_card.md: what was unlearned, how, and what it measured.

    `base_model` may carry `@revision`; it becomes the card's `base_model` field when it is a Hub id.
    `lineage` is the chain of unlearning steps (`lineage_entry`), oldest first, ending with this one."""
    import transformers

    import lotus_hf

    rows = report.get("rows", {})
    unlearned = rows.get("unlearned", {})
    results = "\n".join(
        f"          - type: {key}\n            value: {value:.6f}\n            name: {key}"
        for key, value in unlearned.items()
        if isinstance(value, float) and math.isfinite(value)
    )
    hyper = config.method_hyperparameters()
    method = hyper.get("method", "lotus")
    if method == "lotus":
        intro = (
            "with [LoTUS](https://arxiv.org/abs/2503.18314) (Spartalis et al., CVPR 2025), run by lotus-hf. "
            "LoTUS\nfine-tunes a model towards smoothed, uncertain versions of its own predictions on the forget "
            "set, and\nstops once its accuracy there falls to what the original model reaches on data it never saw."
        )
        epochs = "\n".join(
            f"| {e['epoch']} | {e['forget_accuracy']:.4f} | {e['unseen_accuracy']:.4f} | {e['delta']:+.2f} | "
            f"{e['tau']:.4f} | {'stop' if e['stop'] else 'train'} |"
            for e in history
        )
        probe_section = PROBE_SECTION.format(epochs=epochs or "| - | - | - | - | - | - |")
    else:
        intro = (
            f"with the `{method}` baseline of lotus-hf (see `lotus_hf.baselines`), not with LoTUS: a "
            "comparison\nmethod of the LoTUS paper (Spartalis et al., CVPR 2025)."
        )
        probe_section = ""
    per_class = ", ".join(f"{k}: {v}" for k, v in forget.get("per_class", {}).items())
    seconds = report.get("unlearning_seconds")
    lineage = lineage or [lineage_entry(base_model, forget, dataset)]
    steps = "\n".join(
        f"| {i} | {step['base_model']} | {step['forget'].get('request') or '-'} | {step['forget'].get('size') or '-'} "
        f"| `{step['forget'].get('sha256') or '-'}` |"
        for i, step in enumerate(lineage, 1)
    )
    dataset = _dataset_id(dataset)
    datasets = [
        hub_id(d) for d in dict.fromkeys(_dataset_id(step.get("dataset")) for step in lineage) if hub_id(d)
    ]
    hub_fields = []
    if hub_id(base_model):
        hub_fields += [f"base_model: {hub_id(base_model)}", "base_model_relation: finetune"]
    if datasets:
        hub_fields.append("datasets:\n" + _yaml_list(datasets))
    stopped = next((e["epoch"] for e in history if e.get("stop")), None)
    if method != "lotus":
        outcome = ""
    elif stopped is not None:
        outcome = f"Here the stop rule ended training before epoch {stopped}."
    elif history:
        outcome = f"Here it ran all {len(history)} epochs allowed; the stop rule did not fire."
    else:
        outcome = ""
    return Template(_TEMPLATE.read_text()).substitute(
        outcome=outcome,
        model_name=model_name,
        hub_fields="\n".join(hub_fields),
        dataset_name=json.dumps(dataset or "unknown"),
        dataset_type=json.dumps(hub_id(dataset) or Path(str(dataset or "unknown")).name),
        lineage=steps,
        base_model=base_model,
        tags=_yaml_list(UnlearningTrainer._tag_names),
        results=results or "          []",
        forget_kind=forget.get("kind", "-"),
        forget_request=forget.get("request", "-"),
        forget_size=forget.get("size", "-"),
        forget_per_class=per_class or "-",
        forget_sha256=forget.get("sha256", "-"),
        hyperparameters="\n".join(f"| `{k}` | {v} |" for k, v in hyper.items()),
        intro=intro,
        probe_section=probe_section,
        metrics_table=_report_table(report),
        seconds="-" if seconds is None else f"{seconds:.1f}",
        lotus_hf_version=lotus_hf.__version__,
        transformers_version=transformers.__version__,
        torch_version=torch.__version__,
        python_version=platform.python_version(),
        citation=LOTUS_CITATION,
    )


def _dataset_id(name: str | None) -> str | None:
    """`fashion_mnist` (read from the Debian package when installed) is this Hub data set."""
    return FASHION_MNIST_HUB_ID if name in FASHION_MNIST_IDS else name


def hub_id(name: str | None) -> str | None:
    """`name` without its `@revision` when it names a Hub repo (`ORG/NAME`), else None (a bundled name or
    a local path)."""
    if not name:
        return None
    bare = name.split("@")[0]
    if bare.count("/") != 1 or bare.startswith((".", "/", "~")) or Path(bare).exists():
        return None
    return bare


def _report_table(report: dict) -> str:
    rows = report.get("rows", {})
    if not rows:
        return "Not evaluated."
    keys = [k for k in next(iter(rows.values()))]
    lines = ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in rows.items():
        lines.append(
            f"| {name} | " + " | ".join("-" if row.get(k) is None else f"{row[k]:.4f}" for k in keys) + " |"
        )
    return "\n".join(lines)
