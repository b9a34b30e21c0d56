"""The `lotus-hf` command: parse, call the library, print. No logic of its own.

lotus-hf unlearn                      # bundled ResNet, Fashion-MNIST, first 10% of each class
lotus-hf train --model-config vit-small --output-dir my-vit
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from . import __version__


def _forget_flags(parser: argparse.ArgumentParser, default_first_percent: float | None) -> None:
    group = parser.add_argument_group("forget request (one of)").add_mutually_exclusive_group()
    group.add_argument(
        "--forget-first-percent",
        type=float,
        default=None,
        metavar="P",
        help=f"forget the first P%% of each class's training samples (the paper's protocol; default "
        f"{default_first_percent if default_first_percent is not None else 'none'})",
    )
    group.add_argument("--forget-classes", metavar="A,B", help="forget whole classes, by name or id")
    group.add_argument(
        "--forget-fraction", type=float, metavar="F", help="forget a seeded stratified fraction F"
    )
    group.add_argument("--forget-indices", metavar="I,J,...", help="forget these training-split indices")
    group.add_argument(
        "--forget-indices-file", metavar="PATH", help="file of training-split indices, one a line"
    )


def _data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", default="fashion_mnist", help="fashion_mnist, an image folder or a Hub data set id"
    )
    parser.add_argument("--image-column", default=None, help="image column (default: found automatically)")
    parser.add_argument("--label-column", default=None, help="label column (default: found automatically)")
    parser.add_argument(
        "--seed", type=int, default=3407, help="seed of the splits and the run (paper: 3407, 13, 12)"
    )


def _forget_request(args: argparse.Namespace, default_first_percent: float | None):
    from .data import ForgetRequest

    if args.forget_classes:
        return ForgetRequest.classes([c.strip() for c in args.forget_classes.split(",") if c.strip()])
    if args.forget_fraction is not None:
        return ForgetRequest.fraction(args.forget_fraction, seed=args.seed)
    if args.forget_indices is not None or args.forget_indices_file:
        text = args.forget_indices if args.forget_indices is not None else _read(args.forget_indices_file)
        tokens = text.replace("\n", ",").split(",")
        try:
            return ForgetRequest.indices([int(t) for t in tokens if t.strip()])
        except ValueError:
            raise ValueError("`--forget-indices` must be integers separated by commas or newlines.") from None
    percent = args.forget_first_percent if args.forget_first_percent is not None else default_first_percent
    return None if percent is None else ForgetRequest.first_percent(percent)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ValueError(f"`--forget-indices-file` {path!r} cannot be read ({error.strerror}).") from None


def _baseline_fields() -> list[tuple[str, type, str]]:
    """(name, type, help) of the `BaselineConfig` fields that are a baseline's own hyper-parameters."""
    import dataclasses

    from .baselines import BaselineConfig

    shared = {"method", "retain_fraction", "channels_last"}
    own = ("neggrad_", "bad_teacher_", "scrub_", "ssd_", "salun_")
    return [
        (f.name, type(f.default), f.metadata.get("help", ""))
        for f in dataclasses.fields(BaselineConfig)
        if f.name.startswith(own) and f.name not in shared
    ]


def _default_output(prefix: str) -> str:
    return str(Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lotus-hf", description="LoTUS machine unlearning for image classifiers."
    )
    from .baselines import METHODS

    parser.add_argument("--version", action="version", version=f"lotus-hf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    unlearn = commands.add_parser("unlearn", help="make a model forget part of its training data (LoTUS)")
    unlearn.add_argument(
        "--model", default="fashion-mnist-resnet", help="bundled name, model folder or Hub id[@rev]"
    )
    unlearn.add_argument("--revision", default=None, help="Hub revision of --model")
    unlearn.add_argument(
        "--method",
        default="lotus",
        choices=METHODS,
        help="lotus (default) or a baseline of the paper's comparison (lotus_hf.baselines)",
    )
    _data_flags(unlearn)
    _forget_flags(unlearn, default_first_percent=10)
    unlearn.add_argument(
        "--alpha", type=float, default=None, help="temperature sharpness (default 2; paper CIFAR-10: 8)"
    )
    unlearn.add_argument("--epochs", type=float, default=None, help="maximum epochs (default 10)")
    unlearn.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")
    unlearn.add_argument(
        "--learning-rate", type=float, default=None, help="AdamW learning rate (default 1e-4)"
    )
    unlearn.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default 5e-4)")
    unlearn.add_argument(
        "--retain-fraction", type=float, default=None, help="share rho of the retain set (0.3)"
    )
    unlearn.add_argument("--prob-transform", choices=("gumbel_softmax", "softmax"), default=None)
    unlearn.add_argument(
        "--class-forgetting",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="target unseen accuracy 0 (default: on with --forget-classes)",
    )
    baseline = unlearn.add_argument_group(
        "baseline hyper-parameters (BaselineConfig fields; default: the method's)"
    )
    for name, kind, help_text in _baseline_fields():
        baseline.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=help_text)
    unlearn.add_argument(
        "--retrained", default=None, help="a retrained model folder: adds JSD and Avg Gap to the report"
    )
    unlearn.add_argument(
        "--output-dir", default=None, help="new folder for the model and report (default runs/...)"
    )
    unlearn.add_argument(
        "--push-to-hub", metavar="ORG/NAME", default=None, help="push the unlearned model to this Hub repo"
    )
    unlearn.add_argument("--private", action="store_true", help="create the --push-to-hub repo as private")
    unlearn.add_argument(
        "--fit-head",
        action="store_true",
        help="first fine-tune a new head on the data set (for a model trained on other classes)",
    )
    unlearn.add_argument("--fit-head-epochs", type=int, default=3, help="epochs of --fit-head (default 3)")

    bench = commands.add_parser(
        "benchmark", help="compare LoTUS with retraining and the baselines: tables, JSON and plots"
    )
    bench.add_argument(
        "--model", default="fashion-mnist-resnet", help="the original: bundled name, folder or Hub id"
    )
    bench.add_argument(
        "--dataset", default="fashion_mnist", help="fashion_mnist, an image folder or a Hub data set"
    )
    _forget_flags(bench, default_first_percent=10)
    bench.add_argument("--seeds", default="3407,13,12", help="comma-separated seeds (default: the paper's)")
    bench.add_argument("--methods", default="all", help="comma-separated methods, or all (default)")
    bench.add_argument(
        "--train-subset",
        type=int,
        default=None,
        metavar="N",
        help="use a stratified subset of N training images; the original is then trained on it (cached)",
    )
    bench.add_argument("--recipe-epochs", type=int, default=None, help="epochs of the original's recipe")
    bench.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="override a method's config field, e.g. lotus.alpha=8 or scrub.num_train_epochs=2 (repeatable)",
    )
    bench.add_argument(
        "--cache-dir", default=None, help="where retrained models are cached (~/.cache/lotus-hf)"
    )
    bench.add_argument("--output-dir", default=None, help="new folder for results.md/json and plots")

    train = commands.add_parser(
        "train", help="train an original classifier, or retrain one without a forget set"
    )
    train.add_argument(
        "--model-config", default="resnet-small", help="resnet-small, vit-small or a config.json"
    )
    train.add_argument("--like", default=None, help="reuse the recipe of a model trained by `lotus-hf train`")
    _data_flags(train)
    _forget_flags(train, default_first_percent=None)
    train.add_argument("--epochs", type=int, default=None, help="epochs (default 30)")
    train.add_argument(
        "--image-size", type=int, default=None, help="input size (default: the data's; ignored with --like)"
    )
    train.add_argument("--learning-rate", type=float, default=None, help="AdamW learning rate (default 1e-3)")
    train.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default 5e-4)")
    train.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")
    train.add_argument("--output-dir", default=None, help="new folder for the model (default runs/...)")
    return parser


def _unlearn(args: argparse.Namespace) -> None:
    # Trainer creates its `output_dir` at once; point it at a scratch folder so that only a finished run
    # ever creates `--output-dir` (written atomically by `save_unlearned`).
    with tempfile.TemporaryDirectory(prefix="lotus-hf-") as scratch:
        _unlearn_in(args, scratch)


def _unlearn_in(args: argparse.Namespace, scratch: str) -> None:
    from accelerate import PartialState

    from .config import UnlearningConfig
    from .data import load_image_dataset, prepare_unlearning_data
    from .hub import (
        check_labels,
        check_output_dir,
        check_push_token,
        load_model,
        push_folder,
        unlearning_defaults,
    )
    from .pipeline import save_unlearned, unlearn

    output_dir = args.output_dir or _default_output(f"{Path(args.model.split('@')[0]).name}-unlearned")
    check_output_dir(output_dir)
    if args.push_to_hub:
        check_push_token()  # before any work: a run must not end in a push that cannot happen
    request = _forget_request(args, default_first_percent=10)
    overrides = {
        "alpha": args.alpha,
        "num_train_epochs": args.epochs,
        "per_device_train_batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "retain_fraction": args.retain_fraction,
        "prob_transform": args.prob_transform,
    }
    class_forgetting = (
        args.class_forgetting if args.class_forgetting is not None else request.kind == "classes"
    )
    recommended = unlearning_defaults(args.model) if args.method == "lotus" else {}
    settings = {**recommended, **{k: v for k, v in overrides.items() if v is not None}}
    model, processor = load_model(args.model, args.revision)
    base_model = model.config._name_or_path  # `name@revision` when a revision was asked for
    dataset = load_image_dataset(args.dataset, image_column=args.image_column, label_column=args.label_column)
    from .data import class_names_of

    class_names = class_names_of(dataset)
    if args.fit_head:
        from .pipeline import fit_head

        model, _ = load_model(args.model, args.revision, new_head=class_names)
        print(
            f"fitting a new head for {len(class_names)} classes on the training split ({args.fit_head_epochs} epochs)"
        )
        seconds = fit_head(model, dataset, processor, epochs=args.fit_head_epochs, seed=args.seed)
        print(f"head fitted in {seconds:.0f} s; this fine-tuned model is the original to unlearn from")
    check_labels(model, class_names)
    retrained = load_model(args.retrained)[0] if args.retrained else None
    # The config comes after the models: under DeepSpeed ZeRO-3 it turns on `zero.Init`, whose partitioned
    # weights transformers 5.24 cannot initialise for every model (ResNet); DeepSpeed shards them later.
    if args.method == "lotus":
        config = UnlearningConfig(
            output_dir=scratch,
            seed=args.seed,
            class_forgetting=class_forgetting,
            disable_tqdm=True,
            logging_strategy="no",
            **settings,
        )
    else:
        config = _baseline_config(args, settings, scratch)
    say = PartialState().print  # under several processes, the first one reports
    say(
        f"lotus-hf {__version__}: unlearning {request.describe()} of {args.dataset} from {args.model}",
        flush=True,
    )
    used = {k: v for k, v in recommended.items() if overrides.get(k) is None}
    if used:
        say(
            "settings from the model's unlearning_config.json: "
            + ", ".join(f"{k}={v}" for k, v in used.items())
            + " (the command's flags override them)",
            flush=True,
        )
    if args.method == "lotus":
        say(
            f"LoTUS: alpha {config.alpha}, {config.num_train_epochs:g} epochs at most, lr {config.learning_rate:g}"
        )
    else:
        hyper = config.method_hyperparameters()
        say(f"{args.method}: " + ", ".join(f"{k} {v}" for k, v in hyper.items() if k != "method"), flush=True)
    data = prepare_unlearning_data(dataset, request, processor, seed=args.seed)
    say(
        f"forget {len(data.forget)}, retain {len(data.retain)}, unseen {len(data.unseen)}, test {len(data.test)}",
        flush=True,
    )
    result = unlearn(model, data, config, retrained=retrained)
    accelerator = result.trainer.accelerator
    if not accelerator.is_main_process:  # under `accelerate launch`, one process reports and writes
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return
    for entry in result.trainer.history if args.method == "lotus" else ():
        print(
            f"epoch {entry['epoch']}: forget acc {entry['forget_accuracy']:.4f}, unseen acc "
            f"{entry['unseen_accuracy']:.4f}, delta {entry['delta']:+.2f}, tau {entry['tau']:.3f}"
            + (" -> stop" if entry["stop"] else "")
        )
    print()
    print(result.report.to_markdown())
    print(f"\nunlearning took {result.report.unlearning_seconds:.1f} s (rf_jsd: textbook JSD variant)")
    path = save_unlearned(result, processor, output_dir, base_model=base_model, dataset=args.dataset)
    print(f"saved the unlearned model, model card and report.json to {path}")
    if args.push_to_hub:
        print(f"pushed to {push_folder(path, args.push_to_hub, private=args.private)}")
    accelerator.wait_for_everyone()
    # Tear the process group down before exit: torch 2.13's gloo can abort ("terminate called without an
    # active exception") when a process exits while its group is alive.
    accelerator.end_training()


def _baseline_config(args: argparse.Namespace, settings: dict, scratch: str):
    """The `BaselineConfig` of `--method`: its defaults, the model's training recipe for `retrain` (when the
    model folder has one), then the command's flags."""
    from .baselines import BaselineConfig
    from .hub import resolve_model
    from .pipeline import RECIPE_FILE, Recipe, retrain_config

    lotus_only = {
        "alpha": args.alpha,
        "prob_transform": args.prob_transform,
        "class_forgetting": args.class_forgetting,
    }
    given = [name for name, value in lotus_only.items() if value is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ValueError(f"`{flag}` applies to `--method lotus` only; drop it or use `--method lotus`.")
    if args.method != "bad_teacher" and settings.pop("retain_fraction", None) is not None:
        raise ValueError("`--retain-fraction` applies to `--method lotus` and `--method bad_teacher` only.")
    fields = dict(settings, output_dir=scratch, seed=args.seed, disable_tqdm=True, logging_strategy="no")
    fields.update(
        {name: getattr(args, name) for name, _, _ in _baseline_fields() if getattr(args, name) is not None}
    )
    if args.method == "retrain":
        folder = Path(resolve_model(args.model))  # a Hub id has no local recipe: the method's defaults
        if (folder / RECIPE_FILE).is_file():
            recipe = Recipe.from_dir(folder)
            print(f"retrain: the recipe of {args.model} ({RECIPE_FILE}), flags override it")
            return retrain_config(recipe, **fields)
    return BaselineConfig(method=args.method, **fields)


def _method_overrides(items: list[str]) -> dict[str, dict]:
    """`["lotus.alpha=8", "scrub.num_train_epochs=2"]` -> `{"lotus": {"alpha": 8}, "scrub": {...}}`."""
    import json

    overrides: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"`--config` {item!r} must look like METHOD.FIELD=VALUE, e.g. lotus.alpha=8.")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        overrides.setdefault(method, {})[name] = parsed
    return overrides


def _benchmark(args: argparse.Namespace, argv: list[str] | None = None) -> None:
    from .baselines import METHODS
    from .benchmark import BenchmarkSpec, method_config, run_benchmark
    from .hub import check_output_dir

    output_dir = args.output_dir or _default_output(f"benchmark-{Path(args.model).name}")
    check_output_dir(output_dir)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"`--seeds` must be integers separated by commas, got {args.seeds!r}.") from None
    methods = (
        METHODS if args.methods == "all" else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    )
    spec = BenchmarkSpec(
        model=args.model,
        dataset=args.dataset,
        request=_forget_request(args, default_first_percent=10),
        seeds=seeds,
        methods=methods,
        train_subset=args.train_subset,
        recipe_epochs=args.recipe_epochs,
        config=_method_overrides(args.config),
        **({"cache_dir": args.cache_dir} if args.cache_dir else {}),
    )
    with tempfile.TemporaryDirectory(prefix="lotus-hf-") as scratch:
        for method in spec.methods:  # every config is valid before hours of training start
            if method != "retrain":
                method_config(method, spec, seeds[0], scratch)
    command = "lotus-hf " + " ".join(argv if argv is not None else sys.argv[1:])
    results = run_benchmark(spec, output_dir, log=lambda line: print(line, flush=True), command=command)
    print()
    print(Path(output_dir, "results.md").read_text())
    print(
        f"wrote results.md, results.json and plots to {output_dir} in {results['wall_seconds'] / 60:.1f} min"
    )


def _train(args: argparse.Namespace) -> None:
    from .data import load_image_dataset
    from .hub import check_output_dir, resolve_model
    from .pipeline import Recipe, image_processor_for, train_original

    recipe = (
        Recipe.from_dir(resolve_model(args.like)) if args.like else Recipe(model_config=args.model_config)
    )
    for field, value in (
        ("epochs", args.epochs),
        ("learning_rate", args.learning_rate),
        ("weight_decay", args.weight_decay),
        ("batch_size", args.batch_size),
    ):
        if value is not None:
            setattr(recipe, field, value)
    recipe.seed = args.seed
    request = _forget_request(args, default_first_percent=None)
    name = f"{Path(args.dataset).name}-{recipe.model_config.replace('.json', '')}" + (
        "-retrained" if request else ""
    )
    output_dir = args.output_dir or _default_output(name)
    check_output_dir(output_dir)
    dataset = load_image_dataset(args.dataset, image_column=args.image_column, label_column=args.label_column)
    print(
        f"training {recipe.model_config} on {args.dataset}"
        + (f" without {request.describe()}" if request else "")
    )
    if args.like:  # the retrained gold standard must see its inputs exactly as the original did
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(resolve_model(args.like))
    else:
        processor = image_processor_for(dataset["train"], image_size=args.image_size, seed=args.seed)
    summary = train_original(
        dataset, processor, recipe, output_dir, request=request, dataset_name=args.dataset
    )
    print(
        f"train accuracy {summary['train_accuracy']:.4f}, test accuracy {summary['test_accuracy']:.4f}, "
        f"{summary['training_seconds']:.0f} s; saved to {output_dir}"
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "benchmark":
            _benchmark(args, argv)
        else:
            {"unlearn": _unlearn, "train": _train}[args.command](args)
    except (ValueError, TypeError) as error:
        message = str(error)
        message = message if len(message) < 800 else message[:800] + " ..."
        print(f"lotus-hf {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lotus-hf {args.command}: interrupted; no output folder was written.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
