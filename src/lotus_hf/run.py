"""One unlearning run, as `lotus-hf unlearn`, the Space and the benchmark do it: pick the method's config,
run it, time it, evaluate the result, and save it (model, image processor, card, report) for the Hub.

Example:
    >>> from lotus_hf import ForgetRequest, load_image_dataset, load_model, prepare_unlearning_data
    >>> from lotus_hf.methods import method_config
    >>> from lotus_hf.run import save_unlearned, unlearn
    >>> model, processor = load_model("fashion-mnist-resnet")
    >>> request = ForgetRequest.first_percent(10)
    >>> data = prepare_unlearning_data(load_image_dataset("fashion_mnist"), request, processor)  # doctest: +SKIP
    >>> config = method_config("lotus", "fashion-mnist-resnet", request, output_dir="scratch")  # doctest: +SKIP
    >>> result = unlearn(model, data, config, dataset="fashion_mnist")  # doctest: +SKIP
    >>> save_unlearned(result, processor, "my-model-unlearned")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer

from .baselines import BaselineConfig
from .config import StreamConfig, UnlearningConfig
from .cost import CostMeter, cost_summary, retraining_cost
from .data import UnlearningData
from .distributed import whole_model
from .errors import ArgumentError
from .evaluation import Evaluation, UnlearningReport, check_model_outputs
from .evidence import verify_outputs
from .hooks import stop_epoch
from .methods import METHODS
from .provenance import HISTORY_KEY, body_change
from .push import Lineage
from .recipe import Recipe
from .saving import save_model_folder
from .verified_stop import VerifiedStop


@dataclass
class UnlearningResult:
    """What a run produced: the unlearned model (all its weights, on every process), its report (the verdict of
    `lotus_hf.evidence` included), the config and per-epoch history, the trainer (None for SSD, which does not
    train), and its lineage (`lotus_hf.push.Lineage`: what the card and the model's unlearning history record)."""

    model: torch.nn.Module
    report: UnlearningReport
    config: UnlearningConfig | BaselineConfig
    history: list[dict]
    trainer: Trainer | None
    lineage: Lineage

    def unlearning_history(self) -> list[dict]:
        """The unlearned model's history: the steps its original came with, plus this run's (request, method,
        settings, base model, seed, SHA-256 of the weights before and after)."""
        return self.lineage.steps(self.config, self.model)

    def model_card(self, model_name: str, lineage: list[dict] | None = None):
        """The unlearned model's `huggingface_hub.ModelCard`, from the report as it is now (notes added after the run,
        such as the CLI's `--fit-head` one, included)."""
        self.lineage.report = self.report.to_dict()
        return self.lineage.card(model_name, self.config, self.history, lineage or self.unlearning_history())


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
    resume_from_checkpoint: str | bool | None = None,
    evaluation: Evaluation | None = None,
) -> UnlearningResult:
    """Run LoTUS (an `UnlearningConfig`) or a baseline (its config) on `model`, modified in place, and
    evaluate the result against the original (and `retrained`, when given).

    `unlearning_seconds` covers the trainer's set-up (the retain subset), the passes it makes before training
    (unseen accuracy, teacher logits, importances), every probe and every update; not the evaluation.
    `base_model` (default: the model's name) and `dataset` are what the card and the model's unlearning
    history record. `resume_from_checkpoint` continues a LoTUS or Belief Relabel run from a checkpoint
    (`UnlearningTrainer.train`); the time then covers the resumed part.

    The run ends with its evaluation against a frozen copy of the original (and `retrained`, when given) and with
    the verdict of `lotus_hf.evidence` on data it did not calibrate on (the forget set against `data.test`), in
    `report.verification`. To unlearn the same request many times (a benchmark, a sweep), pass one
    `lotus_hf.evaluation.Evaluation` of `data` as `evaluation`: it holds the original (and the retrained model and
    reference models' outputs, for the per-example test) and computes their outputs once.
    """
    check_model_outputs(model, data.forget)  # a model that cannot work fails before any work
    if evaluation is None:
        evaluation = Evaluation(data, copy.deepcopy(model).eval(), retrained, seed=config.seed)
    elif retrained is not None and retrained is not evaluation.retrained:
        raise ArgumentError("pass the retrained model to the `Evaluation` (`evaluation.retrained`), not to `unlearn`.")
    original = evaluation.original
    lineage = Lineage.of(model, base_model)
    start = time.perf_counter()
    trainer, history = _run(model, data, config, callbacks, resume_from_checkpoint)
    seconds = time.perf_counter() - start
    unlearned = whole_model(trainer, original) if trainer is not None else model
    report = evaluation(unlearned, unlearning_seconds=seconds, retrain_seconds=retrain_seconds)
    probs = report.probs
    report.notes = [*data.notes, *report.notes]
    hyperparameters = config.method_hyperparameters()
    report.verification = verify_probs(
        probs["unlearned"],
        data,
        hyperparameters["method"],
        evaluation.reference_probs,
        original=probs["original"],
        body_change=body_change(unlearned, original),
    ).to_dict()
    report.cost = _cost(trainer, history, config, data)
    stopped_by, checks = _stopped_by(trainer, history)
    if retrain_seconds is None and config.retrain_epochs:  # the model's own training time, as its recipe recorded
        per_example = Recipe.seconds_per_example(lineage.base_model)
        retrain_seconds = per_example * config.retrain_epochs * len(data.retain) if per_example else None
    report.cost["wall_share"] = seconds / retrain_seconds if retrain_seconds else None
    report.training = {
        "method": hyperparameters["method"],
        "hyperparameters": hyperparameters,
        "history": history,
        "stopped_at_epoch": stop_epoch(history),
        "stopped_by": stopped_by,
        **({"verified_checks": checks} if config.stop_when_verified else {}),
        "resumed_from": Path(trainer.resumed_from).name if getattr(trainer, "resumed_from", None) else None,
    }
    lineage.forget, lineage.dataset, lineage.report = dict(data.fingerprint), dataset, report.to_dict()
    if trainer is not None:  # one lineage: `trainer.push_to_hub()` records the request and the metrics too
        trainer.lineage = lineage
    return UnlearningResult(unlearned, report, config, history, trainer, lineage)


def verify_probs(
    probs: dict,
    data: UnlearningData,
    method: str | None = None,
    reference_probs: dict | None = None,
    original: dict | None = None,
    body_change: float | None = None,
):
    """The verdict on `data`'s forget set from a model's softmax outputs on it and on `data.test` (held out, never
    calibrated on), by split name (`lotus_hf.evidence.verify_outputs`); with the `original` model's outputs, the
    model's utility against it too; with `body_change` (`lotus_hf.provenance.body_change`), the `body_kept` test."""
    references = reference_probs or {}
    with np.errstate(divide="ignore"):  # a probability that underflowed to 0 is a log-probability of -inf
        return verify_outputs(
            np.log(probs["forget"]),
            data.forget.labels.numpy(),
            np.log(probs["test"]),
            data.test.labels.numpy(),
            kind=data.fingerprint.get("kind"),
            method=method,
            reference_forget=[np.log(p) for p in references.get("forget", [])] or None,
            reference_heldout=[np.log(p) for p in references.get("test", [])] or None,
            original_heldout=np.log(original["test"]) if original is not None else None,
            body_change=body_change,
        )


def _cost(trainer, history: list[dict], config, data: UnlearningData) -> dict:
    """The run's cost (`lotus_hf.cost`): the trainer's count, or for SSD its one pass against a retraining."""
    if trainer is not None:
        return trainer.cost.summary()
    epochs = config.retrain_epochs
    return cost_summary(
        history[-1]["cost"], retraining_cost(epochs, len(data.retain)) if epochs else None, config.budget
    )


def _run(model, data: UnlearningData, config, callbacks, resume=None) -> tuple[Trainer | None, list[dict]]:
    """Run the method of `config`: its trainer's `train()`, or SSD's function."""
    run = METHODS[config.method][1]
    if not isinstance(run, type):  # a method that does not train (SSD): one pass, counted whole
        with CostMeter(model) as meter:
            entry = run(model, data.forget, data.retain, config)
        return None, [{"epoch": 1, **entry, "cost": meter.total()}]
    if isinstance(config, StreamConfig):  # LoTUS and Belief Relabel calibrate on unseen data
        trainer = run(
            model,
            config,
            forget_dataset=data.forget,
            retain_dataset=data.retain,
            unseen_dataset=data.unseen,
            callbacks=callbacks,
        )
    else:
        trainer = run(model, config, forget_dataset=data.forget, retain_dataset=data.retain, callbacks=callbacks)
    if config.stop_when_verified:  # its checks count in the run's cost, apart as "checks"
        trainer.add_callback(
            VerifiedStop(
                data.forget,
                data.unseen,
                data.fingerprint.get("kind"),
                trainer.cost.meter,
                config.verify_check_share,
                config.verify_samples,
                config.seed,
            )
        )
    trainer.train(**({"resume_from_checkpoint": resume} if resume else {}))
    return trainer, trainer.history


def _stopped_by(trainer, history: list[dict]) -> tuple[str | None, list[dict]]:
    """What ended a run early (`"budget"`, `"verified"`, the method's own `"rule"`, or None: its epochs ran out),
    and the verifier's in-run checks, if it had them."""
    stops = [c for c in trainer.callback_handler.callbacks if isinstance(c, VerifiedStop)] if trainer else []
    checks = [check for stop in stops for check in stop.checks]
    if trainer is not None and trainer.cost.stopped_by_budget:
        return "budget", checks
    if checks and checks[-1]["verdict"] == "forgotten":
        return "verified", checks
    return ("rule" if any(e.get("stop") for e in history) else None), checks


def save_unlearned(result: UnlearningResult, image_processor, output_dir: str | Path) -> Path:
    """Write the unlearned model, its image processor, model card and report.json into the new folder
    `output_dir`, atomically. The model's config keeps its unlearning history (`lotus_hf_unlearning`): a
    model unlearned again lists every base model and forget fingerprint. Push the folder with
    `lotus_hf.push.push_folder`, as the CLI and the Space do."""
    history = result.unlearning_history()
    setattr(result.model.config, HISTORY_KEY, history)
    card = result.model_card(Path(output_dir).name, history)
    return save_model_folder(output_dir, result.model, image_processor, card, result.report.to_dict())
