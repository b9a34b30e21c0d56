"""The `lotus-hf` command: parse, call the library, print.

Every flag comes from a dataclass (lotus_hf.arguments): the run's own, and every field of the method's config
(`UnlearningConfig` for LoTUS, `BeliefRelabelConfig`, a baseline's config with `--method`). `--config FILE` loads a
whole run; flags override it.

    lotus-hf unlearn                      # bundled ResNet, Fashion-MNIST, first 10% of each class
    lotus-hf unlearn --forget-classes Sandal
    lotus-hf verify --model runs/... --forget-classes Sandal
    lotus-hf unlearn --method scrub --help

`train` and `benchmark` belong to the research harness (lotus_hf.research.commands).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import _compat
from .arguments import (
    DataArguments,
    ForgetArguments,
    UnlearnArguments,
    VerifyArguments,
    config_file,
    declared_fields,
    default_output,
    given_fields,
    help_text,
    parse,
    parser_for,
)
from .errors import ArgumentError, LotusError, OutputError
from .hooks import probe_line
from .version import __version__

# Shown by `--help` besides the fields a config declares itself; `--help-all` shows every flag.
SHOWN_TRAINING_FIELDS = (
    "seed",
    "bf16",
    "gradient_accumulation_steps",
    "logging_strategy",
    "max_steps",
    "save_steps",
)
# `TrainingArguments` fields the command owns itself (`--output-dir`, `--push-to-hub ORG/NAME`, `--private`), and the
# token, which never goes on a command line or into a file.
OWNED_FIELDS = ("hub_model_id", "hub_private_repo", "hub_token", "hub_strategy", "push_to_hub")


# --------------------------------------------------------------------------------------- unlearn
def unlearn_command(argv: list[str]) -> None:
    from .methods import METHODS, default_method, method_config_class

    file_values = config_file(argv)
    run, data_args, forget, rest = parse(
        "lotus-hf unlearn", [UnlearnArguments, DataArguments, ForgetArguments], argv, file_values, rest=True
    )
    wants_help = {"-h", "--help", "--help-all"} & set(argv)
    request = forget.request(0, default_percent=10)  # the seed of a fraction request is set below
    method = run.method or default_method(request, run.model)
    config_class = method_config_class(method)
    if wants_help:
        shown = None if "--help-all" in argv else {*declared_fields(config_class), *SHOWN_TRAINING_FIELDS}
        run_help = parser_for("lotus-hf unlearn", [UnlearnArguments, DataArguments, ForgetArguments]).format_help()
        print(
            run_help
            + f"\n{config_class.__name__} (--method {method}; `--help-all` shows every field):\n"
            + help_text("lotus-hf unlearn", config_class, shown)
        )
        raise SystemExit(0)
    owners = lambda name: [m for m in METHODS if name in declared_fields(METHODS[m][0])]  # noqa: E731
    fields = given_fields(
        "lotus-hf unlearn", config_class, [a for a in rest if a not in ("--help-all",)], file_values, owners
    )
    owned = sorted(set(fields) & set(OWNED_FIELDS))
    if owned:
        raise ArgumentError(
            f"`{owned[0]}` is not a flag of `lotus-hf unlearn`: push with `--push-to-hub ORG/NAME` (and `--private`); "
            "the token comes from HF_TOKEN or `hf auth login`, never from a flag or a file."
        )
    # Trainer writes into its `output_dir` at once; it works in a scratch folder, so that only a finished run
    # ever creates `--output-dir` (written atomically).
    with tempfile.TemporaryDirectory(prefix="lotus-hf-") as scratch:
        _unlearn(run, data_args, forget, method, fields, scratch)


def _unlearn(
    run: UnlearnArguments, data_args: DataArguments, forget: ForgetArguments, method: str, fields: dict, scratch: str
) -> None:
    from accelerate import PartialState

    from .cost import describe_cost
    from .data import class_names_of, load_image_dataset, prepare_unlearning_data
    from .loading import load_model
    from .methods import default_method, method_config, recommended_fields
    from .names import hub_id, split_revision
    from .provenance import check_trained_without
    from .push import check_push_token, push_folder
    from .recipe import fit_head
    from .requests import DEFAULT_SEED
    from .run import save_unlearned, unlearn
    from .saving import check_same_run, open_output_dir, start_run_folder

    output_dir = run.output_dir or default_output(f"{Path(split_revision(run.model)[0]).name}-unlearned")
    unfinished = open_output_dir(output_dir, run.resume)
    if run.push_to_hub:
        if not hub_id(run.push_to_hub):
            raise ArgumentError(f"`--push-to-hub` must be a Hub repo id, ORG/NAME, got {run.push_to_hub!r}.")
        check_push_token()  # before any work: a run must not end in a push that cannot happen
    model_name = f"{run.model}@{run.revision}" if run.revision else run.model
    # one seed for the request, the splits, a fitted head and the run: the flag's, else the one the model recommends
    recommended = recommended_fields(model_name, method, forget.request(0, default_percent=10))
    seed = fields.get("seed", recommended.get("seed", DEFAULT_SEED))
    model, processor = load_model(run.model, run.revision)
    base_model = model.config._name_or_path  # `name@revision` when a revision was asked for
    dataset = load_image_dataset(
        data_args.dataset, image_column=data_args.image_column, label_column=data_args.label_column
    )
    request = forget.request(seed, default_percent=10, limit=len(dataset["train"]) if "train" in dataset else None)
    class_names = class_names_of(dataset)
    say = PartialState().print  # under several processes, the first one reports
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
            f"fine-tuned on its training split for {run.fit_head_epochs} epochs (--fit-head) before "
            "unlearning."
        )
    from .loading import check_labels

    check_labels(model, class_names)
    # The config comes after the models: under DeepSpeed ZeRO-3 it turns on `zero.Init`, whose partitioned
    # weights transformers 5.24 cannot initialise for every model (ResNet); DeepSpeed shards them later.
    config = method_config(
        method,
        model_name,
        request,
        **{"logging_strategy": "no", "disable_tqdm": run.quiet, **fields, "output_dir": scratch},
    )
    assert config.seed == seed  # one seed: the flag's, else the model's, else lotus-hf's
    say(
        f"lotus-hf {__version__}: unlearning {request.describe()} of {data_args.dataset} from {run.model}",
        flush=True,
    )
    used = {k: getattr(config, k) for k, layer in config.field_sources.items() if layer == "model"}
    if used:
        say(
            f"settings the model's {'recipe' if method == 'retrain' else 'unlearning_config.json'} (or the request) "
            f"gives: {', '.join(f'{k}={v}' for k, v in used.items())} (flags override them)"
        )
    say(_method_line(config), flush=True)
    if run.method is None and method != default_method(request):  # the model's own default, not lotus-hf's
        kind = "class" if request.kind == "classes" else "sample"
        say(
            f"(no --method: {method} is {run.model}'s default for {kind} requests, the method its "
            "budgeted benchmark verified `forgotten` most often within 10% of a retraining; its "
            "unlearning_config.json "
            "says so. `--method lotus` runs LoTUS.)"
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
    if checkpoints:  # the checkpoints go into the run's own folder, marked unfinished until the model is in
        config.output_dir = output_dir
        if unfinished is None and PartialState().is_main_process:
            start_run_folder(output_dir, record)
    retrained = None
    if run.retrained:
        warning = check_trained_without(run.retrained, data.fingerprint)
        if warning:
            say(f"warning: {warning}")
        retrained = load_model(run.retrained)[0]
    say(
        f"forget {len(data.forget)}, retain {len(data.retain)}, unseen {len(data.unseen)}, test {len(data.test)}",
        flush=True,
    )
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
    state = PartialState()
    if state.is_main_process:  # under `accelerate launch`, one process reports and writes
        if run.quiet:  # otherwise each probe was shown above the progress bar as it happened
            for entry in (e for e in result.history if "forget_accuracy" in e):
                print(probe_line(entry["epoch"], entry))
        print()
        print(result.report.to_markdown())
        print(f"\nunlearning took {result.report.unlearning_seconds:.1f} s (rf_jsd: textbook JSD variant)")
        print(describe_cost(result.report.cost))
        for note in result.report.notes:
            print(f"note: {note}")
        print(verdict_text(result.report.verification))
        path = save_unlearned(result, processor, output_dir)
        print(f"saved the unlearned model, model card and report.json to {path}")
        if run.push_to_hub:
            print(f"pushed to {push_folder(path, run.push_to_hub, private=run.private)}")
    del result  # its trainer holds the DDP wrapper, and with it the process group
    _compat.leave_process_group(state)


def _method_line(config) -> str:
    """What runs, in one line: the method's name, the settings that matter, and what stops it."""
    stops = []
    if config.budget is not None:
        stops.append(f"at {config.budget:.0%} of a retraining's cost")
    if config.stop_when_verified:
        stops.append("as soon as the verifier's checks say forgotten")
    return config.summary() + (f"; stops {', or '.join(stops)}" if stops else "")


def verdict_text(verification: dict) -> str:
    """The verdict a run ends with, its tests and what to do, as `lotus-hf unlearn` prints it."""
    from .cards import evidence_table

    return (
        f"\nverification on held-out data the run did not calibrate on: {verification['verdict']}\n"
        f"{evidence_table(verification)}\n{verification['advice']}"
    )


# ---------------------------------------------------------------------------------------- verify
def verify_command(argv: list[str]) -> None:
    import json

    from .verify import recheck, verify, write_receipt

    groups = [VerifyArguments, DataArguments, ForgetArguments]
    args, data_args, forget = parse("lotus-hf verify", groups, argv, config_file(argv))
    if args.recheck:
        confirmed, differences, result = recheck(args.recheck, heldout=args.heldout)
        print(result.to_text() + "\n")
        print(
            "receipt confirmed: the same model, the same tests, the same verdict"
            if confirmed
            else "receipt NOT confirmed:\n" + "\n".join(f"- {d}" for d in differences)
        )
        raise SystemExit(0 if confirmed else 1)
    if not args.model:
        raise ArgumentError("`--model` must name the model to verify: a folder, bundled name or Hub id.")
    if args.receipt and Path(args.receipt).exists():
        raise OutputError(f"`--receipt` {args.receipt!r} exists: pass a new file name (nothing is ever overwritten).")
    request = forget.request(args.seed or 0)
    if request is None:
        raise ArgumentError("give the deletion request to verify: `--forget-classes`, `--forget-indices`, ...")
    references = [r.strip() for r in (args.reference_models or "").split(",") if r.strip()]
    result = verify(
        args.model,
        data_args.dataset,
        request,
        revision=args.revision,
        seed=args.seed,
        image_column=data_args.image_column,
        label_column=data_args.label_column,
        reference_models=references or None,
        original=args.original,
        heldout=args.heldout,
    )
    if args.receipt:
        write_receipt(result, args.receipt)
    print(json.dumps(result.to_dict()) if args.json else result.to_text())
    if args.receipt and not args.json:
        print(f"receipt written to {args.receipt}; `lotus-hf verify --recheck {args.receipt}` re-runs it")
    raise SystemExit(result.exit_code)


# ------------------------------------------------------------------------------------------ main
def _research(name: str):
    """A research-harness command (lotus_hf.research.commands), imported only when it runs."""

    def command(argv: list[str]) -> None:
        from .research import commands

        getattr(commands, f"{name}_command")(argv)

    return command


COMMANDS = {
    "unlearn": (
        unlearn_command,
        "make a model forget part of its training data (LoTUS, Belief Relabel or a baseline)",
    ),
    "verify": (
        verify_command,
        "does a model behave as if it never saw a forget set? a verdict from its behaviour",
    ),
    "train": (_research("train"), "train an original classifier, or retrain one without a forget set"),
    "benchmark": (_research("benchmark"), "compare LoTUS with retraining and the baselines"),
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(prog="lotus-hf", description="LoTUS machine unlearning for image classifiers.")
    top.add_argument("--version", action="version", version=f"lotus-hf {__version__}")
    top.add_argument("command", choices=COMMANDS, help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    command = top.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv).command
    try:
        COMMANDS[command][0](argv[1:])
    except SystemExit as stop:  # argparse: --help (0) or a flag it cannot parse (2, its message printed)
        return stop.code if isinstance(stop.code, int) else 2
    except LotusError as error:  # bad input, typed (lotus_hf.errors): a message, no traceback
        message = str(error)
        message = message if len(message) < 800 else message[:800] + " ..."
        print(f"lotus-hf {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print(f"lotus-hf {command}: interrupted; {stop or 'no output folder was written'}.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
