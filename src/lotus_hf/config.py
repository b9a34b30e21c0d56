"""`UnlearningConfig`: `TrainingArguments` plus the LoTUS fields, with the paper's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .losses import PROB_TRANSFORMS


@dataclass
class UnlearningConfig(TrainingArguments):
    r"""
    Configuration of the [`UnlearningTrainer`]: every `TrainingArguments` field, plus those of LoTUS.

    Defaults are the paper's for ResNet-18 (10 epochs, batch 128, AdamW lr 1e-4, weight decay 5e-4, no LR
    schedule). For ViT-B/16 the paper used 3 epochs, batch 32 and lr 1e-6.

    Parameters:
        alpha (`float`, defaults to `2.0`):
            Sharpness of the temperature `tau = exp(alpha * delta)`, where `delta` is the gap between the
            student's accuracy on the forget set and the original model's accuracy on unseen data. The paper
            picked it from {2, 4, 8, 16} per benchmark (8 on CIFAR-10, 32 for class forgetting).
        retain_fraction (`float`, defaults to `0.3`):
            Share `rho` of the retain set drawn once per run (seeded by `seed`) and mixed into the stream.
        prob_transform (`str`, defaults to `"gumbel_softmax"`):
            How teacher logits become targets: `"gumbel_softmax"` (the paper: noisy soft targets on forget
            rows, Gumbel-max one-hot on retain rows) or `"softmax"` (noiseless `softmax(z / tau)` and argmax).
        class_forgetting (`bool`, defaults to `False`):
            Whole classes are forgotten: the unseen accuracy the forget accuracy must reach is 0, not the
            original model's accuracy on unseen data.
        stop_margin (`float`, defaults to `0.01`):
            Training stops before an epoch once `delta <= -stop_margin`.
        cache_teacher_logits (`bool`, defaults to `True`):
            Compute the teacher's logits on the unlearning stream once, before the first update, instead of
            running a frozen teacher every step. Exact when inputs are not augmented (they are not here);
            the Gumbel noise is still drawn fresh every step. Removes the teacher from memory.
        channels_last (`bool`, defaults to `True`):
            Train convolutional models in the channels-last memory format (about 20% faster steps for the
            bundled ResNet on CPU; see benchmarks/). Models without `Conv2d` layers are left as they are.
        retain_samples (`int`, *optional*):
            When the retain set is a stream (an `IterableDataset`), how many of its samples a seeded reservoir
            keeps for the run; only these are ever held in memory. Default: `retain_fraction` times its length,
            for streams that know it.

    Mixed precision (`bf16=True`) and activation (gradient) checkpointing (`activation_checkpointing=True`;
    `gradient_checkpointing` before transformers 5.24) pass through to `Trainer`; checkpointing is skipped,
    with a warning, for models that do not support it, such as ResNet.
    """

    alpha: float = field(default=2.0, metadata={"help": "Temperature sharpness: tau = exp(alpha * delta)."})
    retain_fraction: float = field(
        default=0.3,
        metadata={"help": "Share rho of the retain set mixed into the unlearning stream, in (0, 1]."},
    )
    prob_transform: str = field(
        default="gumbel_softmax",
        metadata={"help": "Target transform: 'gumbel_softmax' (paper) or 'softmax'."},
    )
    class_forgetting: bool = field(
        default=False, metadata={"help": "Whole classes are forgotten: the target unseen accuracy is 0."}
    )
    stop_margin: float = field(
        default=0.01, metadata={"help": "Stop once forget accuracy is this far below unseen accuracy."}
    )
    cache_teacher_logits: bool = field(
        default=True,
        metadata={"help": "Compute teacher logits once instead of running a teacher every step."},
    )
    channels_last: bool = field(
        default=True, metadata={"help": "Train conv models in channels-last memory format (faster)."}
    )
    retain_samples: int | None = field(
        default=None,
        metadata={
            "help": "Retain samples drawn from a streamed retain set (default: retain_fraction x its length)."
        },
    )

    # Paper defaults and settings this trainer relies on, overriding TrainingArguments'.
    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints and the model go."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (paper: 1e-4 ResNet)."})
    weight_decay: float = field(default=5e-4, metadata={"help": "AdamW weight decay."})
    num_train_epochs: float = field(default=10, metadata={"help": "Maximum number of epochs E."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Batch size per device."})
    per_device_eval_batch_size: int = field(default=512, metadata={"help": "Batch size of the probes."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "The paper uses no LR schedule."})
    logging_steps: float = field(default=10, metadata={"help": "Log forget/retain loss every N steps."})
    save_strategy: str = field(
        default="no", metadata={"help": "Checkpointing; the result is saved at the end."}
    )
    report_to: str | list[str] = field(default="none", metadata={"help": "Trackers to report to."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep `is_forget` in batches."})

    def method_hyperparameters(self) -> dict:
        """The fields that define this run, for the model card and the benchmark tables."""
        fields = ("alpha", "retain_fraction", "prob_transform", "class_forgetting", "stop_margin", "learning_rate",
                  "weight_decay", "num_train_epochs", "per_device_train_batch_size", "seed")  # fmt: skip
        return {"method": "lotus", **{name: getattr(self, name) for name in fields}}

    def __post_init__(self):
        if not self.alpha > 0:
            raise ValueError(f"`alpha` must be > 0, got {self.alpha}: the paper uses 2, 4, 8, 16 or 32.")
        if not 0.0 < self.retain_fraction <= 1.0:
            raise ValueError(
                f"`retain_fraction` must be in (0, 1], got {self.retain_fraction}: the paper uses 0.3."
            )
        if self.prob_transform not in PROB_TRANSFORMS:
            raise ValueError(
                f"`prob_transform` must be one of {PROB_TRANSFORMS}, got {self.prob_transform!r}."
            )
        if not 0.0 <= self.stop_margin < 1.0:
            raise ValueError(f"`stop_margin` must be in [0, 1), got {self.stop_margin}: the paper uses 0.01.")
        if self.num_train_epochs is not None and self.num_train_epochs < 1:
            raise ValueError(f"`num_train_epochs` must be >= 1, got {self.num_train_epochs}.")
        if self.retain_samples is not None and self.retain_samples < 0:
            raise ValueError(f"`retain_samples` must be >= 0, got {self.retain_samples}.")
        self.use_cpu = self.use_cpu or launched_on_cpu()
        if self.output_dir is None:
            self.output_dir = "lotus-hf-output"
        super().__post_init__()
        if self.dataloader_pin_memory and (self.use_cpu or not torch.cuda.is_available()):
            self.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns on every epoch


def launched_on_cpu() -> bool:
    """True when several processes were launched (torchrun, accelerate launch) on a machine without an
    accelerator. transformers 5.24 then sets up no process group unless `use_cpu=True`: every process would
    run alone on all the data, so CPU processes are made to train together."""
    import os

    accelerated = (
        torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    )
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not accelerated
