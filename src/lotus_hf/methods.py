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
    0.001
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


def default_method(request: ForgetRequest | None) -> str:
    """The method a request runs unless another is asked for: Belief Relabel for whole classes (LoTUS's own rule
    cannot stop there; docs/method.md), LoTUS for samples."""
    return "belief_relabel" if request is not None and request.kind == "classes" else "lotus"


def method_config_class(method: str):
    if method not in METHODS:
        raise ArgumentError(f"`method` must be one of {tuple(METHODS)}, got {method!r}.")
    return METHODS[method][0]


def recommended_fields(model: str | None, method: str, request: ForgetRequest | None = None) -> dict:
    """The fields `model` recommends for `method` (its `unlearning_config.json`; for `retrain`, its training
    recipe), with LoTUS's class-forgetting row first for a class request; `{}` for none.

    Every method also gets `retrain_epochs` from the model's training recipe, so that its cost is a share of a
    retraining and a `budget` can be kept.

    >>> recommended_fields("fashion-mnist-resnet", "lotus")
    {'retrain_epochs': 30, 'learning_rate': 0.001, 'num_train_epochs': 1, 'alpha': 2.0}
    """
    classes = request is not None and request.kind == "classes"
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
    if method != "lotus":
        return {**retraining, **section}
    own = {k: v for k, v in section.items() if k != "classes"}
    return {**retraining, **own, **PAPER_CLASS_FIELDS, **section.get("classes", {})} if classes else {
        **retraining, **own}  # fmt: skip


def _model_sections(model: str) -> dict[str, dict]:
    """The model's `unlearning_config.json` as method -> fields (keys starting with `_` are comments). A file of
    lotus-hf 0.1 holds LoTUS's fields at its top level."""
    path = model_file(model, UNLEARNING_CONFIG_NAME)
    if path is None:
        return {}
    try:
        values = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
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

    Example:
        >>> method_config("scrub", scrub_temperature=2.0, output_dir="out").scrub_temperature
        2.0
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
    layered = {**recommended_fields(model, method, request), **fields}
    if "save_steps" in fields and "save_strategy" not in fields:
        layered["save_strategy"] = "steps"
    try:
        return config_class(**layered)
    except ArgumentError:
        raise
    except ValueError as error:  # `TrainingArguments`' own checks (e.g. bf16 on a machine without it)
        raise ArgumentError(f"{config_class.__name__}: {error}") from None
