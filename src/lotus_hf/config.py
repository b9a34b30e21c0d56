"""`UnlearningConfig`: `TrainingArguments` plus the LoTUS fields, with the paper's defaults (docs/method.md)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from ._compat import launched_on_cpu
from .data import ForgetRequest
from .hub import ModelError, model_file
from .losses import PROB_TRANSFORMS

CLASS_MODES = ("paper", "remaining")

UNLEARNING_CONFIG_NAME = "unlearning_config.json"


@dataclass
class MethodConfig(TrainingArguments):
    """What the config of every unlearning method shares, LoTUS's and the baselines': `TrainingArguments`
    with the defaults of an unlearning run (paper seed, batch 128, no learning-rate schedule, no checkpoints,
    no trackers, no gradient clipping: `max_grad_norm=0`, as the LoTUS paper's code runs every method), `channels_last`,
    and `from_pretrained`, the precedence of settings. A field may carry a
    `check` in its metadata, `(predicate, "the allowed values")`, that `__post_init__` applies. Pushes to the
    Hub are one commit at the end (`hub_strategy` is always "end"), through `trainer.push_to_hub()`."""

    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints and the model go."})
    seed: int = field(
        default=3407, metadata={"help": "Seed of the data splits and the run (paper: 3407, 13, 12)."}
    )
    per_device_train_batch_size: int = field(
        default=128, metadata={"help": "Batch size per device.", "aliases": ["--batch-size"]}
    )
    per_device_eval_batch_size: int = field(
        default=512, metadata={"help": "Batch size of probes and passes."}
    )
    lr_scheduler_type: str = field(
        default="constant", metadata={"help": "Learning-rate schedule (paper: none)."}
    )
    save_strategy: str = field(
        default="no", metadata={"help": "Checkpointing; the result is saved at the end."}
    )
    report_to: str | list[str] = field(default="none", metadata={"help": "Trackers to report to."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep `is_forget` in batches."})
    channels_last: bool = field(
        default=True, metadata={"help": "Train conv models in channels-last memory format (faster)."}
    )
    max_grad_norm: float = field(
        default=0.0,
        metadata={"help": "Clip gradients to this norm; 0 (default) clips none, as the paper's code does."},
    )

    def __post_init__(self):
        for f in dataclasses.fields(self):
            ok, allowed = f.metadata.get("check", (None, None))
            if ok is not None and not ok(getattr(self, f.name)):
                raise ValueError(f"`{f.name}` must be {allowed}, got {getattr(self, f.name)!r}.")
        self.use_cpu = self.use_cpu or launched_on_cpu()
        if self.output_dir is None:
            self.output_dir = "lotus-hf-output"
        # One commit at the end (`push_to_hub()`, lotus_hf.hub.push_folder), never a push per checkpoint.
        self.hub_strategy = "end"
        super().__post_init__()
        if self.dataloader_pin_memory and (self.use_cpu or not torch.cuda.is_available()):
            self.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns on every epoch

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | None = None, *, request: ForgetRequest | None = None,
                        **kwargs) -> MethodConfig:  # fmt: skip
        """The config for a run on `model_name_or_path`: the method's defaults, then `kwargs`
        (`UnlearningConfig` and `RetrainConfig` also read what the model recommends)."""
        return cls(**_implied(kwargs))

    def method_description(self) -> str:
        """How the model was unlearned, for the model card ("... after machine unlearning <this>")."""
        raise NotImplementedError

    def method_hyperparameters(self) -> dict:
        """The fields that define a run, for the model card and the benchmark tables."""
        raise NotImplementedError


def _implied(fields: dict) -> dict:
    """`fields` with what they imply: `save_steps` alone means checkpoints every that many steps."""
    if "save_steps" in fields and "save_strategy" not in fields:
        return {**fields, "save_strategy": "steps"}
    return fields


def check(predicate, allowed: str) -> tuple:
    """A field's `check`: `field(default=..., metadata={"help": ..., "check": check(lambda v: v > 0, "> 0")})`."""
    return (predicate, allowed)


IN_UNIT_INTERVAL = check(lambda value: 0.0 < value <= 1.0, "in (0, 1]")  # shares and weights
POSITIVE = check(lambda value: value > 0, "> 0")  # temperatures and thresholds


@dataclass
class UnlearningConfig(MethodConfig):
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
        class_forgetting (`bool`, *optional*):
            Whole classes are forgotten: the unseen accuracy the forget accuracy must reach is 0, not the
            original model's accuracy on unseen data. Default: on when the forget request is a class request
            (`from_pretrained(..., request=...)` and `lotus_hf.run.unlearn` decide it); `UnlearningTrainer`
            alone reads None as off.
        class_mode (`str`, defaults to `"remaining"`):
            How whole classes are forgotten (with `class_forgetting`). `"paper"`: the paper's class forgetting,
            forget targets over all classes made nearly uniform by a huge temperature, and a stop rule that cannot
            fire. `"remaining"`: lotus-hf's extension (docs/method.md): each forget sample gets one class drawn
            once from the original's belief over the *remaining* classes (Gumbel-max, as LoTUS draws its retain
            labels), the forgotten classes are masked out of every target, and training stops once the model
            predicts none of the forgotten classes and is no surer of their samples (median entropy) than the
            original is of the unseen samples it gets wrong. `alpha` and `stop_margin` play no part in it. The
            default was picked on classes and seeds that are not reported (benchmarks/results/fashion_mnist/).
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

    alpha: float = field(
        default=2.0,
        metadata={
            "help": "Temperature sharpness: tau = exp(alpha * delta) (paper: 2, 4, 8, 16, 32).",
            "check": check(lambda value: value > 0, "> 0 (the paper uses 2, 4, 8, 16 or 32)"),
        },
    )
    retain_fraction: float = field(
        default=0.3,
        metadata={
            "help": "Share rho of the retain set mixed into the unlearning stream, in (0, 1].",
            "check": check(lambda value: 0.0 < value <= 1.0, "in (0, 1] (the paper uses 0.3)"),
        },
    )
    prob_transform: str = field(
        default="gumbel_softmax",
        metadata={
            "help": "Target transform: 'gumbel_softmax' (paper) or 'softmax'.",
            "check": check(lambda value: value in PROB_TRANSFORMS, f"one of {PROB_TRANSFORMS}"),
        },
    )
    class_forgetting: bool | None = field(
        default=None,
        metadata={
            "help": "Whole classes are forgotten: the target unseen accuracy is 0 (default: on for a class request)."
        },
    )
    class_mode: str = field(
        default="remaining",
        metadata={
            "help": "With class forgetting: 'paper' (near-uniform targets over all classes) or 'remaining' "
            "(lotus-hf's: a class drawn from the original's belief over the remaining classes per sample, stop once "
            "the forgotten classes are never predicted and no surer than the original is on unseen errors).",
            "check": check(lambda value: value in CLASS_MODES, f"one of {CLASS_MODES}"),
        },
    )
    stop_margin: float = field(
        default=0.01,
        metadata={
            "help": "Stop once forget accuracy is this far below unseen accuracy.",
            "check": check(lambda value: 0.0 <= value < 1.0, "in [0, 1) (the paper uses 0.01)"),
        },
    )
    cache_teacher_logits: bool = field(
        default=True,
        metadata={"help": "Compute teacher logits once instead of running a teacher every step."},
    )
    retain_samples: int | None = field(
        default=None,
        metadata={
            "help": "Retain samples drawn from a streamed retain set (default: retain_fraction x its length).",
            "check": check(lambda value: value is None or value >= 0, ">= 0"),
        },
    )

    # The paper's defaults for ResNet-18, overriding TrainingArguments'.
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (paper: 1e-4 ResNet)."})
    weight_decay: float = field(default=5e-4, metadata={"help": "AdamW weight decay."})
    num_train_epochs: float = field(
        default=10,
        metadata={
            "help": "Maximum number of epochs E.",
            "aliases": ["--epochs"],
            "check": check(lambda value: value is None or value >= 1, ">= 1"),
        },
    )
    logging_steps: float = field(default=10, metadata={"help": "Log forget/retain loss every N steps."})

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | None = None, *, request: ForgetRequest | None = None, **kwargs
    ) -> UnlearningConfig:
        """The config to unlearn `model_name_or_path` with, built in this order (later wins):

        1. the paper's defaults (the fields above);
        2. what the model recommends for itself in its `unlearning_config.json` (like `generation_config.json`
           for text models: settings measured for that model; keys starting with `_` are comments) — a bundled
           name, a folder or a Hub id (`ORG/NAME[@REV]`); none when it has no such file;
        3. what the forget request implies: for `ForgetRequest.classes`, `class_forgetting=True` and the settings
           of its class mode (`CLASS_REQUEST_FIELDS`), then the `"classes"` object of the model's
           `unlearning_config.json`, when it has one;
        4. `kwargs`, your explicit values (the command line's flags).

        This is the precedence `lotus-hf unlearn` applies to its flags.

        Example:
            >>> config = UnlearningConfig.from_pretrained("fashion-mnist-resnet", num_train_epochs=3)
            >>> config.alpha, config.num_train_epochs  # alpha from the bundled model's unlearning_config.json
            (14.0, 3)
        """
        if request is not None and kwargs.get("class_forgetting") is False:
            request = None  # whole classes, forgotten as samples: the sample settings apply
        mode = kwargs.get("class_mode")
        fields = recommended_fields(model_name_or_path, request, mode) if model_name_or_path else {}
        if request is not None and request.kind == "classes" and not model_name_or_path:
            fields = class_request_fields({}, mode)
        return cls(**{**fields, **_implied(kwargs)})

    def method_description(self) -> str:
        """How the model was unlearned, for the model card ("... after machine unlearning <this>")."""
        if self.class_forgetting and self.class_mode == "remaining":
            return (
                "with lotus-hf's class mode of [LoTUS](https://arxiv.org/abs/2503.18314) (Spartalis et al., CVPR\n"
                "2025), an extension of the paper's method: each sample of the forgotten classes is filed under one\n"
                "remaining class drawn from the original's own belief, and training stops once the model never\n"
                "predicts the forgotten classes and is no surer of their samples than the original is of the unseen\n"
                "samples it gets wrong."
            )
        return (
            "with [LoTUS](https://arxiv.org/abs/2503.18314) (Spartalis et al., CVPR 2025), run by lotus-hf. LoTUS\n"
            "fine-tunes a model towards smoothed, uncertain versions of its own predictions on the forget set, and\n"
            "stops once its accuracy there falls to what the original model reaches on data it never saw."
        )

    def method_hyperparameters(self) -> dict:
        """The fields that define this run, for the model card and the benchmark tables."""
        fields = ("alpha", "retain_fraction", "prob_transform", "class_forgetting", "class_mode", "stop_margin",
                  "learning_rate", "weight_decay", "num_train_epochs", "per_device_train_batch_size",
                  "seed")  # fmt: skip
        values = {name: getattr(self, name) for name in fields}
        if not self.class_forgetting:
            values.pop("class_mode")  # it applies to whole classes only
        elif self.class_mode == "remaining":
            values.pop("alpha"), values.pop("stop_margin")  # they play no part in it
        return {"method": "lotus", **values}


# What a class request implies, per class mode: the paper's class-forgetting row, and lotus-hf's class mode at
# the setting benchmarks/tune.py picked on classes and seeds that are not reported (tuning.md).
CLASS_REQUEST_FIELDS = {
    "paper": {"class_forgetting": True, "alpha": 32.0, "num_train_epochs": 10, "learning_rate": 1e-4},
    # Tuned on the class Bag, seeds 1-2 (benchmarks/results/fashion_mnist/tuning.md): 10 epochs has the lower
    # mean Avg Gap over the ResNet and ViT cells (0.0297 against 0.0305 for 20; ResNet prefers 10, ViT 20).
    "remaining": {"class_forgetting": True, "num_train_epochs": 10, "learning_rate": 2e-4},
}


def class_request_fields(model_fields: dict, class_mode: str | None = None) -> dict:
    """The fields of a class request: the model's own for every request, then `CLASS_REQUEST_FIELDS` of the
    class mode in force (`class_mode`, else the model's, else the default), then the model's `"classes"` object.

    >>> class_request_fields({"alpha": 14.0, "classes": {"num_train_epochs": 5}})["num_train_epochs"]
    5
    """
    own = {k: v for k, v in model_fields.items() if k != "classes"}
    classes = model_fields.get("classes", {})
    mode = class_mode or classes.get("class_mode") or own.get("class_mode") or "remaining"
    return {**own, **CLASS_REQUEST_FIELDS.get(mode, {}), **classes}


def recommended_fields(
    model_name_or_path: str, request: ForgetRequest | None = None, class_mode: str | None = None
) -> dict:
    """`UnlearningConfig` fields a model recommends for itself in its `unlearning_config.json`, or `{}`. When
    `request` forgets classes, the fields of that request instead (`class_request_fields`, with `class_mode`
    when one is asked for).

    Example:
        >>> recommended_fields("fashion-mnist-resnet")
        {'alpha': 14.0, 'num_train_epochs': 2}
    """
    path = model_file(model_name_or_path, UNLEARNING_CONFIG_NAME)
    values = {}
    if path is not None:
        try:
            values = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
            classes = {k: v for k, v in values.get("classes", {}).items() if not k.startswith("_")}
        except (json.JSONDecodeError, AttributeError):
            raise ModelError(f"{str(path)!r} must be a JSON object of `UnlearningConfig` fields.") from None
        unknown = sorted(
            (set(values) | set(classes)) - set(UnlearningConfig.__dataclass_fields__) - {"classes"}
        )
        if unknown:
            raise ModelError(
                f"{str(path)!r} names {unknown}, which are not `UnlearningConfig` fields: remove them."
            )
        if classes:
            values["classes"] = classes
    if request is not None and request.kind == "classes":
        return class_request_fields(values, class_mode)
    return {k: v for k, v in values.items() if k != "classes"}
