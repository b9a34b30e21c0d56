"""The methods LoTUS is compared with (spec/evaluation.md), as a `Trainer` subclass and one config.

Each baseline is the textbook version, fixed where the paper's reference code was wrong: SCRUB returns the
trained student, every model is evaluated in eval mode, SSD leaves BatchNorm statistics alone.

| `method` | what it does |
|---|---|
| `finetune` | cross-entropy on the retain set |
| `neggrad_plus` | per step `beta * CE(retain batch) - (1 - beta) * CE(forget batch)` |
| `random_labels` | cross-entropy on the forget set with fresh random wrong labels every step, plus the retain set |
| `bad_teacher` | KL to an incompetent (randomly initialised) teacher on forget rows, to the original on retain rows |
| `scrub` | alternate max epochs (raise KL(original, student) on the forget set) and min epochs (CE + KL on retain) |
| `ssd` | no training: dampen parameters far more important to the forget set than to all training data |
| `salun` | `random_labels`, updating only the weights most salient to the forget loss |
| `retrain` | train the same architecture from scratch on the retain set (the gold standard) |

LoTUS itself lives in trainer.py; nothing here is imported by it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import AutoModelForImageClassification, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import TrainOutput

from .config import launched_on_cpu
from .data import PixelDataset, collate
from .evaluation import predict_logits
from .trainer import CardMixin, UnlearningStream, to_channels_last

BASELINES = ("finetune", "neggrad_plus", "random_labels", "bad_teacher", "scrub", "ssd", "salun", "retrain")
METHODS = ("lotus", *BASELINES)

# Per method: optimizer, learning rate, weight decay, epochs (spec/evaluation.md; SGD has momentum 0.9).
# Adam is `adamw_torch` with no weight decay. `retrain` defaults to the recipe of `lotus-hf train`.
METHOD_DEFAULTS = {
    "finetune": ("sgd", 1e-3, 5e-4, 5),
    "neggrad_plus": ("sgd", 1e-3, 5e-4, 5),
    "random_labels": ("sgd", 1e-3, 5e-4, 5),
    "salun": ("sgd", 1e-3, 5e-4, 5),
    "bad_teacher": ("adamw_torch", 1e-4, 0.0, 1),
    "scrub": ("adamw_torch", 5e-4, 0.0, 3),
    "ssd": ("sgd", 0.0, 0.0, 1),  # no optimizer step: only the batch size is used
    "retrain": ("adamw_torch", 1e-3, 5e-4, 30),
}


@dataclass
class BaselineConfig(TrainingArguments):
    r"""
    Configuration of a baseline run ([`BaselineTrainer`]): every `TrainingArguments` field, plus `method`
    and its hyper-parameters. `optim`, `learning_rate`, `weight_decay` and `num_train_epochs` default to the
    method's row of `METHOD_DEFAULTS` when left unset.

    Parameters:
        method (`str`, defaults to `"finetune"`): one of `BASELINES`.
        neggrad_beta (`float`, defaults to `0.99`): NegGrad+ weight of the retain loss; the forget loss is
            ascended with weight `1 - beta` (spec: 0.95-0.999).
        retain_fraction (`float`, defaults to `0.3`): Bad Teacher's share of the retain set mixed with the
            forget set.
        bad_teacher_temperature (`float`, defaults to `1.0`): distillation temperature of Bad Teacher.
        scrub_temperature (`float`, defaults to `4.0`): distillation temperature of SCRUB.
        scrub_max_epochs (`int`, defaults to `2`): SCRUB's first epochs that begin with a max pass over the
            forget set (its `msteps`); every epoch then does a min pass over the retain set.
        scrub_ce_weight (`float`, defaults to `0.99`), scrub_kl_weight (`float`, defaults to `0.001`): weights
            of cross-entropy and KL in SCRUB's min step (its `gamma` and `alpha`).
        ssd_alpha (`float`, defaults to `10.0`): SSD selects parameters with `I_forget > alpha * I_all`.
        ssd_lambda (`float`, defaults to `1.0`): SSD multiplies them by `min(lambda * I_all / I_forget, 1)`.
        salun_sparsity (`float`, defaults to `0.1`): share of weights SalUn may update (largest forget-loss
            gradient magnitudes over the whole model).
    """

    method: str = field(default="finetune", metadata={"help": f"Baseline, one of {BASELINES}."})
    neggrad_beta: float = field(default=0.99, metadata={"help": "NegGrad+ retain weight beta."})
    retain_fraction: float = field(default=0.3, metadata={"help": "Bad Teacher's share of the retain set."})
    bad_teacher_temperature: float = field(default=1.0, metadata={"help": "Bad Teacher's temperature."})
    scrub_temperature: float = field(default=4.0, metadata={"help": "SCRUB's distillation temperature."})
    scrub_max_epochs: int = field(default=2, metadata={"help": "SCRUB epochs with a max pass (msteps)."})
    scrub_ce_weight: float = field(default=0.99, metadata={"help": "SCRUB min-step CE weight (gamma)."})
    scrub_kl_weight: float = field(default=0.001, metadata={"help": "SCRUB min-step KL weight (alpha)."})
    ssd_alpha: float = field(default=10.0, metadata={"help": "SSD selection threshold a."})
    ssd_lambda: float = field(default=1.0, metadata={"help": "SSD dampening constant l."})
    salun_sparsity: float = field(default=0.1, metadata={"help": "Share of weights SalUn updates."})
    channels_last: bool = field(default=True, metadata={"help": "Conv models in channels-last format."})

    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints go."})
    optim: str | None = field(default=None, metadata={"help": "Default: the method's (METHOD_DEFAULTS)."})
    learning_rate: float | None = field(default=None, metadata={"help": "Default: the method's."})
    weight_decay: float | None = field(default=None, metadata={"help": "Default: the method's."})
    num_train_epochs: float | None = field(default=None, metadata={"help": "Default: the method's."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Batch size per device."})
    per_device_eval_batch_size: int = field(default=512, metadata={"help": "Batch size of passes."})
    lr_scheduler_type: str | None = field(
        default=None, metadata={"help": "Default constant (retrain: cosine)."}
    )
    save_strategy: str = field(default="no", metadata={"help": "Checkpointing."})
    report_to: str | list[str] = field(default="none", metadata={"help": "Trackers."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep `is_forget` in batches."})

    def __post_init__(self):
        if self.method not in BASELINES:
            raise ValueError(f"`method` must be one of {BASELINES}, got {self.method!r}.")
        checks = (
            ("neggrad_beta", 0.0 < self.neggrad_beta <= 1.0, "(0, 1]"),
            ("retain_fraction", 0.0 < self.retain_fraction <= 1.0, "(0, 1]"),
            ("salun_sparsity", 0.0 < self.salun_sparsity <= 1.0, "(0, 1]"),
            ("ssd_alpha", self.ssd_alpha > 0, "> 0"),
            ("ssd_lambda", self.ssd_lambda > 0, "> 0"),
            ("bad_teacher_temperature", self.bad_teacher_temperature > 0, "> 0"),
            ("scrub_temperature", self.scrub_temperature > 0, "> 0"),
            ("scrub_max_epochs", self.scrub_max_epochs >= 0, ">= 0"),
        )
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"`{name}` must be {allowed}, got {getattr(self, name)}.")
        optim, lr, decay, epochs = METHOD_DEFAULTS[self.method]
        self.optim = optim if self.optim is None else self.optim
        self.learning_rate = lr if self.learning_rate is None else self.learning_rate
        self.weight_decay = decay if self.weight_decay is None else self.weight_decay
        self.num_train_epochs = epochs if self.num_train_epochs is None else self.num_train_epochs
        if self.lr_scheduler_type is None:
            self.lr_scheduler_type = "cosine" if self.method == "retrain" else "constant"
        if self.optim == "sgd" and not self.optim_args:
            self.optim_args = "momentum=0.9"
        self.use_cpu = self.use_cpu or launched_on_cpu()
        if self.output_dir is None:
            self.output_dir = "lotus-hf-output"
        super().__post_init__()
        if self.dataloader_pin_memory and (self.use_cpu or not torch.cuda.is_available()):
            self.dataloader_pin_memory = False

    def method_hyperparameters(self) -> dict:
        """The fields that define this run, for the model card and the benchmark tables."""
        own = {
            "neggrad_plus": ("neggrad_beta",),
            "bad_teacher": ("retain_fraction", "bad_teacher_temperature"),
            "scrub": ("scrub_temperature", "scrub_max_epochs", "scrub_ce_weight", "scrub_kl_weight"),
            "ssd": ("ssd_alpha", "ssd_lambda"),
            "salun": ("salun_sparsity",),
        }.get(self.method, ())
        common = (
            () if self.method == "ssd" else ("optim", "learning_rate", "weight_decay", "num_train_epochs")
        )
        fields = ("method", *own, *common, "per_device_train_batch_size", "seed")
        return {name: getattr(getattr(self, name), "value", getattr(self, name)) for name in fields}


class _BaselineCallback(TrainerCallback):
    def __init__(self, trainer: BaselineTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._prepare()

    def on_epoch_begin(self, args, state, control, **kwargs):
        if args.method == "scrub" and len(self.trainer.history) < args.scrub_max_epochs:
            self.trainer._scrub_max_pass()
        self.trainer.history.append({"epoch": len(self.trainer.history) + 1})

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.trainer.saliency_mask is not None:
            for param, mask in zip(self.trainer.model.parameters(), self.trainer.saliency_mask, strict=True):
                if param.grad is not None:
                    param.grad.mul_(mask)


def fresh_model(config, seed: int) -> torch.nn.Module:
    """A randomly initialised model of `config`, seeded: what `retrain` (and the benchmark's originals and
    gold standards) start from."""
    torch.manual_seed(seed)
    return AutoModelForImageClassification.from_config(copy.deepcopy(config))


class BaselineTrainer(CardMixin, Trainer):
    """Run one of the baselines (`args.method`) on an image classifier, as LoTUS's `UnlearningTrainer` runs.

    Args:
        model: the original model; it becomes the unlearned model (for `retrain`, its weights are
            re-initialised from its config, seeded by `args.seed`, before training).
        args: a `BaselineConfig`.
        forget_dataset, retain_dataset: `{"pixel_values", "labels"}` items (e.g. `UnlearningData.forget`).

    Example:
        >>> config = BaselineConfig(output_dir="out", method="scrub")
        >>> trainer = BaselineTrainer(model, config, forget_dataset=data.forget,
        ...                           retain_dataset=data.retain)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
    """

    _tag_names = ["lotus-hf", "machine-unlearning", "image-classification"]

    def __init__(self, model, args: BaselineConfig, forget_dataset=None, retain_dataset=None, callbacks=None):
        if not isinstance(args, BaselineConfig):
            raise TypeError(f"`args` must be a `BaselineConfig`, got {type(args).__name__}.")
        for name, dataset in (("forget_dataset", forget_dataset), ("retain_dataset", retain_dataset)):
            if dataset is None or len(dataset) == 0:
                raise ValueError(f"`{name}` must be a non-empty data set of `pixel_values`/`labels` items.")
        method = args.method
        if method == "retrain":
            model.load_state_dict(fresh_model(model.config, args.seed).state_dict())
        if args.channels_last:
            to_channels_last(model)
        self.forget_dataset, self.retain_dataset = forget_dataset, retain_dataset
        everything = torch.arange(len(retain_dataset))
        if method in ("finetune", "retrain", "neggrad_plus", "scrub"):  # forget batches come separately
            stream = UnlearningStream([], retain_dataset, everything)
        elif method == "bad_teacher":
            generator = torch.Generator().manual_seed(args.seed)
            size = math.floor(args.retain_fraction * len(retain_dataset))
            chosen = torch.randperm(len(retain_dataset), generator=generator)[:size].sort().values
            stream = UnlearningStream(forget_dataset, retain_dataset, chosen)
        else:  # random_labels, salun: the forget set plus all of the retain set; ssd: both, one pass
            stream = UnlearningStream(forget_dataset, retain_dataset, everything)
        super().__init__(
            model=model, args=args, data_collator=collate, train_dataset=stream, callbacks=callbacks
        )
        self.add_callback(_BaselineCallback(self))
        self.model_accepts_loss_kwargs = False
        self.history: list[dict] = []  # one entry per epoch started
        self.saliency_mask: list[torch.Tensor] | None = None
        self.base_model = getattr(model.config, "_name_or_path", None) or "unknown"
        self._previous_lineage = list(getattr(model.config, "lotus_hf_unlearning", None) or [])
        self.forget_fingerprint: dict = {}
        self.report: dict = {}
        self.dataset_name: str | None = None
        self._generator = torch.Generator().manual_seed(args.seed)
        self._forget_batches = None
        self._forget_logits: torch.Tensor | None = None

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["pixel_values", "labels", "is_forget", "teacher_logits"]

    stopped_at_epoch = None  # baselines have no stop rule

    # ------------------------------------------------------------------------------------ set-up
    def train(self, *args, **kwargs):
        if self.args.method != "ssd":
            return super().train(*args, **kwargs)
        dampened = selective_synaptic_dampening(
            self.model,
            self.forget_dataset,
            self.retain_dataset,
            alpha=self.args.ssd_alpha,
            lam=self.args.ssd_lambda,
            batch_size=self.args.per_device_train_batch_size,
            seed=self.args.seed,
        )
        self.history.append({"epoch": 1, "dampened_parameters": dampened})
        return TrainOutput(global_step=0, training_loss=0.0, metrics={"dampened_parameters": dampened})

    def _prepare(self) -> None:
        """Before the first update: targets that depend only on the original model, computed once."""
        method, batch = self.args.method, self.args.per_device_eval_batch_size
        if method == "bad_teacher":
            torch.manual_seed(self.args.seed)
            incompetent = AutoModelForImageClassification.from_config(self.model.config).to(self.args.device)
            stream, n_forget = self.train_dataset, len(self.forget_dataset)
            retain_part = torch.utils.data.Subset(stream, range(n_forget, len(stream)))
            self.train_dataset.teacher_logits = torch.cat(
                [
                    predict_logits(incompetent, self.forget_dataset, batch),
                    predict_logits(self.model, retain_part, batch),
                ]
            )
        elif method == "scrub":
            self.train_dataset.teacher_logits = predict_logits(self.model, self.train_dataset, batch)
            self._forget_logits = predict_logits(self.model, self.forget_dataset, batch)
        elif method == "salun":
            self.saliency_mask = saliency_mask(
                self.model,
                self.forget_dataset,
                self.args.salun_sparsity,
                self.args.per_device_train_batch_size,
            )

    # ------------------------------------------------------------------------------------ losses
    def _next_forget_batch(self) -> dict[str, torch.Tensor]:
        if self._forget_batches is None:
            self._forget_batches = self._cycle_forget()
        return {k: v.to(self.args.device) for k, v in next(self._forget_batches).items()}

    def _cycle_forget(self):
        while True:
            loader = torch.utils.data.DataLoader(
                self.forget_dataset,
                batch_size=self.args.per_device_train_batch_size,
                shuffle=True,
                generator=self._generator,
                collate_fn=collate,
            )
            yield from loader

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        method = self.args.method
        is_forget = inputs.pop("is_forget").bool()
        labels = inputs.pop("labels")
        targets = inputs.pop("teacher_logits", None)
        if method == "neggrad_plus":
            forget = self._next_forget_batch()
            pixels = torch.cat([inputs["pixel_values"], forget["pixel_values"]])
            logits = model(pixel_values=pixels).logits
            n = len(labels)
            retain_loss = F.cross_entropy(logits[:n], labels)
            forget_loss = F.cross_entropy(logits[n:], forget["labels"])
            beta = self.args.neggrad_beta
            loss = beta * retain_loss - (1 - beta) * forget_loss
            return (loss, logits) if return_outputs else loss
        outputs = model(**inputs)
        logits = outputs.logits
        if method in ("random_labels", "salun"):
            shift = torch.randint(1, logits.shape[-1], labels.shape, generator=self._generator).to(labels)
            labels = torch.where(is_forget, (labels + shift) % logits.shape[-1], labels)
            loss = F.cross_entropy(logits, labels)
        elif method == "bad_teacher":
            loss = distillation_kl(logits, targets, self.args.bad_teacher_temperature)
        elif method == "scrub":
            kl = distillation_kl(logits, targets, self.args.scrub_temperature)
            loss = (
                self.args.scrub_ce_weight * F.cross_entropy(logits, labels) + self.args.scrub_kl_weight * kl
            )
        else:  # finetune, retrain
            loss = F.cross_entropy(logits, labels)
        return (loss, outputs) if return_outputs else loss

    def _scrub_max_pass(self) -> None:
        """One pass over the forget set ascending KL(original || student), with the trainer's optimizer."""
        model, optimizer, T = self.model, self.optimizer, self.args.scrub_temperature
        model.train()
        order = torch.randperm(len(self.forget_dataset), generator=self._generator)
        for start in range(0, len(order), self.args.per_device_train_batch_size):
            rows = order[start : start + self.args.per_device_train_batch_size]
            pixels, _ = _rows(self.forget_dataset, rows)
            logits = model(pixel_values=pixels.to(self.args.device)).logits
            loss = -distillation_kl(logits, self._forget_logits[rows].to(logits.device), T)
            self.accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()


def distillation_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Batch-mean KL(softmax(teacher / T) || softmax(student / T)) * T^2 (Hinton et al.).

    >>> round(float(distillation_kl(torch.zeros(1, 2), torch.zeros(1, 2), 4.0)), 6)
    0.0
    """
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


def _rows(dataset, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel_values, labels) of items `rows`: a tensor slice for a `PixelDataset`, else stacked items."""
    if hasattr(dataset, "pixel_values"):
        return dataset.pixel_values[rows], dataset.labels[rows]
    batch = collate([dataset[int(i)] for i in rows])
    return batch["pixel_values"], batch["labels"]


def _batches(datasets, batch_size: int, seed: int | None = None):
    """Batches of (pixel_values, labels) over `datasets` joined; shuffled (seeded) when `seed` is given, so
    that batches mix rows of every data set as a shuffled training loader does."""
    if len(datasets) == 1:
        joined = datasets[0]
    elif all(isinstance(d, PixelDataset) for d in datasets):  # one tensor: batches are slices, not items
        joined = PixelDataset(
            torch.cat([d.pixel_values for d in datasets]), torch.cat([d.labels for d in datasets])
        )
    else:
        joined = torch.utils.data.ConcatDataset(datasets)
    order = torch.arange(len(joined))
    if seed is not None:
        order = torch.randperm(len(joined), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(order), batch_size):
        yield _rows(joined, order[start : start + batch_size])


def _squared_gradients(model, datasets, batch_size: int, seed: int = 0) -> list[torch.Tensor]:
    """Mean over batches of the squared gradient of the batch cross-entropy (diagonal Fisher estimate), in
    eval mode so that BatchNorm statistics do not move."""
    device = next(model.parameters()).device
    params = [p for p in model.parameters()]
    sums = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    batches = 0
    try:
        for pixels, labels in _batches(datasets, batch_size, seed):
            model.zero_grad(set_to_none=True)
            logits = model(pixel_values=pixels.to(device)).logits
            F.cross_entropy(logits, labels.to(device)).backward()
            for total, param in zip(sums, params, strict=True):
                if param.grad is not None:
                    total.add_(param.grad.detach() ** 2)
            batches += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [total / max(batches, 1) for total in sums]


@torch.no_grad()
def _dampen(params, forget_importance, all_importance, alpha: float, lam: float) -> int:
    changed = 0
    for param, i_f, i_d in zip(params, forget_importance, all_importance, strict=True):
        selected = i_f > alpha * i_d
        factor = torch.clamp(lam * i_d / i_f.clamp_min(1e-30), max=1.0)
        param.mul_(torch.where(selected, factor, torch.ones_like(factor)))
        changed += int(selected.sum())
    return changed


def selective_synaptic_dampening(
    model, forget, retain, alpha: float = 10.0, lam: float = 1.0, batch_size: int = 128, seed: int = 0
) -> int:
    """SSD (Foster et al., 2024), in place: parameters whose importance on `forget` exceeds `alpha` times
    their importance on all training data (`forget` and `retain`) are multiplied by
    `min(lam * I_all / I_forget, 1)`. Importance is the diagonal Fisher estimate of `_squared_gradients`.
    Batches of all training data are shuffled (seeded), as the SSD authors' training loader is: with
    batches of forget rows only, `I_all` could never fall below a tenth of `I_forget` for a 10% forget set,
    and `alpha = 10` would select nothing. Returns how many scalars were dampened."""
    forget_importance = _squared_gradients(model, [forget], batch_size, seed)
    all_importance = _squared_gradients(model, [forget, retain], batch_size, seed)
    return _dampen(list(model.parameters()), forget_importance, all_importance, alpha, lam)


def saliency_mask(model, forget, sparsity: float = 0.1, batch_size: int = 128) -> list[torch.Tensor]:
    """SalUn's weight saliency (Fan et al., 2024): 1 for the `sparsity` share of all weights with the largest
    |gradient of the forget-set cross-entropy| (one threshold over the whole model), 0 elsewhere."""
    device = next(model.parameters()).device
    grads = [torch.zeros_like(p) for p in model.parameters()]
    was_training = model.training
    model.eval()
    try:
        for pixels, labels in _batches([forget], batch_size):
            model.zero_grad(set_to_none=True)
            logits = model(pixel_values=pixels.to(device)).logits
            F.cross_entropy(logits, labels.to(device), reduction="sum").backward()
            for total, param in zip(grads, model.parameters(), strict=True):
                if param.grad is not None:
                    total.add_(param.grad.detach())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    magnitudes = torch.cat([g.abs().flatten() for g in grads])
    keep = max(1, int(round(sparsity * magnitudes.numel())))
    threshold = torch.topk(magnitudes, keep, sorted=False).values.min()
    return [(g.abs() >= threshold).to(g.dtype) for g in grads]
