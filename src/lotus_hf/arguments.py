"""The arguments of the `lotus-hf` commands as dataclasses, and how a command line becomes them, with the public API
of `transformers.HfArgumentParser` and `argparse` only.

Every flag is a dataclass field (`--name` and `--name-with-dashes`, typed, documented by the field's `help`).
`--config FILE.yaml|json` holds arguments under the same names (or their aliases): its values become the parser's
defaults, so they are typed and checked like flags, and flags given on the command line override them. The
precedence below that (a method's defaults < the model's `unlearning_config.json`) is `lotus_hf.methods`'.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import typing
from dataclasses import dataclass
from pathlib import Path

from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

from .errors import ArgumentError
from .requests import ForgetRequest


# ----------------------------------------------------------------------------------- the arguments
@dataclass
class ForgetArguments:
    """What to forget from the training split: one of these (default for `unlearn`: the first 10%)."""

    forget_first_percent: float | None = HfArg(
        default=None, help="Forget the first P%% of each class's training samples (the paper's protocol)."
    )
    forget_percent_range: str | None = HfArg(
        default=None, help="Forget each class's training samples from A%% to B%% of its indices: A,B."
    )
    forget_classes: str | None = HfArg(default=None, help="Forget whole classes, by name or id: A,B.")
    forget_fraction: float | None = HfArg(default=None, help="Forget a seeded stratified fraction F.")
    forget_indices: str | None = HfArg(default=None, help="Forget these training-split indices: I,J,...")
    forget_indices_file: str | None = HfArg(default=None, help="File of training-split indices, one a line.")

    def kind(self) -> str:
        """The request's kind before it is made (its data set is not needed): "classes" for `--forget-classes`,
        else "samples"; two requests at once are refused."""
        given = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]
        if len(given) > 1:
            flags = " and ".join(f"`--{name.replace('_', '-')}`" for name in given)
            raise ArgumentError(f"{flags} cannot be combined: give one forget request.")
        return "classes" if self.forget_classes else "samples"

    def request(self, seed: int, default_percent: float | None = None, limit: int | None = None):
        """The `ForgetRequest` these arguments make (None when none is given and there is no default); `limit`
        is the training split's size, the most indices a request can name."""
        self.kind()  # one request at most
        if self.forget_classes:
            return ForgetRequest.classes([c.strip() for c in self.forget_classes.split(",") if c.strip()])
        if self.forget_fraction is not None:
            return ForgetRequest.fraction(self.forget_fraction, seed=seed)
        if self.forget_percent_range is not None:
            try:
                start, stop = (float(v) for v in self.forget_percent_range.split(","))
            except ValueError:
                raise ArgumentError(
                    f"`--forget-percent-range` must be two numbers A,B, got {self.forget_percent_range!r}."
                ) from None
            return ForgetRequest.percent_range(start, stop)
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
        raise ArgumentError(f"`{flag}` {path!r} cannot be read ({error.strerror}).") from None
    indices: list[int] = []
    try:
        for line in lines:
            tokens = [token for token in line.split(",") if token.strip()]
            if not all(token.strip().lstrip("-").isdigit() for token in tokens):
                raise ArgumentError(f"`{flag}` must be integers separated by commas or newlines.")
            indices.extend(int(token) for token in tokens)
            if limit is not None and len(indices) > limit:
                raise ArgumentError(
                    f"`{flag}` holds more than {limit:,} indices, more than the training split has samples: give "
                    "each training-split index once, one a line or separated by commas."
                )
    finally:
        if text is None:
            lines.close()
    return indices


@dataclass
class DataArguments:
    """The data set."""

    dataset: str = HfArg(default="fashion_mnist", help="fashion_mnist, an image folder or a Hub data set id[@rev].")
    image_column: str | None = HfArg(default=None, help="Image column (default: found automatically).")
    label_column: str | None = HfArg(default=None, help="Label column (default: found automatically).")


@dataclass
class UnlearnArguments:
    """What `lotus-hf unlearn` unlearns, from which model, with which method, and where the result goes."""

    model: str = HfArg(default="fashion-mnist-resnet", help="Bundled name, model folder or Hub id[@rev].")
    revision: str | None = HfArg(default=None, help="Hub revision of --model.")
    method: str | None = HfArg(
        default=None,
        help="lotus (the paper's LoTUS), belief_relabel (lotus-hf's, for whole classes) or a baseline; default: "
        "belief_relabel for --forget-classes, else lotus. `--method NAME --help` lists its fields.",
    )
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
    quiet: bool = HfArg(
        default=False,
        help="Print no progress bar and no probe while the run trains (the probes come after it).",
    )


@dataclass
class VerifyArguments:
    """Does a model behave, on a deletion request's forget set, as a model that never saw it would? Exit 0:
    forgotten, 1: not forgotten, 3: inconclusive, 4: forgotten but the model no longer works (its held-out accuracy
    more than 0.05 below its original's), 2: bad input. The verdict comes from the model's outputs on the
    forget set against held-out images of the same classes; the model's unlearning history is checked against its
    weights and reported beside it. With --reference-models, a per-example test as well: each reference is a model
    trained without the forget set (`lotus-hf train --like ORIGINAL` with the same forget flags and another
    --seed), so K references cost K trainings of the original's recipe, and one inference pass each here."""

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
    original: str | None = HfArg(
        default=None,
        help="The model the unlearning started from, for the verdict's utility (default: the first base model of "
        "the model's unlearning history, when it loads).",
    )
    heldout: str | None = HfArg(
        default=None,
        help="The auditor's own held-out images (folder or Hub id, same classes) instead of the test split's half; "
        "the receipt records their fingerprint, and --recheck needs them again.",
    )
    json: bool = HfArg(default=False, help="Print one JSON object (verdict, step, weights_match, evidence, ...).")
    receipt: str | None = HfArg(default=None, help="Write a receipt to keep to this new file (JSON).")
    recheck: str | None = HfArg(
        default=None, help="Re-run the check a receipt records and compare (exit 0: confirmed, 1: not)."
    )


# --------------------------------------------------------------------------------------- parsing
def config_file(argv: list[str]) -> dict:
    """The arguments of `--config FILE` in `argv` (YAML or JSON), `{}` without one."""
    import yaml

    found, _ = _config_flag().parse_known_args(argv)
    if found.config is None:
        return {}
    path = found.config
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ArgumentError(f"`--config` {path!r} cannot be read ({error.strerror}).") from None
    try:
        values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ArgumentError(f"`--config` {path!r} is not valid JSON/YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ArgumentError(f"`--config` {path!r} must hold a mapping of argument names to values.")
    for key, value in values.items():
        if key == "config" or value is None:
            raise ArgumentError(
                f"`--config` {path!r}: `{key}` cannot be given in a file (give it a value, or leave it out)."
            )
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def _config_flag() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--config", metavar="FILE", help="A YAML or JSON file of arguments; flags override it.")
    return parser


def parser_for(prog: str, groups: list, description: str | None = None, add_help: bool = True) -> HfArgumentParser:
    """`HfArgumentParser` over `groups`, plus `--config FILE`. Abbreviated flags are not accepted: every flag is
    spelt out."""
    return HfArgumentParser(
        groups, prog=prog, description=description, allow_abbrev=False, add_help=add_help, parents=[_config_flag()]
    )


def names_of(dtype) -> dict[str, str]:
    """Every spelling of a dataclass's fields (`name`, `name-with-dashes`, aliases) -> the field's name."""
    names = {}
    for f in dataclasses.fields(dtype):
        for alias in [f.name, *f.metadata.get("aliases", [])]:
            names[alias.lstrip("-").replace("-", "_")] = f.name
    return names


def take_from_file(values: dict, *dtypes) -> dict:
    """The entries of a `--config` file that name fields of `dtypes`, under the fields' names (taken out of
    `values`)."""
    names = {k: v for dtype in dtypes for k, v in names_of(dtype).items()}
    return {names[key]: values.pop(key) for key in list(values) if key in names}


def as_default(value) -> str | list:
    """A file's value as the parser's default: a string, which argparse then types and checks like a flag."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return json.dumps(value) if isinstance(value, dict) else str(value)


def parse(prog: str, groups: list, argv: list[str], file_values: dict, rest: bool = False):
    """Instances of the dataclasses `groups` from `argv`, over the values of a `--config` file (`file_values`, whose
    entries for these groups are taken out; typed and checked like flags). Unknown flags are an error naming them,
    or with `rest` the last item returned."""
    parser = parser_for(prog, groups, groups[0].__doc__, add_help=not rest)
    parser.set_defaults(**{k: as_default(v) for k, v in take_from_file(file_values, *groups).items()})
    *parsed, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    parsed = [p for p in parsed if not isinstance(p, argparse.Namespace)]  # `--config` is read by `config_file`
    if rest:
        return [*parsed, remaining]
    if file_values:
        parser.error(f"unrecognized argument --{next(iter(file_values)).replace('_', '-')} in `--config`.")
    if remaining:
        parser.error(
            f"unrecognized argument {next((r for r in remaining if r.startswith('-')), remaining[0])}. See "
            f"`{prog} --help`."
        )
    return parsed


def given_fields(prog: str, config_class, argv: list[str], file_values: dict, owners=None) -> dict:
    """The fields of `config_class` that `argv` or a `--config` file gives (flags win), typed and checked by the
    parser, and nothing else: what is not given keeps the layered defaults of `lotus_hf.methods`. `owners(name)`
    names the methods a field belongs to, for the error of a flag this method does not take."""
    parser = HfArgumentParser([config_class], prog=prog, allow_abbrev=False)
    dests = [f.name for f in dataclasses.fields(config_class) if f.init]
    parser.set_defaults(**dict.fromkeys(dests, argparse.SUPPRESS))
    parser.set_defaults(**{k: as_default(v) for k, v in take_from_file(file_values, config_class).items()})
    if file_values:
        key = next(iter(file_values))
        parser.error(
            f"unrecognized argument --{key.replace('_', '-')} in `--config`.{_hint(key, owners)} See "
            f"`{prog} --help-all`."
        )
    namespace, rest = parser.parse_known_args(argv, namespace=_GivenOnly())
    if rest:
        flag = next((r for r in rest if r.startswith("--")), rest[0])
        parser.error(
            f"unrecognized argument {flag}.{_hint(flag.lstrip('-').split('=')[0], owners)} See `{prog} --help-all`."
        )
    return vars(namespace)


class _GivenOnly(argparse.Namespace):
    """A namespace that keeps only the values given (argparse sets the suppressed defaults on it too)."""

    def __setattr__(self, name, value):
        if value is not argparse.SUPPRESS:
            super().__setattr__(name, value)


def _hint(name: str, owners) -> str:
    methods = owners(name.replace("-", "_")) if owners else []
    return f" It is a field of --method {', '.join(methods)}." if methods else ""


def help_text(prog: str, config_class, shown: set[str] | None) -> str:
    """The `--help` of a method config's flags: only the fields in `shown` (every field when None)."""
    fields = [f for f in dataclasses.fields(config_class) if f.init and (shown is None or f.name in shown)]
    hints = typing.get_type_hints(config_class)
    made = dataclasses.make_dataclass(
        config_class.__name__,
        [(f.name, hints[f.name], dataclasses.field(default=_shown_default(f), metadata=f.metadata)) for f in fields],
    )
    return HfArgumentParser([made], prog=prog, add_help=False, usage=argparse.SUPPRESS).format_help()


def _shown_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    # a field built by a factory shows its value; the copy is a dataclass only for the help, never instantiated
    return repr(f.default_factory()) if f.default_factory is not dataclasses.MISSING else None


def declared_fields(config_class) -> set[str]:
    """Fields a config declares in its own classes, below `TrainingArguments`."""
    from transformers import TrainingArguments

    names: set[str] = set()
    for cls in config_class.__mro__:
        if cls is TrainingArguments:
            break
        names |= {name for name, hint in getattr(cls, "__annotations__", {}).items() if "ClassVar" not in str(hint)}
    return names


def default_output(prefix: str) -> str:
    return str(Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
