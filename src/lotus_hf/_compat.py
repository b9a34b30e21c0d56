"""Workarounds for upstream versions, all in one place.

Each one names the versions it was written for (in brackets: the version seen) and applies only within the
range checked in code (`_affected`, a whole major version: a change of behaviour is looked for at a major
release, and the tests below say when one comes earlier). tests/test_compat.py checks that the behaviours
`StopBeforeEpoch`, `fsdp2_compatible`, `launched_on_cpu`, `without_unsupported_checkpointing` and
`training_loader` answer are still there in the installed versions (`overridden` by every probe and two-process
run); `honour_fsdp_on_cpu`, `channels_last_allowed` and `leave_process_group` are
exercised by the two-process runs of tests/test_distributed.py, `channels_last_breaks` by the RegNet of
tests/test_architectures.py. When one of those tests fails after an upgrade,
its workaround can go. docs/upstream.md lists the private Trainer API used here and drafts the upstream issue
each waits for.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed

from .errors import ArgumentError

# transformers imports DeepSpeed whenever it is installed, and DeepSpeed 0.19 then logs on every machine
# without a GPU that it is "Setting accelerator to CPU", even for runs that never use DeepSpeed. This filter
# must exist before transformers is first imported, so it comes before every other import of the package.
DEEPSPEED_CPU_NOTICE = "Setting accelerator to CPU"


def _affected(package: str, first: str, before: str) -> bool:
    """True when `package` is installed in the range `[first, before)` a workaround was written for."""
    from packaging.version import Version

    try:
        installed = Version(_installed(package))
    except PackageNotFoundError:
        return False
    return Version(first) <= installed < Version(before)


if _affected("deepspeed", "0.15", "1.0"):  # seen with 0.19.8
    logging.getLogger("DeepSpeed").addFilter(lambda record: DEEPSPEED_CPU_NOTICE not in record.getMessage())

import torch  # noqa: E402

# Each flag: does the installed version have the behaviour worked around below? (the versions seen in brackets)
TRANSFORMERS_5 = _affected("transformers", "5.0", "6.0")  # [5.24.0]
ACCELERATE_1 = _affected("accelerate", "1.0", "2.0")  # [1.15.0]


def launched_on_cpu() -> bool:
    """True when several processes were launched (torchrun, accelerate launch) on a machine without an
    accelerator: `TrainingArguments` must then get `use_cpu=True`.

    transformers 5.24 sets up no process group for CPU processes unless `use_cpu=True`: every process would
    run alone on all of the data."""
    if not TRANSFORMERS_5:
        return False
    accelerated = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not accelerated


def training_loader(trainer, dataset, description: str):
    """A loader over `dataset` made like `trainer`'s training loader: its batch size, its sampler (a new seeded
    order every pass), workers and collator, prepared by accelerate (each process its share).

    transformers 5.24 builds one in public only over `train_dataset` (`get_train_dataloader`); its private
    `_get_dataloader` (with `_train_batch_size` and `_get_train_sampler`) takes any data set, which SCRUB's max
    steps and the baselines' forget batches need. tests/test_compat.py checks that it still takes these
    arguments. Upstream: none filed yet (docs/upstream.md, draft 1)."""
    return trainer._get_dataloader(
        dataset,
        description=description,
        batch_size=trainer._train_batch_size,
        sampler_fn=trainer._get_train_sampler,
        is_training=True,
    )


def prepare_inputs(trainer, inputs: dict) -> dict:
    """`inputs` on the trainer's device, in the dtype its engine expects (DeepSpeed's, under DeepSpeed), as the
    Trainer's own `prediction_step` prepares them.

    transformers 5.24 has no public method for this; a `prediction_step` override (the Trainer's documented way to
    change what evaluation computes) calls its private `_prepare_inputs`, as the Trainer's own does. Upstream: none
    filed yet (docs/upstream.md, draft 3)."""
    return trainer._prepare_inputs(inputs)


@contextlib.contextmanager
def overridden(trainer, **values):
    """`trainer.args` (and, for `compute_metrics`, the trainer) with `values` for the duration, restored after.

    transformers 5.24's `predict` and `get_train_dataloader` read `dataloader_drop_last` from `trainer.args` and
    `predict` calls `trainer.compute_metrics`, with no per-call argument: a probe must count every row and compute
    no metric, and a last training batch of one row per process must be dropped for BatchNorm. Upstream: none filed
    yet (docs/upstream.md, draft 4)."""
    owners = {name: trainer if name == "compute_metrics" else trainer.args for name in values}
    before = {name: getattr(owner, name) for name, owner in owners.items()}
    for name, value in values.items():
        setattr(owners[name], name, value)
    try:
        yield trainer
    finally:
        for name, value in before.items():
            setattr(owners[name], name, value)


class StopBeforeEpoch:
    """Trainer mixin: honour `control.should_training_stop` set by an `on_epoch_begin` callback.

    transformers 5.24 checks the flag only after an epoch's first optimizer step, so an epoch whose opening
    probe says "stop" would still update the model once. Upstream: none filed yet (docs/upstream.md, draft 2)."""

    def _run_epoch(self, *args, **kwargs):
        if TRANSFORMERS_5 and self.control.should_training_stop:
            return None
        return super()._run_epoch(*args, **kwargs)


def without_unsupported_checkpointing(args, model: torch.nn.Module):
    """`args` with activation checkpointing turned off (and a warning) when `model` cannot do it (ResNet).

    transformers 5.24 renamed `gradient_checkpointing` to `activation_checkpointing` and keeps the old name as
    an alias until v6: both are read and both cleared."""
    import dataclasses

    from transformers.utils import logging as hf_logging

    renamed = hasattr(args, "activation_checkpointing")
    wants = args.activation_checkpointing if renamed else args.gradient_checkpointing
    if not wants or getattr(model, "supports_gradient_checkpointing", False):
        return args
    hf_logging.get_logger(__name__).warning(
        f"{type(model).__name__} does not support gradient checkpointing: training without it."
    )
    # the old name mirrors the new one, so a copy that changes the new one takes effect (transformers 5.24)
    return dataclasses.replace(args, **{"activation_checkpointing" if renamed else "gradient_checkpointing": False})


def honour_fsdp_on_cpu(accelerator, fsdp_plugin_args: dict | None) -> bool:
    """Turn an FSDP2 request into FSDP2 sharding on CPU processes; True when it did.

    accelerate 1.15 enables FSDP only on accelerators: with CPU processes (gloo) it drops an FSDP config and
    runs plain data parallelism. torch 2.13's FSDP2 (`fully_shard`) shards over gloo on CPU, so a request made
    through `accelerate launch` (its FSDP environment) or `fsdp`/`fsdp_config` is honoured here. FSDP1 on CPU
    is left to accelerate's fallback (it needs a device id)."""
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if not ACCELERATE_1:
        return False
    asked = fsdp_plugin_args is not None or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if not asked or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin(**(fsdp_plugin_args or {}))
    if plugin.fsdp_version != 2:
        logging.getLogger(__name__).warning(
            "FSDP1 does not run on CPU processes: training with data parallelism (DDP) instead."
        )
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
    saved = model.state_dict().keys() if cpu_ram_efficient_loading and ACCELERATE_1 else ()
    buffer = next((name for name, _ in model.named_buffers() if name in saved), None)
    if buffer is not None:
        raise ArgumentError(
            f"FSDP2's `fsdp_cpu_ram_efficient_loading` cannot load {type(model).__name__}: it has buffers "
            f"({buffer}, ...) and accelerate 1.15 expects only parameters. Set "
            "`fsdp_cpu_ram_efficient_loading: false` in the accelerate config."
        )
    if not TRANSFORMERS_5:
        return model
    try:
        model.get_input_embeddings()
    except NotImplementedError:
        model.get_input_embeddings = lambda: None
    except AttributeError:  # not a transformers model: accelerate finds no embeddings either
        pass
    return model


def channels_last_allowed(trainer) -> bool:
    """False under FSDP and DeepSpeed: torch 2.13's FSDP2 and DeepSpeed 0.19 shard and broadcast only
    contiguous parameters, and channels-last convolution weights are not."""
    fsdp_refuses = trainer.is_fsdp_enabled and _affected("torch", "2.4", "3.0")  # [2.13.0]
    deepspeed_refuses = trainer.is_deepspeed_enabled and _affected("deepspeed", "0.15", "1.0")  # [0.19.8]
    return not (fsdp_refuses or deepspeed_refuses)


def channels_last_breaks(model: torch.nn.Module, device: torch.device | str) -> bool:
    """True where channels-last would crash training: on CPU, torch 2.13's weight gradient of a strided 1x1
    convolution with 2 to 15 input channels in channels-last corrupts the heap ("double free or corruption",
    SIGABRT or SIGSEGV). Small RegNets and ResNets have such shortcut convolutions."""
    if torch.device(device).type != "cpu" or not _affected("torch", "2.0", "3.0"):  # [2.13.0]
        return False
    return any(
        isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1 and m.in_channels < 16
        for m in model.modules()
    )


def leave_process_group(state) -> None:
    """With several processes, wait for all of them, then tear the process group down before exit.

    torch 2.13's gloo can abort a process ("terminate called without an active exception") that exits while its
    group is alive (seen in CI). A DDP wrapper holds the group too, so garbage left by a finished Trainer (which
    lives in reference cycles) is collected first: the group then goes while the interpreter is whole, not at
    its finalisation."""
    if state.num_processes > 1:
        gc.collect()
        state.wait_for_everyone()
        if _affected("torch", "2.0", "3.0"):  # [2.13.0]
            state.destroy_process_group()
