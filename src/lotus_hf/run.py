"""One unlearning run, as `lotus-hf unlearn`, the Space and the benchmark do it: pick the method's config,
run it, time it, evaluate the result, and save it (model, image processor, card, report) for the Hub.
`unlearn_from_arguments` is the whole of `lotus-hf unlearn` from its parsed arguments: models and data by name,
one seed, checkpoints, the run, the saved folder and the push.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer

from .arguments import DataArguments, ForgetArguments, UnlearnArguments, default_output
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
from .version import __version__


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
    lineage.forget, lineage.dataset, lineage.report = dict(data.fingerprint), dataset, report
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
    calibrated on; with its outputs on `data.unseen`, the `heldout_unseen_*` tests too), by split name
    (`lotus_hf.evidence.verify_outputs`); with the `original` model's outputs, the model's utility against it too;
    with `body_change` (`lotus_hf.provenance.body_change`), the `body_kept` test."""
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
            calibration_log_probs=np.log(probs["unseen"]) if "unseen" in probs else None,
            calibration_labels=data.unseen.labels.numpy() if "unseen" in probs else None,
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


@dataclass
class NamedRun:
    """What `unlearn_from_arguments` did: the run's result, the folder it saved (None on every process but the
    first) and the Hub URL it pushed to (None when not asked)."""

    result: UnlearningResult
    path: Path | None
    pushed: str | None


def unlearn_from_arguments(
    run: UnlearnArguments,
    data_args: DataArguments,
    forget: ForgetArguments,
    method: str,
    fields: dict,
    scratch: str,
    say: Callable[..., None] = print,
) -> NamedRun:
    """`lotus-hf unlearn` from its parsed arguments: load the model and data set by name (fitting a new head with
    `--fit-head`), take one seed (the flag's, else the model's recommended one, else lotus-hf's) for the request,
    the splits, the head and the run, run `method` with `fields` over what the model recommends, then save the
    folder atomically into `run.output_dir` and push it when asked. The trainer works in `scratch` unless the run
    keeps checkpoints, which go into the run's own folder, marked unfinished until the model is in. `say` reports
    progress (the CLI's: the first process prints)."""
    from accelerate import PartialState

    from .data import class_names_of, load_image_dataset, prepare_unlearning_data
    from .loading import check_labels, load_model
    from .methods import default_method, method_config, recommended_fields
    from .names import hub_id, split_revision
    from .provenance import check_trained_without
    from .push import check_push_token, push_folder
    from .recipe import fit_head
    from .requests import DEFAULT_SEED
    from .saving import check_same_run, open_output_dir, start_run_folder

    output_dir = run.output_dir or default_output(f"{Path(split_revision(run.model)[0]).name}-unlearned")
    unfinished = open_output_dir(output_dir, run.resume)
    if run.push_to_hub:
        if not hub_id(run.push_to_hub):
            raise ArgumentError(f"`--push-to-hub` must be a Hub repo id, ORG/NAME, got {run.push_to_hub!r}.")
        check_push_token()  # before any work: a run must not end in a push that cannot happen
    model_name = f"{run.model}@{run.revision}" if run.revision else run.model
    kind = forget.kind()
    seed = fields.get("seed", recommended_fields(model_name, method, kind).get("seed", DEFAULT_SEED))
    model, processor = load_model(run.model, run.revision)
    base_model = model.config.name_or_path  # `name@revision` when a revision was asked for
    dataset = load_image_dataset(
        data_args.dataset, image_column=data_args.image_column, label_column=data_args.label_column
    )
    request = forget.request(seed, default_percent=10, limit=len(dataset["train"]) if "train" in dataset else None)
    class_names = class_names_of(dataset)
    fitted = None
    if run.fit_head:
        from transformers import set_seed

        set_seed(seed)  # the new head's initial weights, so that the fitted original is reproducible
        model, _ = load_model(run.model, run.revision, new_head=class_names)
        say(f"fitting a new head for {len(class_names)} classes on the training split ({run.fit_head_epochs} epochs)")
        seconds = fit_head(model, dataset, processor, epochs=run.fit_head_epochs, seed=seed)
        say(f"head fitted in {seconds:.0f} s; this fine-tuned model is the original to unlearn from")
        fitted = (
            f"The original is {run.model} with a new head for the data set's {len(class_names)} classes, "
            f"fine-tuned on its training split for {run.fit_head_epochs} epochs (--fit-head) before unlearning."
        )
    check_labels(model, class_names)
    # The config comes after the models: under DeepSpeed ZeRO-3 it turns on `zero.Init`, whose partitioned
    # weights transformers 5.24 cannot initialise for every model (ResNet); DeepSpeed shards them later.
    given = {"logging_strategy": "no", "disable_tqdm": run.quiet, **fields, "output_dir": scratch}
    config = method_config(method, model_name, request, **given)  # its seed is `seed`: the same layers set both
    say(f"lotus-hf {__version__}: unlearning {request.describe()} of {data_args.dataset} from {run.model}", flush=True)
    used = {k: getattr(config, k) for k, layer in config.field_sources.items() if layer == "model"}
    if used:
        say(
            f"settings the model's {config.recommended_by} (or the request) gives: "
            f"{', '.join(f'{k}={v}' for k, v in used.items())} (flags override them)"
        )
    say(_method_line(config), flush=True)
    if run.method is None and method != default_method(kind):  # the model's own default, not lotus-hf's
        say(
            f"(no --method: {method} is {run.model}'s default for {kind[:-1]} requests, the method its budgeted "
            "benchmark verified `forgotten` most often within 10% of a retraining; its unlearning_config.json says "
            "so. `--method lotus` runs LoTUS.)"
        )
    data = prepare_unlearning_data(dataset, request, processor, seed=config.seed)
    record = {
        "model": base_model,
        "dataset": data_args.dataset,
        "method": method,
        "request": request.describe(),
        "sha256": data.fingerprint["sha256"],
        "seed": config.seed,
    }
    checkpoints = run.resume or config.save_strategy != "no"
    if unfinished is not None:
        check_same_run(output_dir, unfinished, record)
    if checkpoints and not config.resumable:
        raise ArgumentError(
            f"`--save-steps` and `--resume` are for LoTUS and Belief Relabel runs; drop them for `--method {method}`."
        )
    main = PartialState().is_main_process
    if checkpoints:  # the checkpoints go into the run's own folder, marked unfinished until the model is in
        config.output_dir = output_dir
        if unfinished is None and main:
            start_run_folder(output_dir, record)
    retrained = None
    if run.retrained:
        warning = check_trained_without(run.retrained, data.fingerprint)
        if warning:
            say(f"warning: {warning}")
        retrained = load_model(run.retrained)[0]
    say(f"forget {len(data.forget)}, retain {len(data.retain)}, unseen {len(data.unseen)}, test {len(data.test)}")
    try:
        result = unlearn(
            model,
            data,
            config,
            base_model=base_model,
            dataset=data_args.dataset,
            retrained=retrained,
            resume_from_checkpoint=run.resume or None,
        )
    except KeyboardInterrupt:
        if checkpoints:
            message = f"the unfinished run in {output_dir} continues with the same command and --resume"
            raise KeyboardInterrupt(message) from None
        raise
    if fitted:
        result.report.notes.insert(0, fitted)
    if not main:  # under `accelerate launch`, one process writes
        return NamedRun(result, None, None)
    path = save_unlearned(result, processor, output_dir)
    pushed = push_folder(path, run.push_to_hub, private=run.private) if run.push_to_hub else None
    return NamedRun(result, path, pushed)


def _method_line(config) -> str:
    """What runs, in one line: the method's name, the settings that matter, and what stops it."""
    stops = []
    if config.budget is not None:
        stops.append(f"at {config.budget:.0%} of a retraining's cost")
    if config.stop_when_verified:
        stops.append("as soon as the verifier's checks say forgotten")
    return config.summary() + (f"; stops {', or '.join(stops)}" if stops else "")
