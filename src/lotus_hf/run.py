"""One unlearning run, as `lotus-hf unlearn`, the Space and the benchmark do it: pick the method's config,
run it, time it, evaluate the result, and save it (model, image processor, card, report) for the Hub.

Example:
    >>> from lotus_hf import ForgetRequest, load_image_dataset, load_model, prepare_unlearning_data
    >>> from lotus_hf.run import method_config, save_unlearned, unlearn
    >>> model, processor = load_model("fashion-mnist-resnet")
    >>> request = ForgetRequest.first_percent(10)
    >>> data = prepare_unlearning_data(load_image_dataset("fashion_mnist"), request, processor)  # doctest: +SKIP
    >>> config = method_config("lotus", "fashion-mnist-resnet", request, output_dir="scratch")  # doctest: +SKIP
    >>> result = unlearn(model, data, config, dataset="fashion_mnist")  # doctest: +SKIP
    >>> save_unlearned(result, processor, "my-model-unlearned")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from .baselines import BASELINES, BaselineConfig
from .cards import unlearning_card
from .config import UnlearningConfig
from .data import ForgetRequest, PixelDataset, UnlearningData, collate, preprocess
from .distributed import to_channels_last, whole_model
from .evaluation import UnlearningReport, evaluate_unlearning, predict_logits
from .evidence import verify_outputs
from .hub import ModelError, save_model_folder
from .provenance import HISTORY_KEY, history_step, model_history, weights_sha256
from .trainer import UnlearningTrainer

METHODS = ("lotus", *BASELINES)


def method_config_class(method: str) -> type[UnlearningConfig] | type[BaselineConfig]:
    """`UnlearningConfig` for `lotus`, else the baseline's config class."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    return UnlearningConfig if method == "lotus" else BASELINES[method][0]


def method_config(
    method: str, model: str | None = None, request: ForgetRequest | None = None, **fields
) -> UnlearningConfig | BaselineConfig:
    """The config of `method` (`lotus` or a baseline) for unlearning `request` from `model`: the method's
    defaults, then what the model recommends (LoTUS: its `unlearning_config.json`; retrain: its training
    recipe), then what the request implies, then `fields`. `lotus-hf unlearn` builds its config this way.

    Example:
        >>> method_config("scrub", scrub_temperature=2.0, output_dir="out").scrub_temperature
        2.0
    """
    config_class = method_config_class(method)
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(config_class) if f.init})
    if unknown:
        raise ValueError(
            f"{unknown} are not fields of `{config_class.__name__}` (method {method!r}): check the names "
            f"(`lotus-hf unlearn --method {method} --help-all` lists them)."
        )
    return config_class.from_pretrained(model, request=request, **fields)


@dataclass
class UnlearningResult:
    """What a run produced: the unlearned model (all its weights, on every process), its report (the verdict of
    `lotus_hf.evidence` included), the config and per-epoch history, the trainer (None for SSD, which does not
    train), and what the card and the model's unlearning history record."""

    model: torch.nn.Module
    report: UnlearningReport
    config: UnlearningConfig | BaselineConfig
    history: list[dict]
    trainer: Trainer | None
    base_model: str
    dataset: str | None = None
    previous_steps: list[dict] = field(default_factory=list)  # the unlearning history the original came with
    weights_before: str | None = None  # SHA-256 of the original's weights

    def unlearning_history(self) -> list[dict]:
        """The model's unlearning history after this run: the steps it came with, then this one, which records the
        SHA-256 of the weights before and after (`lotus_hf.provenance`)."""
        settings = self.config.method_hyperparameters()
        step = history_step(self.report.forget, method=settings["method"], settings=settings,
                            base_model=self.base_model, before=self.weights_before,
                            after=weights_sha256(self.model), seed=self.config.seed, dataset=self.dataset)  # fmt: skip
        return [*self.previous_steps, step]

    def model_card(self, model_name: str, lineage: list[dict] | None = None):
        """The unlearned model's `huggingface_hub.ModelCard`."""
        return unlearning_card(model_name=model_name, base_model=self.base_model, config=self.config,
                               forget=self.report.forget, report=self.report.to_dict(),
                               lineage=lineage or self.unlearning_history(), dataset=self.dataset,
                               history=self.history)  # fmt: skip


def unlearn(
    model,
    data: UnlearningData,
    config: UnlearningConfig | BaselineConfig,
    *,
    base_model: str | None = None,
    dataset: str | None = None,
    retrained=None,
    retrain_seconds: float | None = None,
    callbacks: list | None = None,
    original=None,
    probs_out: dict | None = None,
    logits_cache: dict | None = None,
    resume_from_checkpoint: str | bool | None = None,
    reference_probs: dict[str, list] | None = None,
) -> UnlearningResult:
    """Run LoTUS (an `UnlearningConfig`) or a baseline (its config) on `model`, modified in place, and
    evaluate the result against the original (and `retrained`, when given).

    `unlearning_seconds` covers the trainer's set-up (the retain subset), the passes it makes before training
    (unseen accuracy, teacher logits, importances), every probe and every update; not the evaluation.
    `base_model` (default: the model's name) and `dataset` are what the card and the model's unlearning
    history record. Pass `original` to share one frozen copy of the original across runs, and the same dict
    as `logits_cache` to evaluate it and `retrained` once (see `evaluate_unlearning`). `resume_from_checkpoint`
    continues a LoTUS run from a checkpoint (`UnlearningTrainer.train`); the time then covers the resumed part.

    The run ends with the verdict of `lotus_hf.evidence` on data it did not calibrate on (the forget set against
    `data.test`), in `report.verification`. `reference_probs` (`{"forget": [...], "test": [...]}`, softmax outputs
    of models trained without the forget set) adds its per-example test.
    """
    check_model_outputs(model, data.forget)  # a model that cannot work fails before any work
    original = original if original is not None else copy.deepcopy(model).eval()
    base_model = base_model or getattr(model.config, "_name_or_path", None) or "unknown"
    previous, weights_before = model_history(model), weights_sha256(model)
    if isinstance(config, UnlearningConfig) and config.class_forgetting is None:
        config.class_forgetting = data.fingerprint.get("kind") == "classes"
    start = time.perf_counter()
    trainer, history = _run(model, data, config, callbacks, resume_from_checkpoint)
    seconds = time.perf_counter() - start
    unlearned = whole_model(trainer, original) if trainer is not None else model
    probs = probs_out if probs_out is not None else {}
    report = evaluate_unlearning(original, unlearned, data, retrained=retrained, unlearning_seconds=seconds,
                                 retrain_seconds=retrain_seconds, seed=config.seed, probs_out=probs,
                                 logits_cache=logits_cache)  # fmt: skip
    report.notes = [*data.notes, *report.notes]
    hyperparameters = config.method_hyperparameters()
    report.verification = verify_probs(
        probs["unlearned"], data, hyperparameters["method"], reference_probs
    ).to_dict()
    report.training = {
        "method": hyperparameters["method"],
        "hyperparameters": hyperparameters,
        "history": history,
        "stopped_at_epoch": next((e["epoch"] for e in history if e.get("stop")), None),
        "resumed_from": Path(trainer._resume_from).name if getattr(trainer, "_resume_from", None) else None,
    }
    if trainer is not None:  # so that `trainer.push_to_hub()` records the request and the metrics too
        trainer.base_model, trainer.dataset_name = base_model, dataset
        trainer.forget_fingerprint, trainer.report = dict(data.fingerprint), report.to_dict()
    return UnlearningResult(
        unlearned, report, config, history, trainer, base_model, dataset, previous, weights_before
    )


def verify_probs(
    probs: dict, data: UnlearningData, method: str | None = None, reference_probs: dict | None = None
):
    """The verdict on `data`'s forget set from a model's softmax outputs on it and on `data.test` (held out, never
    calibrated on), by split name (`lotus_hf.evidence.verify_outputs`)."""
    references = reference_probs or {}
    with np.errstate(divide="ignore"):  # a probability that underflowed to 0 is a log-probability of -inf
        return verify_outputs(
            np.log(probs["forget"]), data.forget.labels.numpy(), np.log(probs["test"]), data.test.labels.numpy(),
            kind=data.fingerprint.get("kind"), method=method,
            reference_forget=[np.log(p) for p in references.get("forget", [])] or None,
            reference_heldout=[np.log(p) for p in references.get("test", [])] or None,
        )  # fmt: skip


def check_model_outputs(model, images: PixelDataset) -> None:
    """Run `model` on up to 64 of `images` (processed by its image processor) and raise `ModelError`, with the
    fix, when it cannot take them, returns no logits or returns values that are not finite (broken weights):
    before any unlearning or fitting."""
    sample = images.select(np.arange(min(64, len(images))))
    try:
        logits = predict_logits(model, sample)
    except AttributeError as error:  # a backbone (`AutoModel`) or custom code without a classification head
        if "logits" not in str(error):
            raise
        if getattr(getattr(model, "config", None), "return_dict", True) is False:
            raise ModelError(
                f"the model ({type(model).__name__}) returns tuples, not outputs with `logits`: its config has "
                "`return_dict=False`. Set `model.config.return_dict = True` before unlearning."
            ) from None
        raise ModelError(
            f"the model ({type(model).__name__}) returns no `logits`: unlearning needs an image classifier; load "
            "it with `AutoModelForImageClassification` (or `lotus_hf.load_model`), not as a bare backbone."
        ) from None
    except (RuntimeError, ValueError) as error:  # shapes or channels the model does not take
        raise ModelError(
            f"the model cannot take the images as its image processor prepares them "
            f"({str(error).splitlines()[0][:200]}): pass the image processor the model was trained with (its "
            "`preprocessor_config.json`), or a model for images like these."
        ) from None
    if not torch.isfinite(logits).all():
        raise ModelError(
            "the model's outputs on the data set are NaN or infinite before any unlearning: its weights are "
            "broken (load or save it again), or its image processor does not fit these images."
        )


def _run(model, data: UnlearningData, config, callbacks, resume=None) -> tuple[Trainer | None, list[dict]]:
    """Run the method of `config`: its trainer's `train()`, or SSD's function."""
    if isinstance(config, UnlearningConfig):
        trainer = UnlearningTrainer(model, config, forget_dataset=data.forget, retain_dataset=data.retain,
                                    unseen_dataset=data.unseen, callbacks=callbacks)  # fmt: skip
    else:
        run = BASELINES[config.method][1]
        if not isinstance(run, type):  # a method that does not train (SSD)
            return None, [{"epoch": 1, **run(model, data.forget, data.retain, config)}]
        trainer = run(
            model, config, forget_dataset=data.forget, retain_dataset=data.retain, callbacks=callbacks
        )
    trainer.train(**({"resume_from_checkpoint": resume} if resume else {}))
    return trainer, trainer.history


def save_unlearned(result: UnlearningResult, image_processor, output_dir: str | Path) -> Path:
    """Write the unlearned model, its image processor, model card and report.json into the new folder
    `output_dir`, atomically. The model's config keeps its unlearning history (`lotus_hf_unlearning`): a
    model unlearned again lists every base model and forget fingerprint. Push the folder with
    `lotus_hf.hub.push_folder`, as the CLI and the Space do."""
    history = result.unlearning_history()
    setattr(result.model.config, HISTORY_KEY, history)
    card = result.model_card(Path(output_dir).name, history)
    return save_model_folder(output_dir, result.model, image_processor, card, result.report.to_dict())


# ------------------------------------------------------------------------------ plain fine-tuning
def classifier_arguments(
    output_dir: str | Path,
    *,
    epochs: float,
    learning_rate: float = 1e-3,
    weight_decay: float = 5e-4,
    batch_size: int = 128,
    lr_scheduler_type: str = "cosine",
    warmup_ratio: float = 0.0,
    seed: int = 3407,
) -> TrainingArguments:
    """`TrainingArguments` of a plain cross-entropy training run (no checkpoints, no trackers)."""
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=512,
        lr_scheduler_type=lr_scheduler_type,
        warmup_steps=warmup_ratio,  # transformers 5 reads a value below 1 as a ratio
        seed=seed,
        save_strategy="no",
        logging_strategy="epoch",
        report_to="none",
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning without an accelerator only warns
    )


def classifier_loss(outputs, labels, num_items_in_batch=None) -> torch.Tensor:
    """The loss of every image classifier here, from its logits: some heads compute none themselves (DeiT with
    its distillation head is for inference only in transformers). With `num_items_in_batch` (the rows of the
    whole step, every process's), the sum over them: `Trainer` then scales it by the number of processes, and
    DDP's mean of the gradients makes it the mean over all rows."""
    logits = outputs.logits.float()
    if num_items_in_batch is None:
        return torch.nn.functional.cross_entropy(logits, labels)
    return torch.nn.functional.cross_entropy(logits, labels, reduction="sum") / num_items_in_batch


def train_classifier(model, train_dataset, args: TrainingArguments) -> tuple[torch.nn.Module, float]:
    """Train `model` on `{"pixel_values", "labels"}` items with cross-entropy through the ordinary
    `Trainer`; returns `(model in eval mode, seconds)`."""
    trainer = Trainer(
        model=to_channels_last(model, args.device),
        args=args,
        train_dataset=train_dataset,
        data_collator=collate,
        compute_loss_func=classifier_loss,
    )
    start = time.perf_counter()
    trainer.train()
    return trainer.model.eval(), time.perf_counter() - start


def fit_head(
    model, dataset, image_processor, epochs: int = 3, seed: int = 3407, learning_rate: float = 1e-3
) -> float:
    """Fine-tune `model` (with a new head for the data set's classes: `load_model(..., new_head=classes)`)
    on `dataset["train"]`, in place; it then serves as the original to unlearn from. Returns the seconds it
    took."""
    import tempfile

    from accelerate import PartialState

    train = preprocess(dataset["train"], image_processor)
    check_model_outputs(model, train)  # before any training, as for unlearning
    # at least ten steps an epoch on a few hundred images, whatever the number of processes
    batch_size = min(128, max(8, len(train) // (10 * PartialState().num_processes)))
    with tempfile.TemporaryDirectory(prefix="lotus-hf-fit-head-") as work:
        args = classifier_arguments(
            work, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed
        )
        _, seconds = train_classifier(model, train, args)
    return seconds
