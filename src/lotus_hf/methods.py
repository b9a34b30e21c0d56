"""The unlearning methods of lotus-hf by name, and the settings a run of one starts from.

`lotus` is the paper's method (`UnlearningTrainer`), for samples and, with the paper's class-forgetting row,
for whole classes; `belief_relabel` is lotus-hf's own method for whole classes (`lotus_hf.belief_relabel`); the
rest are the baselines it is compared with (`lotus_hf.baselines`). A run's settings are layered, later winning:

1. the method's defaults (its config's fields: the paper's, for LoTUS);
2. for LoTUS on a class request, the paper's class-forgetting row (`PAPER_CLASS_FIELDS`);
3. what the model recommends for itself in its `unlearning_config.json` (like `generation_config.json` for text
   models), under the method's name (LoTUS's `"classes"` object for class requests); a retraining, the model's
   own training recipe;
4. what you give: a `--config` file, then flags (`lotus-hf unlearn` layers those two).

Example:
    >>> method_config("lotus", "fashion-mnist-resnet", output_dir="scratch").learning_rate  # the model's own setting
    0.003
"""

from __future__ import annotations

import dataclasses
import json

from .baselines import BASELINES
from .belief_relabel import BeliefRelabelConfig, BeliefRelabelTrainer
from .config import PAPER_CLASS_FIELDS, UnlearningConfig
from .errors import ArgumentError, ModelError
from .loading import model_file
from .recipe import Recipe
from .requests import ForgetRequest
from .trainer import UnlearningTrainer

# name -> (config class, trainer class, or for SSD, which does not train, a function)
METHODS = {
    "lotus": (UnlearningConfig, UnlearningTrainer),
    "belief_relabel": (BeliefRelabelConfig, BeliefRelabelTrainer),
    **BASELINES,
}
UNLEARNING_CONFIG_NAME = "unlearning_config.json"


def _kind(request: ForgetRequest | str | None) -> str:
    """A request's kind as the settings see it: "classes" or "samples" (a request, or its kind already)."""
    kind = request if isinstance(request, str) or request is None else request.kind
    return "classes" if kind == "classes" else "samples"


def default_method(request: ForgetRequest | str | None, model: str | None = None) -> str:
    """The method a request (or a request's kind, "classes" or "samples") runs unless another is asked for: the one
    `model`'s `unlearning_config.json` names for the request's kind under `"default"` (the bundled models': the
    method their budgeted benchmark verified `forgotten` most often within 10% of a retraining), else Belief Relabel
    for whole classes (LoTUS's own rule cannot stop there; docs/method.md) and LoTUS for samples."""
    kind = _kind(request)
    named = _model_defaults(model).get(kind) if model else None
    return named or ("belief_relabel" if kind == "classes" else "lotus")


def _model_defaults(model: str) -> dict[str, str]:
    """`"default"` of the model's `unlearning_config.json`: request kind ("samples", "classes") -> method."""
    path = model_file(model, UNLEARNING_CONFIG_NAME)
    if path is None:
        return {}
    try:
        defaults = json.loads(path.read_text()).get("default", {})
    except (json.JSONDecodeError, AttributeError):
        raise ModelError(f"{str(path)!r} must be a JSON object of method names to config fields.") from None
    if (
        not isinstance(defaults, dict)
        or not set(defaults) <= {"samples", "classes"}
        or not set(defaults.values()) <= set(METHODS)
    ):
        raise ModelError(
            f'{str(path)!r}: `default` must map "samples" and "classes" to methods of '
            f"{tuple(METHODS)}, got {defaults!r}."
        )
    return defaults


def method_config_class(method: str):
    if method not in METHODS:
        raise ArgumentError(f"`method` must be one of {tuple(METHODS)}, got {method!r}.")
    return METHODS[method][0]


def recommended_fields(model: str | None, method: str, request: ForgetRequest | str | None = None) -> dict:
    """The fields `model` recommends for `method` (its `unlearning_config.json`; for `retrain`, its training
    recipe); for a class request, the method's `"classes"` fields over them (LoTUS's class-forgetting row under
    both); `{}` for none.

    Every method also gets `retrain_epochs` from the model's training recipe, so that its cost is a share of a
    retraining and a `budget` can be kept.

    >>> fields = recommended_fields("fashion-mnist-resnet", "lotus")
    >>> fields["retrain_epochs"], fields["learning_rate"], fields["budget"]
    (30, 0.003, 0.1)
    """
    classes = _kind(request) == "classes"
    recipe = Recipe.of_model(model) if model else None
    retraining = {"retrain_epochs": recipe.epochs} if recipe is not None else {}
    if method == "retrain":
        if recipe is None:
            return {}
        return {
            **retraining,
            **recipe.training_fields(),
            **({"pretrained": recipe.pretrained} if recipe.pretrained else {}),
        }
    section = _model_sections(model).get(method, {}) if model else {}
    own = {k: v for k, v in section.items() if k != "classes"}
    if not classes:
        return {**retraining, **own}
    paper = PAPER_CLASS_FIELDS if method == "lotus" else {}  # LoTUS's class row, under the model's own
    return {**retraining, **own, **paper, **section.get("classes", {})}


def _model_sections(model: str) -> dict[str, dict]:
    """The model's `unlearning_config.json` as method -> fields (keys starting with `_` are comments). A file of
    lotus-hf 0.1 holds LoTUS's fields at its top level."""
    path = model_file(model, UNLEARNING_CONFIG_NAME)
    if path is None:
        return {}
    try:
        values = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_") and k != "default"}
        if values and not set(values) <= set(METHODS):
            values = {"lotus": values}
        sections = {m: _fields(m, f) for m, f in values.items()}
    except (json.JSONDecodeError, AttributeError, TypeError):
        raise ModelError(f"{str(path)!r} must be a JSON object of method names to config fields.") from None
    unknown = {m: sorted(set(f) - _field_names(m) - {"classes"}) for m, f in sections.items()}
    unknown = {m: names for m, names in unknown.items() if names}
    if unknown:
        raise ModelError(f"{str(path)!r} names fields its methods' configs lack, {unknown}: remove them.")
    return sections


def _fields(method: str, fields: dict) -> dict:
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    if isinstance(fields.get("classes"), dict):
        fields["classes"] = {k: v for k, v in fields["classes"].items() if not k.startswith("_")}
    return fields


def _field_names(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(method_config_class(method)) if f.init}


def method_config(method: str, model: str | None = None, request: ForgetRequest | None = None, **fields):
    """The config of `method` for unlearning `request` from `model`: its defaults, then what the request implies
    and the model recommends (module docstring), then `fields`. `save_steps` alone means checkpoints every that
    many steps.

    The config's `field_sources` says which layer set each field that is not its class's default.

    Example:
        >>> config = method_config("scrub", scrub_temperature=2.0, output_dir="out")
        >>> config.scrub_temperature, config.field_sources["scrub_temperature"]
        (2.0, 'given')
    """
    config_class = method_config_class(method)
    unknown = sorted(set(fields) - _field_names(method))
    if unknown:
        raise ArgumentError(
            f"{unknown} are not fields of `{config_class.__name__}` (method {method!r}): check the names "
            f"(`lotus-hf unlearn --method {method} --help-all` lists them)."
        )
    if fields.get("class_forgetting") is False:
        request = None  # whole classes, forgotten as samples: the sample settings apply
    recommended = recommended_fields(model, method, request)
    layered = {**recommended, **fields}
    if "save_steps" in fields and "save_strategy" not in fields:
        layered["save_strategy"] = "steps"
    try:
        config = config_class(**layered)
    except ArgumentError:
        raise
    except ValueError as error:  # `TrainingArguments`' own checks (e.g. bf16 on a machine without it)
        raise ArgumentError(f"{config_class.__name__}: {error}") from None
    # which layer set each field that is not the class's default: "model" (its unlearning_config.json, its recipe
    # or the request) or "given" (`fields`)
    config.field_sources = {**dict.fromkeys(recommended, "model"), **dict.fromkeys(fields, "given")}
    return config
