"""`lotus-hf train` and `lotus-hf benchmark`: the research harness's commands, parsed like `lotus-hf unlearn`
(lotus_hf.cli) from dataclasses."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers.hf_argparser import HfArg

from ..arguments import DataArguments, ForgetArguments, config_file, default_output, given_fields, parse
from ..errors import ArgumentError
from ..recipe import Recipe
from ..requests import PAPER_SEEDS


@dataclass
class TrainArguments:
    """`lotus-hf train`: an original classifier, or with a forget request the retrained gold standard. The
    recipe's fields (`--epochs`, `--learning-rate`, ...) are flags too; with `--like`, that model's recipe is
    their default."""

    like: str | None = HfArg(default=None, help="Reuse the recipe, processor and subset of a `lotus-hf train` model.")
    image_size: int | None = HfArg(default=None, help="Input size (default: the data's; the pretrained model's).")
    train_subset: int | None = HfArg(default=None, help="Train on a stratified subset of N training images (seed 0).")
    output_dir: str | None = HfArg(default=None, help="New folder for the model (default runs/...).")
    push_to_hub: str | None = HfArg(default=None, help="Push the trained model to this Hub repo, ORG/NAME.")
    private: bool = HfArg(default=False, help="Create the --push-to-hub repo as private.")


@dataclass
class BenchmarkArguments:
    """`lotus-hf benchmark`: LoTUS against retraining and the baselines."""

    model: str = HfArg(default="fashion-mnist-resnet", help="The original: bundled name, folder or Hub id.")
    seeds: str = HfArg(default=",".join(map(str, PAPER_SEEDS)), help="Comma-separated seeds (default: the paper's).")
    methods: str = HfArg(default="all", help="Comma-separated methods, or all.")
    train_subset: int | None = HfArg(
        default=None, help="A stratified subset of N training images; the original is trained on it."
    )
    test_subset: int | None = HfArg(
        default=None,
        help="Judge every model on a stratified subset of N test images (seed 0); none trains on it.",
    )
    recipe_epochs: int | None = HfArg(default=None, help="Epochs of the original's recipe.")
    method_config: str | None = HfArg(
        default=None, help='JSON object of config fields per method, e.g. \'{"lotus": {"alpha": 8}}\'.'
    )
    grid: str | None = HfArg(
        default=None,
        help="Tuning: a JSON file or object of method -> list of config-field objects; every setting runs.",
    )
    original_per_seed: bool = HfArg(
        default=True,
        help="Train an original per seed with the model's recipe, as the paper does (false: the given model "
        "serves every seed).",
    )
    budgets: str | None = HfArg(
        default=None,
        help="Comma-separated shares of a retraining, e.g. 0.05,0.1,0.2: every run stops at the largest and is "
        "evaluated at each (results in budget-5/, budget-10/, ...).",
    )
    controls: bool = HfArg(
        default=True, help="Run the verifier's controls on every seed (--no-controls: the methods only)."
    )
    cache_dir: str | None = HfArg(default=None, help="Where trained models are cached (~/.cache/lotus-hf).")
    output_dir: str | None = HfArg(default=None, help="New folder for results.md/json and plots.")


def train_command(argv: list[str]) -> None:
    from ..data import load_image_dataset
    from ..loading import resolve_model
    from ..requests import stratified_subset
    from ..saving import check_output_dir
    from .training import image_processor_for, like_subset, pretrained_processor, train_original

    file_values = config_file(argv)
    args, data_args, forget, rest = parse(
        "lotus-hf train", [TrainArguments, DataArguments, ForgetArguments], argv, file_values, rest=True
    )
    if {"-h", "--help"} & set(argv):
        from ..arguments import help_text, parser_for

        print(
            parser_for(
                "lotus-hf train", [TrainArguments, DataArguments, ForgetArguments], add_help=False
            ).format_help()
            + "\nrecipe:\n"
            + help_text("lotus-hf train", Recipe, None)
        )
        raise SystemExit(0)
    base = Recipe.from_model(args.like) if args.like else Recipe()
    recipe = dataclasses.replace(base, **given_fields("lotus-hf train", Recipe, rest, file_values))
    request = forget.request(recipe.seed)
    # what trains: the pretrained model fine-tuned, or the architecture from scratch
    what = Path(recipe.pretrained).name if recipe.pretrained else recipe.model_config.replace(".json", "")
    name = f"{Path(data_args.dataset).name}-{what}" + ("-retrained" if request else "")
    output_dir = args.output_dir or default_output(name)
    check_output_dir(output_dir)
    if args.push_to_hub:
        from ..names import hub_id
        from ..push import check_push_token

        if not hub_id(args.push_to_hub):
            raise ArgumentError(f"`--push-to-hub` must be a Hub repo id, ORG/NAME, got {args.push_to_hub!r}.")
        check_push_token()  # before any training: a run must not end in a push that cannot happen
    dataset = load_image_dataset(
        data_args.dataset, image_column=data_args.image_column, label_column=data_args.label_column
    )
    subset = args.train_subset if args.train_subset is not None else like_subset(args.like)
    if subset is not None:
        dataset["train"] = dataset["train"].select(stratified_subset(np.asarray(dataset["train"]["label"]), subset))
    print(f"training {what} on {data_args.dataset}" + (f" without {request.describe()}" if request else ""))
    if args.like:  # the retrained gold standard must see its inputs exactly as the original did
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(resolve_model(args.like))
    elif recipe.pretrained:  # a fine-tuning keeps the pretrained model's normalisation, at the size asked for
        processor = pretrained_processor(recipe.pretrained, args.image_size)
    else:
        processor = image_processor_for(dataset["train"], image_size=args.image_size, seed=recipe.seed)
    summary = train_original(
        dataset, processor, recipe, output_dir, request=request, dataset_name=data_args.dataset, train_subset=subset
    )
    print(
        f"train accuracy {summary['train_accuracy']:.4f}, test accuracy {summary['test_accuracy']:.4f}, "
        f"{summary['training_seconds']:.0f} s; saved to {output_dir}"
    )
    if args.push_to_hub:
        from ..push import push_folder

        print(f"pushed to {push_folder(output_dir, args.push_to_hub, private=args.private)}")


def benchmark_command(argv: list[str]) -> None:
    from ..saving import check_output_dir
    from .benchmark import BenchmarkSpec, benchmark_config, run_benchmark

    args, data_args, forget = parse(
        "lotus-hf benchmark", [BenchmarkArguments, DataArguments, ForgetArguments], argv, config_file(argv)
    )
    output_dir = args.output_dir or default_output(f"benchmark-{Path(args.model).name}")
    check_output_dir(output_dir)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise ArgumentError(f"`--seeds` must be integers separated by commas, got {args.seeds!r}.") from None
    methods = None if args.methods == "all" else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    per_method = _json_object(args.method_config, "--method-config") if args.method_config else {}
    grid = _grid(args.grid) if args.grid else None
    try:
        budgets = tuple(float(b) for b in args.budgets.split(",") if b.strip()) if args.budgets else None
    except ValueError:
        raise ArgumentError(f"`--budgets` must be numbers separated by commas, got {args.budgets!r}.") from None
    spec = BenchmarkSpec(
        model=args.model,
        dataset=data_args.dataset,
        request=forget.request(seeds[0] if seeds else 0, default_percent=10),
        seeds=seeds,
        methods=methods,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        recipe_epochs=args.recipe_epochs,
        config=per_method,
        grid=grid,
        original_per_seed=args.original_per_seed,
        budgets=budgets,
        controls=args.controls,
        **({"cache_dir": args.cache_dir} if args.cache_dir else {}),
    )
    with tempfile.TemporaryDirectory(prefix="lotus-hf-") as scratch:
        for name, _, fields in spec.variants():  # every config is valid before hours of training start
            benchmark_config(name, spec, seeds[0], scratch, fields)
    command = "lotus-hf benchmark " + " ".join(argv)
    results = run_benchmark(spec, output_dir, log=lambda line: print(line, flush=True), command=command)
    print()
    print(Path(output_dir, "results.md").read_text())
    print(f"wrote results.md, results.json and plots to {output_dir} in {results['wall_seconds'] / 60:.1f} min")


def _grid(text) -> dict:
    """`--grid`: a JSON object (or a file holding one) of method -> non-empty list of config-field objects."""
    if isinstance(text, str) and not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ArgumentError(f"`--grid` must be a JSON object or a file holding one; {text!r} is neither.")
        text = path.read_text()
    grid = _json_object(text, "--grid")
    for method, settings in grid.items():
        if not isinstance(settings, list) or not settings or not all(isinstance(s, dict) for s in settings):
            raise ArgumentError(
                f"`--grid` must map each method to a non-empty list of config-field objects; {method!r} maps "
                f'to {settings!r}. Example: {{"lotus": [{{"alpha": 2}}, {{"alpha": 8}}]}}.'
            )
    return grid


def _json_object(text, flag: str) -> dict:
    if isinstance(text, dict):  # from a --config file
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArgumentError(
            f'`{flag}` must be a JSON object, e.g. \'{{"lotus": {{"alpha": 8}}}}\': {error}.'
        ) from None
    if not isinstance(value, dict):
        raise ArgumentError(f"`{flag}` must be a JSON object of method names to config fields, got {text!r}.")
    return value
