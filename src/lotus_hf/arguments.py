"""The arguments of the `lotus-hf` commands as dataclasses, and how a command line becomes them.

Every flag comes from a dataclass field through `transformers.HfArgumentParser` (`--name` and `--name-with-dashes`,
typed, documented by the field's `help`). `--config FILE.yaml|json` holds arguments under the same names; it goes
through the same parser, so its values are typed and checked like flags, and flags given on the command line
override it. Only what was given (in the file or on the line) comes back: defaults are the library's to apply.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from transformers.hf_argparser import HfArg


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

    def request(self, seed: int, default_percent: float | None = None, limit: int | None = None):
        """The `ForgetRequest` these arguments make (None when none is given and there is no default); `limit`
        is the training split's size, the most indices a request can name."""
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
            return ForgetRequest.indices(_indices(self.forget_indices, self.forget_indices_file, limit))
        percent = self.forget_first_percent if self.forget_first_percent is not None else default_percent
        return None if percent is None else ForgetRequest.first_percent(percent)


def _indices(text: str | None, path: str | None, limit: int | None) -> list[int]:
    """The integers of `--forget-indices` or of the file, read a line at a time: a file with more of them than
    `limit` (the training split's size) is refused before it is read whole."""
    flag = "--forget-indices" if text is not None else "--forget-indices-file"
    try:
        lines = iter(text.splitlines()) if text is not None else open(path)  # noqa: SIM115  (closed below)
    except OSError as error:
        raise ValueError(f"`{flag}` {path!r} cannot be read ({error.strerror}).") from None
    indices: list[int] = []
    try:
        for line in lines:
            for token in line.split(","):
                if token.strip():
                    indices.append(int(token))
            if limit is not None and len(indices) > limit:
                raise ValueError(
                    f"`{flag}` holds more than {limit:,} indices, more than the training split has samples: give "
                    "each training-split index once, one a line or separated by commas."
                )
    except ValueError as error:
        if "holds more than" in str(error):
            raise
        raise ValueError(f"`{flag}` must be integers separated by commas or newlines.") from None
    finally:
        if text is None:
            lines.close()
    return indices


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
    resume: bool = HfArg(
        default=False,
        help="Continue the unfinished run in --output-dir from its last checkpoint (one written with --save-steps).",
    )
    fit_head: bool = HfArg(
        default=False, help="First fine-tune a new head on the data set (a model of other classes)."
    )
    fit_head_epochs: int = HfArg(default=3, help="Epochs of --fit-head.")


@dataclass
class VerifyArguments:
    """Does a model behave, on a deletion request's forget set, as a model that never saw it would? Exit 0:
    forgotten, 1: not forgotten, 3: inconclusive (2: bad input). The verdict comes from the model's outputs on the
    forget set against held-out images of the same classes; the model's unlearning history is checked against its
    weights and reported beside it. With --reference-models, a per-example test as well: each reference is a model
    trained without the forget set (`lotus-hf train --like ORIGINAL` with the same forget flags and another
    --seed), so K references cost K trainings of the original's recipe, and one inference pass each here."""

    _argument_group_name = "verify"

    model: str | None = HfArg(default=None, help="The model to check: folder, bundled name or Hub id[@rev].")
    revision: str | None = HfArg(default=None, help="Hub revision of --model.")
    seed: int | None = HfArg(
        default=None,
        help="Seed of the held-out split and of a fraction request (default: the one the run recorded, else 3407).",
    )
    reference_models: str | None = HfArg(
        default=None,
        help="Models trained without the forget set, comma-separated: adds the per-example test.",
    )
    json: bool = HfArg(
        default=False, help="Print one JSON object (verdict, step, weights_match, evidence, ...)."
    )
    receipt: str | None = HfArg(default=None, help="Write a receipt to keep to this new file (JSON).")
    recheck: str | None = HfArg(
        default=None, help="Re-run the check a receipt records and compare (exit 0: confirmed, 1: not)."
    )


# --------------------------------------------------------------------------------------- parsing
def build_parser(prog: str, description: str, groups: list, *, skip=(), shown=None, usage=None):
    """A parser with one flag per field of `groups` (dataclasses; the last may be a `TrainingArguments`), plus
    `--config FILE`. Fields in `skip` (of the last group) get no flag; with `shown`, only those get a line in
    `--help`."""
    from transformers import HfArgumentParser
    from transformers.hf_argparser import string_to_bool

    parser = HfArgumentParser([], prog=prog, description=description, usage=usage)
    parser.add_argument(
        "--config", metavar="FILE", help="A YAML or JSON file of arguments; flags override it."
    )
    for dtype in groups:
        group = parser.add_argument_group(getattr(dtype, "_argument_group_name", dtype.__name__))
        hints = typing.get_type_hints(dtype)
        for f in dataclasses.fields(dtype):
            if f.init and not (dtype is groups[-1] and f.name in skip):
                HfArgumentParser._parse_dataclass_field(group, _flag_field(f, hints[f.name]))
    for action in parser._actions:  # an optional bool given bare means True, as a required one does
        if action.type is string_to_bool and action.nargs is None:
            action.nargs, action.const = "?", True
    if shown is not None:
        for action in parser._actions:
            if action.dest not in shown and action.dest not in ("help", "config"):
                action.help = argparse.SUPPRESS
    return parser


def _flag_field(f: dataclasses.Field, annotation) -> dataclasses.Field:
    """A copy of field `f` with its resolved type (HfArgumentParser sets `field.type` in place) and without the
    metadata argparse does not take (a field's `check`, which the config applies itself)."""
    f = copy.copy(f)
    f.type = annotation
    f.metadata = types.MappingProxyType({k: v for k, v in f.metadata.items() if k != "check"})
    return f


def parse_given(parser: argparse.ArgumentParser, argv: list[str], command: str, owners=None) -> dict:
    """The arguments given in `argv` and in its `--config` file (flags win), typed by `parser`, without defaults.
    `owners(name)` names the methods an unknown flag belongs to, for the error."""
    if {"-h", "--help", "--help-all"} & set(argv):
        parser.parse_args(argv)  # prints the help, with the defaults, and exits
    for action in parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    given = _parse(parser, argv, command, owners)
    if "config" not in given:
        return given
    path = given.pop("config")
    from_file = _parse(parser, _file_tokens(parser, path), command, owners, source=f"`--config` {path!r}")
    return {**from_file, **given}


def _parse(parser, tokens: list[str], command: str, owners, source: str | None = None) -> dict:
    namespace, unknown = parser.parse_known_args(tokens)
    if unknown:
        flag = next((u for u in unknown if u.startswith("--")), unknown[0])
        name = flag.lstrip("-").split("=")[0].replace("-", "_")
        methods = owners(name) if owners else []
        hint = f" It is a field of --method {', '.join(methods)}." if methods else ""
        where = f" in {source}" if source else ""
        parser.error(f"unrecognized argument {flag}{where}.{hint} See `lotus-hf {command} --help-all`.")
    return vars(namespace)


def _file_tokens(parser, path: str) -> list[str]:
    """The command-line tokens that say what the YAML or JSON file at `path` says (keys: the flags' names)."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as error:
        if "=" in path and not Path(path).exists():  # the METHOD.FIELD=VALUE of lotus-hf 0.1's benchmark
            raise ValueError(
                f"`--config` takes a YAML or JSON file of arguments, got {path!r}: give a benchmark's per-method "
                """fields as JSON with `--method-config '{"lotus": {"alpha": 8}}'`."""
            ) from None
        raise ValueError(f"`--config` {path!r} cannot be read ({error.strerror}).") from None
    try:
        values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(
            f"`--config` {path!r} is not valid JSON/YAML: {str(error).splitlines()[0]}"
        ) from None
    if not isinstance(values, dict):
        raise ValueError(f"`--config` {path!r} must hold a mapping of argument names to values.")
    tokens = []
    for key, value in values.items():
        if key == "config" or value is None:
            raise ValueError(
                f"`--config` {path!r}: `{key}` cannot be given in a file (give it a value, or leave it out)."
            )
        flag = f"--{str(key).replace('_', '-')}"
        if isinstance(value, bool):
            tokens += [flag, str(value).lower()]
        elif isinstance(value, list):
            tokens += [flag, *map(str, value)]
        else:
            tokens += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    return tokens


def split_values(values: dict, *groups) -> list[dict]:
    """`values` split by the dataclasses of `groups` (each gets its own fields), plus the rest."""
    parts, rest = [], dict(values)
    for dtype in groups:
        names = {f.name for f in dataclasses.fields(dtype)}
        parts.append({k: rest.pop(k) for k in list(rest) if k in names})
    return [*parts, rest]


def peek(argv: list[str], name: str, default: str) -> str:
    """The value of `--name` in `argv`, or in the `--config` file, before the full parse."""
    import yaml

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(f"--{name}")
    parser.add_argument("--config")
    known, _ = parser.parse_known_args(argv)
    if getattr(known, name) is not None:
        return getattr(known, name)
    if known.config and Path(known.config).is_file():
        values = yaml.safe_load(Path(known.config).read_text())  # YAML reads JSON too
        return values.get(name, default) if isinstance(values, dict) else default
    return default


def default_output(prefix: str) -> str:
    return str(Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")


def field_names(*dtypes) -> set[str]:
    return {f.name for dtype in dtypes for f in dataclasses.fields(dtype)}


def declared_fields(config_class) -> set[str]:
    """Fields a config declares in its own classes, below `TrainingArguments`."""
    from transformers import TrainingArguments

    names: set[str] = set()
    for cls in config_class.__mro__:
        if cls is TrainingArguments:
            break
        names |= set(getattr(cls, "__annotations__", {}))
    return names
