"""The `lotus-hf` command: parse, call the library, print.

Every flag comes from a dataclass through `transformers.HfArgumentParser`: the run's own arguments below,
and every field of the method's config (`UnlearningConfig` for LoTUS, a baseline's config with `--method`).
`--config FILE.yaml|json` loads a whole run; flags override it; the order in which the rest applies is the
library's (`lotus_hf.run.method_config`).

    lotus-hf unlearn                      # bundled ResNet, Fashion-MNIST, first 10% of each class
    lotus-hf unlearn --method scrub --help
    lotus-hf train --model-config vit-small --output-dir my-vit

`train` and `benchmark` belong to the research harness (lotus_hf.research.commands).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from transformers.hf_argparser import HfArg

from . import __version__, _compat

# `TrainingArguments` fields the command owns itself: where the model goes and how it is pushed (`--output-dir`,
# `--push-to-hub ORG/NAME`, `--private`), and the token, which never goes on a command line.
OWNED_FIELDS = ("output_dir", "push_to_hub", "hub_model_id", "hub_private_repo", "hub_token", "hub_strategy")
# Shown by `--help` besides the fields a config declares itself; `--help-all` shows every flag.
SHOWN_TRAINING_FIELDS = ("seed", "bf16", "gradient_accumulation_steps", "logging_strategy", "max_steps")
# What the command's runs default to, unlike `TrainingArguments`: quiet, and no logging steps of their own.
COMMAND_DEFAULTS = {"disable_tqdm": True, "logging_strategy": "no"}


# ----------------------------------------------------------------------------------- the arguments
@dataclass
class ForgetArguments:
    """What to forget from the training split: one of these (default for `unlearn`: the first 10%)."""

    _argument_group_name = "forget request (one of)"

    forget_first_percent: float | None = HfArg(
        default=None, help="Forget the first P%% of each class's training samples (the paper's protocol)."
    )
    forget_classes: str | None = HfArg(default=None, help="Forget whole classes, by name or id: A,B.")
    forget_fraction: float | None = HfArg(default=None, help="Forget a seeded stratified fraction F.")
    forget_indices: str | None = HfArg(default=None, help="Forget these training-split indices: I,J,...")
    forget_indices_file: str | None = HfArg(default=None, help="File of training-split indices, one a line.")

    def request(self, seed: int, default_percent: float | None = None):
        """The `ForgetRequest` these arguments make (None when none is given and there is no default)."""
        from .data import ForgetRequest

        given = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]
        if len(given) > 1:
            flags = " and ".join(f"`--{name.replace('_', '-')}`" for name in given)
            raise ValueError(f"{flags} cannot be combined: give one forget request.")
        if self.forget_classes:
            return ForgetRequest.classes([c.strip() for c in self.forget_classes.split(",") if c.strip()])
        if self.forget_fraction is not None:
            return ForgetRequest.fraction(self.forget_fraction, seed=seed)
        if self.forget_indices is not None or self.forget_indices_file:
            return ForgetRequest.indices(_indices(self.forget_indices, self.forget_indices_file))
        percent = self.forget_first_percent if self.forget_first_percent is not None else default_percent
        return None if percent is None else ForgetRequest.first_percent(percent)


def _indices(text: str | None, path: str | None) -> list[int]:
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ValueError(f"`--forget-indices-file` {path!r} cannot be read ({error.strerror}).") from None
    try:
        return [int(token) for token in text.replace("\n", ",").split(",") if token.strip()]
    except ValueError:
        raise ValueError("`--forget-indices` must be integers separated by commas or newlines.") from None


@dataclass
class DataArguments:
    """The data set."""

    _argument_group_name = "data"

    dataset: str = HfArg(
        default="fashion_mnist", help="fashion_mnist, an image folder or a Hub data set id[@rev]."
    )
    image_column: str | None = HfArg(default=None, help="Image column (default: found automatically).")
    label_column: str | None = HfArg(default=None, help="Label column (default: found automatically).")


@dataclass
class UnlearnArguments:
    """What `lotus-hf unlearn` unlearns, from which model, and where the result goes."""

    _argument_group_name = "run"

    model: str = HfArg(default="fashion-mnist-resnet", help="Bundled name, model folder or Hub id[@rev].")
    revision: str | None = HfArg(default=None, help="Hub revision of --model.")
    method: str = HfArg(default="lotus", help="lotus (default) or a baseline: see `--method NAME --help`.")
    retrained: str | None = HfArg(
        default=None, help="A model retrained without the forget set: adds JSD and Avg Gap to the report."
    )
    output_dir: str | None = HfArg(default=None, help="New folder for the model and report (runs/...).")
    push_to_hub: str | None = HfArg(default=None, help="Push the unlearned model to this Hub repo, ORG/NAME.")
    private: bool = HfArg(default=False, help="Create the --push-to-hub repo as private.")
    fit_head: bool = HfArg(
        default=False, help="First fine-tune a new head on the data set (a model of other classes)."
    )
    fit_head_epochs: int = HfArg(default=3, help="Epochs of --fit-head.")


# --------------------------------------------------------------------------------------- parsing
def _parser(
    prog: str, description: str, groups: list, *, skip=(), shown=None, usage=None
) -> argparse.ArgumentParser:
    """A parser with one flag per field of `groups` (dataclasses), `--name` and `--name-with-dashes`, typed
    and documented from the fields (`HfArgumentParser`). Fields in `skip` (of the last group, the config) get no
    flag; with `shown`, the others get no line in `--help`."""
    from transformers import HfArgumentParser
    from transformers.hf_argparser import string_to_bool

    parser = HfArgumentParser([], prog=prog, description=description, usage=usage)
    parser.add_argument(
        "--config", metavar="FILE", help="A YAML or JSON file of arguments; flags override it."
    )
    for dtype in groups:
        group = parser.add_argument_group(getattr(dtype, "_argument_group_name", dtype.__name__))
        hints = _type_hints(dtype)
        for f in dataclasses.fields(dtype):
            if f.init and not (dtype is groups[-1] and f.name in skip):
                HfArgumentParser._parse_dataclass_field(group, _with_type(f, hints[f.name]))
    for action in parser._actions:  # an optional bool given bare means True, as a required one does
        if action.type is string_to_bool and action.nargs is None:
            action.nargs, action.const = "?", True
    if shown is not None:
        for action in parser._actions:
            if action.dest not in shown and action.dest not in ("help", "config"):
                action.help = argparse.SUPPRESS
    return parser


def _type_hints(dtype) -> dict:
    import typing

    return typing.get_type_hints(dtype)


def _with_type(f: dataclasses.Field, annotation) -> dataclasses.Field:
    """A copy of field `f` with its resolved type (HfArgumentParser sets `field.type` in place) and without the
    metadata argparse does not take (a field's `check`, applied by the config itself)."""
    import copy
    import types

    f = copy.copy(f)
    f.type = annotation
    f.metadata = types.MappingProxyType({k: v for k, v in f.metadata.items() if k != "check"})
    return f


def _given(parser: argparse.ArgumentParser, argv: list[str], command: str) -> dict:
    """The flags given in `argv` (no defaults), typed, and the `--config` file's values beneath them."""
    if {"-h", "--help", "--help-all"} & set(argv):
        parser.parse_args(argv)  # prints the help, with the defaults, and exits
    for action in parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        _unknown_flags(parser, unknown, command)
    given = vars(namespace)
    from_file = _read_config(given.pop("config")) if "config" in given else {}
    # a file's keys may be any of the flags' names (`epochs` for `num_train_epochs`): the field they set
    options = parser._option_string_actions
    dests = {key: options.get(f"--{key}", options.get(f"--{key.replace('_', '-')}")) for key in from_file}
    from_file = {(dests[key].dest if dests[key] else key): value for key, value in from_file.items()}
    return {**from_file, **given}


def _unknown_flags(parser, unknown: list[str], command: str) -> None:
    flag = next((u for u in unknown if u.startswith("--")), unknown[0])
    name = flag.lstrip("-").split("=")[0].replace("-", "_")
    owners = []
    if command == "unlearn":
        from .run import METHODS, method_config_class

        owners = [m for m in METHODS if name in _declared_fields(method_config_class(m))]
    hint = f" It is a field of --method {', '.join(owners)}." if owners else ""
    parser.error(f"unrecognized argument {flag}.{hint} See `lotus-hf {command} --help`.")


def _read_config(path: str) -> dict:
    """The arguments of a YAML or JSON file (keys are field names, with `_` or `-`)."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ValueError(f"`--config` {path!r} cannot be read ({error.strerror}).") from None
    import yaml

    try:
        values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(
            f"`--config` {path!r} is not valid JSON/YAML: {str(error).splitlines()[0]}"
        ) from None
    if not isinstance(values, dict):
        raise ValueError(f"`--config` {path!r} must hold a mapping of argument names to values.")
    return {str(key).replace("-", "_"): value for key, value in values.items()}


def _split(values: dict, *groups) -> list[dict]:
    """`values` split by the dataclasses of `groups` (each gets its own fields), plus the rest."""
    parts, rest = [], dict(values)
    for dtype in groups:
        names = {f.name for f in dataclasses.fields(dtype)}
        parts.append({k: rest.pop(k) for k in list(rest) if k in names})
    return [*parts, rest]


def _peek(argv: list[str], name: str, default: str) -> str:
    """The value of `--name` in `argv`, or in the `--config` file, before the full parse."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument(f"--{name}")
    peek.add_argument("--config")
    known, _ = peek.parse_known_args(argv)
    if getattr(known, name) is not None:
        return getattr(known, name)
    if known.config:
        return _read_config(known.config).get(name, default)
    return default


def _default_output(prefix: str) -> str:
    return str(Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")


# --------------------------------------------------------------------------------------- commands
def unlearn_parser(method: str = "lotus", help_all: bool = False) -> argparse.ArgumentParser:
    """The parser of `lotus-hf unlearn --method METHOD`: the run's arguments and the method config's fields."""
    from .run import METHODS, method_config_class

    config_class = method_config_class(method)
    shown = {*_declared_fields(config_class), *SHOWN_TRAINING_FIELDS}
    shown |= _names(UnlearnArguments, DataArguments, ForgetArguments)
    description = (
        f"Make a model forget part of its training data ({method}). Every `{config_class.__name__}` field is a "
        "flag: `--help` lists the method's own and the common ones, `--help-all` all of them."
    )
    usage = (
        "lotus-hf unlearn [--model M] [--dataset D] [forget request] [--method M] [config fields] "
        "[--output-dir DIR] [--push-to-hub ORG/NAME] [--config FILE]"
    )
    groups = [UnlearnArguments, DataArguments, ForgetArguments, config_class]
    parser = _parser("lotus-hf unlearn", description, groups, skip=OWNED_FIELDS, usage=usage,
                     shown=None if help_all else shown)  # fmt: skip
    parser.add_argument(
        "--help-all", action="help", help="Show every flag, all `TrainingArguments` fields too."
    )
    for action in parser._actions:
        if action.dest == "method":
            action.choices = METHODS
        action.default = getattr(config_class, "defaults", {}).get(
            action.dest, action.default
        )  # shown by --help
    return parser


def _names(*dtypes) -> set[str]:
    return {f.name for dtype in dtypes for f in dataclasses.fields(dtype)}


def _declared_fields(config_class) -> set[str]:
    """Fields a config declares in its own classes, below `TrainingArguments`."""
    from transformers import TrainingArguments

    names: set[str] = set()
    for cls in config_class.__mro__:
        if cls is TrainingArguments:
            break
        names |= set(getattr(cls, "__annotations__", {}))
    return names


def unlearn_command(argv: list[str]) -> None:
    method = _peek(argv, "method", "lotus")
    parser = unlearn_parser(method, help_all="--help-all" in argv)
    values = _given(parser, argv, "unlearn")
    run_values, data_values, forget_values, config_values = _split(values, UnlearnArguments, DataArguments,
                                                                   ForgetArguments)  # fmt: skip
    run = UnlearnArguments(**run_values)
    data_args, forget = DataArguments(**data_values), ForgetArguments(**forget_values)
    # Trainer writes into its `output_dir` at once; it works in a scratch folder, so that only a finished run
    # ever creates `--output-dir` (written atomically).
    with tempfile.TemporaryDirectory(prefix="lotus-hf-") as scratch:
        _unlearn(run, data_args, forget, config_values, scratch)


def _unlearn(run: UnlearnArguments, data_args: DataArguments, forget: ForgetArguments, config_values: dict,
             scratch: str) -> None:  # fmt: skip
    from accelerate import PartialState

    from .config import recommended_fields
    from .data import class_names_of, load_image_dataset, prepare_unlearning_data
    from .hub import check_labels, check_output_dir, check_push_token, load_model, push_folder
    from .run import fit_head, method_config, save_unlearned, unlearn

    output_dir = run.output_dir or _default_output(f"{Path(run.model.split('@')[0]).name}-unlearned")
    check_output_dir(output_dir)
    if run.push_to_hub:
        check_push_token()  # before any work: a run must not end in a push that cannot happen
    seed = config_values.get("seed", 3407)
    request = forget.request(seed, default_percent=10)
    model, processor = load_model(run.model, run.revision)
    base_model = model.config._name_or_path  # `name@revision` when a revision was asked for
    dataset = load_image_dataset(data_args.dataset, image_column=data_args.image_column,
                                 label_column=data_args.label_column)  # fmt: skip
    class_names = class_names_of(dataset)
    say = PartialState().print  # under several processes, the first one reports
    if run.fit_head:
        model, _ = load_model(run.model, run.revision, new_head=class_names)
        say(
            f"fitting a new head for {len(class_names)} classes on the training split ({run.fit_head_epochs} epochs)"
        )
        seconds = fit_head(model, dataset, processor, epochs=run.fit_head_epochs, seed=seed)
        say(f"head fitted in {seconds:.0f} s; this fine-tuned model is the original to unlearn from")
    check_labels(model, class_names)
    retrained = load_model(run.retrained)[0] if run.retrained else None
    # The config comes after the models: under DeepSpeed ZeRO-3 it turns on `zero.Init`, whose partitioned
    # weights transformers 5.24 cannot initialise for every model (ResNet); DeepSpeed shards them later.
    fields = {**COMMAND_DEFAULTS, **config_values, "output_dir": scratch}
    config = method_config(run.method, f"{run.model}@{run.revision}" if run.revision else run.model, request,
                           **fields)  # fmt: skip
    say(
        f"lotus-hf {__version__}: unlearning {request.describe()} of {data_args.dataset} from {run.model}",
        flush=True,
    )
    if run.method == "lotus":
        used = {k: v for k, v in recommended_fields(run.model).items() if k not in config_values}
        if used:
            listed = ", ".join(f"{k}={v}" for k, v in used.items())
            say(
                f"settings from the model's unlearning_config.json: {listed} (the command's flags override them)"
            )
        say(
            f"LoTUS: alpha {config.alpha}, {config.num_train_epochs:g} epochs at most, lr {config.learning_rate:g}"
        )
    else:
        hyper = config.method_hyperparameters()
        say(f"{run.method}: " + ", ".join(f"{k} {v}" for k, v in hyper.items() if k != "method"), flush=True)
    data = prepare_unlearning_data(dataset, request, processor, seed=config.seed)
    say(f"forget {len(data.forget)}, retain {len(data.retain)}, unseen {len(data.unseen)}, test {len(data.test)}",
        flush=True)  # fmt: skip
    result = unlearn(
        model, data, config, base_model=base_model, dataset=data_args.dataset, retrained=retrained
    )
    state = PartialState()
    if state.is_main_process:  # under `accelerate launch`, one process reports and writes
        for entry in (e for e in result.history if "tau" in e):
            print(f"epoch {entry['epoch']}: forget acc {entry['forget_accuracy']:.4f}, unseen acc "
                  f"{entry['unseen_accuracy']:.4f}, delta {entry['delta']:+.2f}, tau {entry['tau']:.3f}"
                  + (" -> stop" if entry["stop"] else ""))  # fmt: skip
        print()
        print(result.report.to_markdown())
        print(f"\nunlearning took {result.report.unlearning_seconds:.1f} s (rf_jsd: textbook JSD variant)")
        path = save_unlearned(result, processor, output_dir)
        print(f"saved the unlearned model, model card and report.json to {path}")
        if run.push_to_hub:
            print(f"pushed to {push_folder(path, run.push_to_hub, private=run.private)}")
    _compat.leave_process_group(state)


def _research(name: str):
    """A research-harness command (lotus_hf.research.commands), imported only when it runs."""

    def command(argv: list[str]) -> None:
        from .research import commands

        getattr(commands, f"{name}_command")(argv)

    return command


COMMANDS = {
    "unlearn": (unlearn_command, "make a model forget part of its training data (LoTUS or a baseline)"),
    "train": (_research("train"), "train an original classifier, or retrain one without a forget set"),
    "benchmark": (_research("benchmark"), "compare LoTUS with retraining and the baselines"),
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="lotus-hf", description="LoTUS machine unlearning for image classifiers."
    )
    top.add_argument("--version", action="version", version=f"lotus-hf {__version__}")
    top.add_argument("command", choices=COMMANDS, help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    command = top.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv).command
    try:
        COMMANDS[command][0](argv[1:])
    except SystemExit as stop:  # argparse: --help (0) or a flag it cannot parse (2, its message printed)
        return stop.code if isinstance(stop.code, int) else 2
    except (ValueError, TypeError) as error:
        message = str(error)
        message = message if len(message) < 800 else message[:800] + " ..."
        print(f"lotus-hf {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lotus-hf {command}: interrupted; no output folder was written.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
