"""What several processes need beyond what `Trainer` and accelerate do: a frozen teacher placed for the run's
strategy, the padding rows accelerate adds to an epoch's last batch, and the whole model gathered from shards.
"""

from __future__ import annotations

import copy

import torch

from ._compat import channels_last_allowed, channels_last_breaks, fsdp2_compatible, honour_fsdp_on_cpu, overridden


class StrategyMixin:
    """What the run's strategy needs of a trainer, for `UnlearningTrainer` and the baselines' trainers alike
    (mix in before `Trainer`): an FSDP2 request honoured on CPU processes, and after `Trainer.__init__`
    (`lay_out_model`) a model ready for FSDP2 and in the channels-last format where the strategy allows it."""

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if honour_fsdp_on_cpu(self.accelerator, self.args.fsdp_plugin_args):
            self.is_fsdp_enabled = True

    def get_train_dataloader(self):
        # A last batch of one row per process cannot train a BatchNorm layer ("Expected more than 1 value per
        # channel when training"): such a batch is dropped, one row per epoch, another one each epoch (shuffled).
        rows, world = len(self.train_dataset), self.accelerator.num_processes
        lone_rows = 0 < rows % (self.args.train_batch_size * world) <= world
        if self.args.dataloader_drop_last or not lone_rows or not _has_batch_norm(self.model):
            return super().get_train_dataloader()
        with overridden(self, dataloader_drop_last=True):
            return super().get_train_dataloader()

    def lay_out_model(self) -> None:
        if self.is_fsdp_enabled and self.accelerator.is_fsdp2:  # Trainer shards it when training starts
            fsdp2_compatible(self.model, self.accelerator.state.fsdp_plugin.cpu_ram_efficient_loading)
        if self.args.channels_last and channels_last_allowed(self):
            to_channels_last(self.model, self.args.device)
        self.epoch_rows = 0  # rows this process has trained on in the current epoch, padding included

    def start_epoch_rows(self) -> None:
        """A new epoch begins: `real_rows` counts its rows from 0."""
        self.epoch_rows = 0

    def real_rows(self, rows: int) -> torch.Tensor:
        """Which of the `rows` rows of this process's next batch are not accelerate's padding of an epoch's last
        batch (`real_rows` below); counts them into the epoch."""
        accelerator, world = self.accelerator, self.accelerator.num_processes
        if world == 1 or not accelerator.even_batches or accelerator.split_batches:
            mask = torch.ones(rows, dtype=torch.bool)
        else:
            mask = real_rows(
                len(self.train_dataset),
                self.args.per_device_train_batch_size,
                world,
                accelerator.process_index,
                self.epoch_rows,
                rows,
            )
        self.epoch_rows += rows
        return mask.to(self.args.device)


def _has_batch_norm(model: torch.nn.Module) -> bool:
    return any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())


def to_channels_last(model: torch.nn.Module, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Put a model with `Conv2d` layers in the channels-last memory format, in place, for training on `device`;
    others are untouched, and so are models the format would crash there (`_compat.channels_last_breaks`).

    Convolutions run about 20% faster this way on CPU (oneDNN) and with mixed precision on GPU
    (benchmarks/results/epoch_cost.md). Values are unchanged, and `save_pretrained` writes the same
    safetensors either way."""
    convolutional = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    if convolutional and not channels_last_breaks(model, device):
        model.to(memory_format=torch.channels_last)
    return model


def prepare_teacher(teacher: torch.nn.Module, accelerator) -> torch.nn.Module:
    """Freeze `teacher` and place it for the run's strategy, as TRL prepares its reference model.

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


def real_rows(stream_length: int, batch_size: int, world: int, rank: int, rows_before: int, rows: int) -> torch.Tensor:
    """Mask of the `rows` rows of process `rank`'s next batch that are not padding.

    With several processes, accelerate completes the last batch of an epoch with repeated samples
    (`even_batches`): batch i of the epoch goes to process i mod `world`. Each process's share of real rows
    per epoch follows from the stream's length, so the rows past it (`rows_before` counts the rows this
    process already had this epoch) are masked out of the loss and the counts, and N processes train on
    exactly the samples one process does.

    10 rows, batches of 4, 2 processes: process 0 gets rows 0-3 and 8-9 plus 2 of padding, process 1 rows 4-7.
    >>> real_rows(10, 4, world=2, rank=0, rows_before=4, rows=4).tolist()
    [True, True, False, False]
    >>> real_rows(10, 4, world=2, rank=1, rows_before=4, rows=4).tolist()
    [False, False, False, False]
    """
    full, remainder = divmod(stream_length, batch_size * world)
    quota = full * batch_size + min(max(remainder - rank * batch_size, 0), batch_size)
    mask = torch.ones(rows, dtype=torch.bool)
    mask[max(quota - rows_before, 0) :] = False
    return mask


def whole_model(trainer, like: torch.nn.Module | None = None) -> torch.nn.Module:
    """`trainer.model`, or where each process holds only a shard of it (FSDP, DeepSpeed ZeRO-3) a copy of
    `like` (a model of the same architecture; default: one built from the config) with the trained weights
    gathered from every process. Every process must call it."""
    from transformers import AutoModelForImageClassification
    from transformers.integrations import is_deepspeed_zero3_enabled

    if trainer.is_fsdp_enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True))
    elif trainer.is_deepspeed_enabled and is_deepspeed_zero3_enabled():
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(trainer.model.parameters())):
            weights = {name: value.detach().clone() for name, value in trainer.model.state_dict().items()}
    else:
        return trainer.model
    whole = (
        copy.deepcopy(like) if like is not None else AutoModelForImageClassification.from_config(trainer.model.config)
    )
    whole.load_state_dict(weights)
    return whole.eval()
