"""`UnlearningConfig`: `TrainingArguments` plus the LoTUS fields, with the paper's defaults (docs/method.md).

Configs declare their real defaults as fields and check values in `__post_init__`; they read no file. Which
settings a run starts from (the model's `unlearning_config.json`, a `--config` file, flags) is layered by
`lotus_hf.methods.method_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from transformers import TrainingArguments

from ._compat import launched_on_cpu
from .errors import ArgumentError
from .losses import PROB_TRANSFORMS, STOP_RULES
from .requests import DEFAULT_SEED

# What a config's `checks` hold per field: (predicate, the allowed values), applied by `__post_init__`.
IN_UNIT_INTERVAL = (lambda value: 0.0 < value <= 1.0, "in (0, 1]")  # shares and weights
POSITIVE = (lambda value: value > 0, "> 0")  # temperatures and thresholds


@dataclass
class MethodConfig(TrainingArguments):
    """What the config of every unlearning method shares: `TrainingArguments` with the defaults of an unlearning
    run (the paper's seed, batch 128, no learning-rate schedule, no checkpoints, no trackers, no gradient
    clipping as in the LoTUS paper's code) and `channels_last`. `checks` maps a field to `(predicate, "the
    allowed values")`: `__post_init__` refuses other values, naming the field. Pushes to the Hub are one commit at the
    end (`hub_strategy` is always "end"), through `trainer.push_to_hub()`."""

    method: ClassVar[str] = ""  # the method's name in lotus_hf.methods.METHODS
    resumable: ClassVar[bool] = False  # whether `--save-steps` checkpoints can be continued with `--resume`
    trains: ClassVar[bool] = True  # False for a method that edits the weights in one pass, with no optimizer step
    recommended_by: ClassVar[str] = "unlearning_config.json"  # the model's file that recommends its fields
    checks: ClassVar[dict] = {}

    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints and the model go."})
    seed: int = field(
        default=DEFAULT_SEED, metadata={"help": "Seed of the data splits and the run (paper: 3407, 13, 12)."}
    )
    per_device_train_batch_size: int = field(
        default=128, metadata={"help": "Batch size per device.", "aliases": ["--batch-size"]}
    )
    per_device_eval_batch_size: int = field(default=512, metadata={"help": "Batch size of probes and passes."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "Learning-rate schedule (paper: none)."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpointing; the result is saved at the end."})
    report_to: str | list[str] = field(default="none", metadata={"help": "Trackers to report to."})
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Must stay False: the loss reads the batches' `is_forget` and targets."},
    )
    channels_last: bool = field(
        default=True, metadata={"help": "Train conv models in channels-last memory format (faster)."}
    )
    max_grad_norm: float = field(
        default=0.0,
        metadata={"help": "Clip gradients to this norm; 0 (default) clips none, as the paper's code does."},
    )
    budget: float | None = field(
        default=None,
        metadata={
            "help": "Stop once the run has cost this share of a retraining (0.1: a tenth; lotus_hf.cost counts "
            "it). Needs `retrain_epochs`."
        },
    )
    budget_checkpoints: list[float] = field(
        default_factory=list,
        metadata={"help": "Shares of a retraining, below `budget`, at which a checkpoint is saved on the way."},
    )
    stop_when_verified: bool = field(
        default=False,
        metadata={
            "help": "Also stop as soon as the verifier's tests, run on the calibration half of the held-out "
            "data (never the half of the final verdict), say `forgotten` (lotus_hf.verified_stop)."
        },
    )
    verify_check_share: float = field(
        default=0.05,
        metadata={
            "help": "With `stop_when_verified`: the largest share of the run's cost its checks may take; a "
            "check runs after a step as soon as it fits (lotus_hf.cost.CostMeter.affords)."
        },
    )
    verify_samples: int | None = field(
        default=1000,
        metadata={"help": "With `stop_when_verified`: forget and calibration rows each check reads (None: all)."},
    )
    retrain_epochs: float | None = field(
        default=None,
        metadata={
            "help": "Epochs of a retraining of the model on the retain set (its training recipe's), for "
            "`budget` and the run's cost as a share of a retraining. `lotus-hf unlearn` reads them from "
            "the model's training_recipe.json."
        },
    )

    def __post_init__(self):
        for name, (ok, allowed) in self.checks.items():
            if not ok(getattr(self, name)):
                raise ArgumentError(f"`{name}` must be {allowed}, got {getattr(self, name)!r}.")
        if self.budget is not None and not self.budget > 0:
            raise ArgumentError(f"`budget` must be > 0 (a share of a retraining, 0.1 for 10%), got {self.budget!r}.")
        if not 0 < self.verify_check_share < 1:
            raise ArgumentError(
                f"`verify_check_share` must be in (0, 1) (0.05: checks take at most 5% of the run), "
                f"got {self.verify_check_share!r}."
            )
        if self.verify_samples is not None and self.verify_samples < 2:
            raise ArgumentError(f"`verify_samples` must be >= 2, or None for all, got {self.verify_samples!r}.")
        if self.retrain_epochs is not None and not self.retrain_epochs > 0:
            raise ArgumentError(f"`retrain_epochs` must be > 0, got {self.retrain_epochs!r}.")
        if self.budget is not None and self.retrain_epochs is None:
            raise ArgumentError(
                "`budget` needs `retrain_epochs`, the epochs a retraining of this model takes: give it, or unlearn "
                "a model whose training_recipe.json records them."
            )
        self.budget_checkpoints = sorted(float(b) for b in self.budget_checkpoints or [])
        if self.budget_checkpoints and (
            self.budget is None or self.budget_checkpoints[-1] >= self.budget or self.budget_checkpoints[0] <= 0
        ):
            raise ArgumentError(
                f"`budget_checkpoints` must be shares in (0, `budget`), got {self.budget_checkpoints!r} with "
                f"`budget` {self.budget!r}."
            )
        if self.remove_unused_columns:
            raise ArgumentError(
                "`remove_unused_columns` must be False: an unlearning loss reads the batches' `is_forget`, teacher "
                "logits and targets, which the model's forward does not take."
            )
        self.use_cpu = self.use_cpu or launched_on_cpu()
        if self.output_dir is None:
            self.output_dir = "lotus-hf-output"
        # One commit at the end (`push_to_hub()`, lotus_hf.push.push_folder), never a push per checkpoint.
        self.hub_strategy = "end"
        super().__post_init__()
        if self.dataloader_pin_memory and (self.use_cpu or not torch.cuda.is_available()):
            self.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns on every epoch

    def method_hyperparameters(self) -> dict:
        """The fields that define a run, for the model card, the history and the benchmark tables."""
        raise NotImplementedError

    def summary(self) -> str:
        """What runs, in one line (`lotus-hf unlearn` prints it): the method and the settings that matter."""
        hyper = self.method_hyperparameters()
        return f"{self.method}: " + ", ".join(f"{k} {v}" for k, v in hyper.items() if k not in ("method", "seed"))

    def card_description(self) -> str:
        """How the model was unlearned, for its card ("... after machine unlearning <this>")."""
        return f"with lotus-hf's `{self.method}` method."


@dataclass
class StreamConfig(MethodConfig):
    """What LoTUS and lotus-hf's Belief Relabel share: a stream of the forget set and a seeded share of the retain
    set, whose targets come from the original (a teacher), trained with AdamW at a constant learning rate."""

    retain_fraction: float = field(
        default=0.3,
        metadata={
            "help": "Share rho of the retain set mixed into the unlearning stream, in (0, 1].",
        },
    )
    prob_transform: str = field(
        default="gumbel_softmax",
        metadata={
            "help": "Target transform: 'gumbel_softmax' (paper) or 'softmax'.",
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
        },
    )
    logging_steps: float = field(default=10, metadata={"help": "Log forget/retain loss every N steps."})
    probe_share: float = field(
        default=0.05,
        metadata={
            "help": "Paced probes (LoTUS's bound rule, Belief Relabel's stop): the largest share of the run's cost "
            "they may take; a probe runs after a step as soon as it fits."
        },
    )
    probe_samples: int | None = field(
        default=1000,
        metadata={"help": "Paced probes read a seeded subset of this many forget samples (all: None)."},
    )

    resumable: ClassVar[bool] = True  # `--save-steps` checkpoints hold its run state; `--resume` continues them
    checks: ClassVar[dict] = {
        "retain_fraction": (lambda value: 0.0 < value <= 1.0, "in (0, 1] (the paper uses 0.3)"),
        "prob_transform": (lambda value: value in PROB_TRANSFORMS, f"one of {PROB_TRANSFORMS}"),
        "retain_samples": (lambda value: value is None or value >= 0, ">= 0"),
        "num_train_epochs": (lambda value: value is None or value >= 1, ">= 1"),
        "probe_share": (lambda value: 0 < value < 1, "in (0, 1) (0.05: probes take at most 5% of the run)"),
        "probe_samples": (lambda value: value is None or value >= 1, ">= 1, or None for the whole forget set"),
    }

    def method_hyperparameters(self) -> dict:
        fields = (
            "retain_fraction",
            "prob_transform",
            "learning_rate",
            "weight_decay",
            "num_train_epochs",
            "per_device_train_batch_size",
            "seed",
        )
        return {"method": self.method, **{name: getattr(self, name) for name in fields}}


@dataclass
class UnlearningConfig(StreamConfig):
    r"""
    Configuration of the [`UnlearningTrainer`] (LoTUS): every `TrainingArguments` field, plus those of LoTUS.

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
            The paper's class forgetting: the unseen accuracy the forget accuracy must reach is 0, not the original
            model's accuracy on unseen data. `lotus_hf.methods.method_config` turns it on, with the paper's class
            row (`PAPER_CLASS_FIELDS`), for a class request. lotus-hf's own way to forget classes is another method,
            Belief Relabel (`lotus_hf.belief_relabel`).
        stop_margin (`float`, defaults to `0.01`):
            The paper's rule stops training before an epoch once `delta <= -stop_margin`; the bound rule at the
            first probe where `delta <= stop_margin`.
        stop_rule (`str`, defaults to `"bound"`):
            `"bound"`, lotus-hf's extension (not the paper's): the forget accuracy is probed after a step as soon as
            the probes' cost fits `probe_share` of the run's (on a seeded subset of `probe_samples` forget samples;
            the first probe before any update), tau follows each probe, and
            training stops at the first probe where the forget accuracy has reached the original's unseen accuracy
            within `stop_margin`, keeping the weights it probed. `"paper"`: one probe on the whole forget set
            before each epoch, stopping once the forget accuracy is `stop_margin` below the unseen accuracy.
        probe_share (`float`, defaults to `0.05`), probe_samples (`int`, defaults to `1000`):
            The bound rule's probes: the largest share of the run's cost (`lotus_hf.cost`) they may take, and on
            how many forget samples each reads (all of them: None). The stop costs at most this share.
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

    method = "lotus"

    alpha: float = field(
        default=2.0,
        metadata={
            "help": "Temperature sharpness: tau = exp(alpha * delta) (paper: 2, 4, 8, 16, 32).",
        },
    )
    class_forgetting: bool = field(
        default=False,
        metadata={
            "help": "The paper's class forgetting: the target unseen accuracy is 0 (a class request with LoTUS "
            "turns it on)."
        },
    )
    stop_margin: float = field(
        default=0.01,
        metadata={
            "help": "The paper's rule stops once forget accuracy is this far below unseen accuracy; the bound rule "
            "once it is at most this far above.",
        },
    )
    stop_rule: str = field(
        default="bound",
        metadata={
            "help": "'bound' (lotus-hf's extension: probe as often as `probe_share` of the cost allows, stop at the "
            "first probe that reaches the unseen accuracy) or 'paper' (probe before each epoch, stop once below it).",
        },
    )

    checks: ClassVar[dict] = {
        **StreamConfig.checks,
        "alpha": (lambda value: value > 0, "> 0 (the paper uses 2, 4, 8, 16 or 32)"),
        "stop_margin": (lambda value: 0.0 <= value < 1.0, "in [0, 1) (the paper uses 0.01)"),
        "stop_rule": (lambda value: value in STOP_RULES, f"one of {STOP_RULES}"),
    }

    def summary(self) -> str:
        rule = (
            f"; lotus-hf's bound stop, an extension of the paper (probes take at most {self.probe_share:.0%} of "
            "the cost; --stop-rule paper for the paper's)"
            if self.stop_rule == "bound"
            else "; the paper's stop rule"
        )
        return (
            f"LoTUS: alpha {self.alpha}, {self.num_train_epochs:g} epochs at most, lr {self.learning_rate:g}"
            + (" (the paper's class forgetting)" if self.class_forgetting else "")
            + rule
        )

    def card_description(self) -> str:
        return (
            "with [LoTUS](https://arxiv.org/abs/2503.18314) (Spartalis et al., CVPR 2025), run by lotus-hf. LoTUS\n"
            "fine-tunes a model towards smoothed, uncertain versions of its own predictions on the forget set, and\n"
            "stops once its accuracy there falls to what the original model reaches on data it never saw"
            + (" (the paper's class forgetting: 0)." if self.class_forgetting else ".")
            + (
                "\nIt ran with lotus-hf's bound stop, an extension of the paper's rule: the forget accuracy was\n"
                f"probed as often as {self.probe_share:.0%} of the run's cost allowed, and training stopped at the\n"
                "first probe that reached the unseen accuracy, keeping the weights it measured."
                if self.stop_rule == "bound"
                else ""
            )
        )

    def method_hyperparameters(self) -> dict:
        values = super().method_hyperparameters()
        rule = {"stop_rule": self.stop_rule}
        if self.stop_rule == "bound":
            rule.update(probe_share=self.probe_share, probe_samples=self.probe_samples)
        return {
            **values,
            "alpha": self.alpha,
            "class_forgetting": self.class_forgetting,
            "stop_margin": self.stop_margin,
            **rule,
        }


# The paper's row for forgetting whole classes with LoTUS (ResNet-18): what a class request starts from.
PAPER_CLASS_FIELDS = {
    "class_forgetting": True,
    "alpha": 32.0,
    "num_train_epochs": 10,
    "learning_rate": 1e-4,
    "stop_rule": "paper",
}
