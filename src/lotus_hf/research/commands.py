"""`lotus-hf train` and `lotus-hf benchmark`: the research harness's commands, parsed like `lotus-hf unlearn`
(lotus_hf.cli) from dataclasses."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from transformers.hf_argparser import HfArg

from ..arguments import (
    DataArguments,
    ForgetArguments,
    build_parser,
    default_output,
    parse_given,
    split_values,
)


@dataclass
class TrainArguments:
    """`lotus-hf train`: an original classifier, or with a forget request the retrained gold standard."""

    _argument_group_name = "training"

    model_config: str = HfArg(default="resnet-small", help="resnet-small, vit-small or a config.json.")
    like: str | None = HfArg(default=None, help="Reuse the recipe and processor of a `lotus-hf train` model.")
    seed: int = HfArg(default=3407, help="Seed of the run (paper: 3407, 13, 12).")
    epochs: int | None = HfArg(default=None, help="Epochs (default 30).")
    image_size: int | None = HfArg(default=None, help="Input size (default: the data's).")
    learning_rate: float | None = HfArg(default=None, help="AdamW learning rate (default 1e-3).")
    weight_decay: float | None = HfArg(default=None, help="AdamW weight decay (default 5e-4).")
    batch_size: int | None = HfArg(default=None, help="Batch size (default 128).")
    output_dir: str | None = HfArg(default=None, help="New folder for the model (default runs/...).")


@dataclass
class BenchmarkArguments:
    """`lotus-hf benchmark`: LoTUS against retraining and the baselines."""

    _argument_group_name = "benchmark"

    model: str = HfArg(default="fashion-mnist-resnet", help="The original: bundled name, folder or Hub id.")
    seeds: str = HfArg(default="3407,13,12", help="Comma-separated seeds (default: the paper's).")
    methods: str = HfArg(default="all", help="Comma-separated methods, or all.")
    train_subset: int | None = HfArg(
        default=None, help="A stratified subset of N training images; the original is trained on it."
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
    cache_dir: str | None = HfArg(default=None, help="Where trained models are cached (~/.cache/lotus-hf).")
    output_dir: str | None = HfArg(default=None, help="New folder for results.md/json and plots.")


def train_command(argv: list[str]) -> None:
    from ..data import load_image_dataset
    from ..hub import check_output_dir, resolve_model
    from .training import Recipe, image_processor_for, train_original

    groups = [TrainArguments, DataArguments, ForgetArguments]
    parser = build_parser("lotus-hf train", TrainArguments.__doc__, groups)
    train_values, data_values, forget_values, _ = split_values(parse_given(parser, argv, "train"), *groups)
    args, data_args = TrainArguments(**train_values), DataArguments(**data_values)
    recipe = Recipe.from_model(args.like) if args.like else Recipe(model_config=args.model_config)
    changes = {"epochs": args.epochs, "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
               "batch_size": args.batch_size, "seed": args.seed}  # fmt: skip
    recipe = dataclasses.replace(recipe, **{k: v for k, v in changes.items() if v is not None})
    request = ForgetArguments(**forget_values).request(args.seed)
    name = f"{Path(data_args.dataset).name}-{recipe.model_config.replace('.json', '')}" + (
        "-retrained" if request else ""
    )
    output_dir = args.output_dir or default_output(name)
    check_output_dir(output_dir)
    dataset = load_image_dataset(data_args.dataset, image_column=data_args.image_column,
                                 label_column=data_args.label_column)  # fmt: skip
    print(
        f"training {recipe.model_config} on {data_args.dataset}"
        + (f" without {request.describe()}" if request else "")
    )
    if args.like:  # the retrained gold standard must see its inputs exactly as the original did
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(resolve_model(args.like))
    else:
        processor = image_processor_for(dataset["train"], image_size=args.image_size, seed=args.seed)
    summary = train_original(
        dataset, processor, recipe, output_dir, request=request, dataset_name=data_args.dataset
    )
    print(f"train accuracy {summary['train_accuracy']:.4f}, test accuracy {summary['test_accuracy']:.4f}, "
          f"{summary['training_seconds']:.0f} s; saved to {output_dir}")  # fmt: skip


def benchmark_command(argv: list[str]) -> None:
    from ..hub import check_output_dir
    from ..run import METHODS
    from .benchmark import BenchmarkSpec, benchmark_config, run_benchmark

    groups = [BenchmarkArguments, DataArguments, ForgetArguments]
    parser = build_parser("lotus-hf benchmark", BenchmarkArguments.__doc__, groups)
    bench_values, data_values, forget_values, _ = split_values(
        parse_given(parser, argv, "benchmark"), *groups
    )
    args, data_args = BenchmarkArguments(**bench_values), DataArguments(**data_values)
    output_dir = args.output_dir or default_output(f"benchmark-{Path(args.model).name}")
    check_output_dir(output_dir)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"`--seeds` must be integers separated by commas, got {args.seeds!r}.") from None
    methods = (
        METHODS if args.methods == "all" else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    )
    per_method = _json_object(args.method_config, "--method-config") if args.method_config else {}
    grid = _grid(args.grid) if args.grid else None
    spec = BenchmarkSpec(model=args.model, dataset=data_args.dataset, request=ForgetArguments(**forget_values).request(
        seeds[0] if seeds else 0, default_percent=10), seeds=seeds, methods=methods, train_subset=args.train_subset,
        recipe_epochs=args.recipe_epochs, config=per_method, grid=grid, original_per_seed=args.original_per_seed,
        **({"cache_dir": args.cache_dir} if args.cache_dir else {}))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lotus-hf-") as scratch:
        for name, _, fields in spec.variants():  # every config is valid before hours of training start
            benchmark_config(name, spec, seeds[0], scratch, fields)
    command = "lotus-hf benchmark " + " ".join(argv)
    results = run_benchmark(spec, output_dir, log=lambda line: print(line, flush=True), command=command)
    print()
    print(Path(output_dir, "results.md").read_text())
    print(
        f"wrote results.md, results.json and plots to {output_dir} in {results['wall_seconds'] / 60:.1f} min"
    )


def _grid(text) -> dict:
    """`--grid`: a JSON object (or a file holding one) of method -> non-empty list of config-field objects."""
    if isinstance(text, str) and not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"`--grid` must be a JSON object or a file holding one; {text!r} is neither.")
        text = path.read_text()
    grid = _json_object(text, "--grid")
    for method, settings in grid.items():
        if not isinstance(settings, list) or not settings or not all(isinstance(s, dict) for s in settings):
            raise ValueError(
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
        raise ValueError(
            f'`{flag}` must be a JSON object, e.g. \'{{"lotus": {{"alpha": 8}}}}\': {error}.'
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"`{flag}` must be a JSON object of method names to config fields, got {text!r}.")
    return value
