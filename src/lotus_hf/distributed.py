"""What several processes need beyond what `Trainer` and accelerate do: a frozen teacher placed for the run's
strategy, the padding rows accelerate adds to an epoch's last batch, and the whole model gathered from shards.
(`UnlearningTrainerBase` uses them.)
"""

from __future__ import annotations

import copy

import torch

from ._compat import channels_last_breaks, fsdp2_compatible


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
