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
import os
import sys
import tempfile
from pathlib import Path

from . import __version__, _compat
from .arguments import (
    DataArguments,
    ForgetArguments,
    UnlearnArguments,
    VerifyArguments,
    build_parser,
    declared_fields,
    default_output,
    field_names,
    parse_given,
    peek,
    split_values,
)

# `TrainingArguments` fields the command owns itself: where the model goes and how it is pushed (`--output-dir`,
# `--push-to-hub ORG/NAME`, `--private`), and the token, which never goes on a command line.
OWNED_FIELDS = ("output_dir", "push_to_hub", "hub_model_id", "hub_private_repo", "hub_token", "hub_strategy")
# Shown by `--help` besides the fields a config declares itself; `--help-all` shows every flag.
SHOWN_TRAINING_FIELDS = ("seed", "bf16", "gradient_accumulation_steps", "logging_strategy", "max_steps")
# What the command's runs default to, unlike `TrainingArguments`: quiet, and no logging steps of their own.
COMMAND_DEFAULTS = {"disable_tqdm": True, "logging_strategy": "no"}


# --------------------------------------------------------------------------------------- commands
def unlearn_parser(method: str = "lotus", help_all: bool = False) -> argparse.ArgumentParser:
    """The parser of `lotus-hf unlearn --method METHOD`: the run's arguments and the method config's fields."""
    from .run import METHODS, method_config_class

    config_class = method_config_class(method)
    shown = {*declared_fields(config_class), *SHOWN_TRAINING_FIELDS}
    shown |= field_names(UnlearnArguments, DataArguments, ForgetArguments)
    description = (
        f"Make a model forget part of its training data ({method}). Every `{config_class.__name__}` field is a "
        "flag: `--help` lists the method's own and the common ones, `--help-all` all of them."
    )
    usage = (
        "lotus-hf unlearn [--model M] [--dataset D] [forget request] [--method M] [config fields] "
        "[--output-dir DIR] [--push-to-hub ORG/NAME] [--config FILE]"
    )
    groups = [UnlearnArguments, DataArguments, ForgetArguments, config_class]
    parser = build_parser("lotus-hf unlearn", description, groups, skip=OWNED_FIELDS, usage=usage,
                     shown=None if help_all else shown)  # fmt: skip
    parser.add_argument(
        "--help-all", action="help", help="Show every flag, all `TrainingArguments` fields too."
    )
    for action in parser._actions:
        if action.dest == "method":
            action.choices = METHODS
        # what --help shows: the method's own defaults and the command's, where they differ from the fields'
        action.default = {**getattr(config_class, "defaults", {}), **COMMAND_DEFAULTS}.get(
            action.dest, action.default
        )
    return parser


def _owners(name: str) -> list[str]:
    """The methods whose config declares the field `name` (for the error of a flag another method takes)."""
    from .run import METHODS, method_config_class

    return [method for method in METHODS if name in declared_fields(method_config_class(method))]


def unlearn_command(argv: list[str]) -> None:
    method = peek(argv, "method", "lotus")
    parser = unlearn_parser(method, help_all="--help-all" in argv)
    values = parse_given(parser, argv, "unlearn", owners=_owners)
    run_values, data_values, forget_values, config_values = split_values(values, UnlearnArguments, DataArguments,
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

    from .cards import hub_id
    from .config import MethodConfig, recommended_fields
    from .data import class_names_of, load_image_dataset, prepare_unlearning_data
    from .hub import (
        OutputError,
        check_labels,
        check_output_dir,
        check_push_token,
        load_model,
        push_folder,
        start_run_folder,  # fmt: skip
        unfinished_run,
    )
    from .provenance import check_trained_without
    from .run import fit_head, method_config, save_unlearned, unlearn

    output_dir = run.output_dir or default_output(f"{Path(run.model.split('@')[0]).name}-unlearned")
    unfinished = unfinished_run(output_dir)
    if unfinished is not None and not run.resume:
        raise OutputError(
            f"`output_dir` {output_dir!r} holds an unfinished run ({unfinished['request']} from "
            f"{unfinished['model']}): add `--resume` to continue it from its last checkpoint, or pass a new folder."
        )
    if unfinished is None and run.resume:
        raise OutputError(
            f"`--resume`: `output_dir` {output_dir!r} holds no unfinished run (one started with `--save-steps`): "
            "name that run's folder, or drop `--resume`."
        )
    if unfinished is None:
        check_output_dir(output_dir)
    if run.push_to_hub:
        if not hub_id(run.push_to_hub):
            raise ValueError(f"`--push-to-hub` must be a Hub repo id, ORG/NAME, got {run.push_to_hub!r}.")
        check_push_token()  # before any work: a run must not end in a push that cannot happen
    seed = config_values.get("seed", MethodConfig.seed)  # splits and request use the run's seed
    model, processor = load_model(run.model, run.revision)
    base_model = model.config._name_or_path  # `name@revision` when a revision was asked for
    dataset = load_image_dataset(data_args.dataset, image_column=data_args.image_column,
                                 label_column=data_args.label_column)  # fmt: skip
    request = forget.request(
        seed, default_percent=10, limit=len(dataset["train"]) if "train" in dataset else None
    )
    class_names = class_names_of(dataset)
    say = PartialState().print  # under several processes, the first one reports
    fitted = None
    if run.fit_head:
        from transformers import set_seed

        set_seed(seed)  # the new head's initial weights, so that the fitted original is reproducible
        model, _ = load_model(run.model, run.revision, new_head=class_names)
        say(
            f"fitting a new head for {len(class_names)} classes on the training split ({run.fit_head_epochs} epochs)"
        )
        seconds = fit_head(model, dataset, processor, epochs=run.fit_head_epochs, seed=seed)
        say(f"head fitted in {seconds:.0f} s; this fine-tuned model is the original to unlearn from")
        fitted = (f"The original is {run.model} with a new head for the data set's {len(class_names)} classes, "
                  f"fine-tuned on its training split for {run.fit_head_epochs} epochs (--fit-head) before "
                  "unlearning.")  # fmt: skip
    check_labels(model, class_names)
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
        model_name = f"{run.model}@{run.revision}" if run.revision else run.model
        used = {k: v for k, v in recommended_fields(model_name).items() if k not in config_values}
        if (
            used and request.kind != "classes"
        ):  # a class request takes its own settings (CLASS_REQUEST_FIELDS)
            listed = ", ".join(f"{k}={v}" for k, v in used.items())
            say(
                f"settings from the model's unlearning_config.json: {listed} (the command's flags override them)"
            )
        if config.class_forgetting and config.class_mode == "remaining":
            say(
                f"LoTUS, lotus-hf's class mode (docs/method.md): {config.num_train_epochs:g} epochs at most, "
                f"lr {config.learning_rate:g}; --class-mode paper runs the paper's"
            )
        else:
            say(
                f"LoTUS: alpha {config.alpha}, {config.num_train_epochs:g} epochs at most, lr {config.learning_rate:g}"
                + (" (the paper's class forgetting)" if config.class_forgetting else "")
            )
    else:
        hyper = config.method_hyperparameters()
        say(f"{run.method}: " + ", ".join(f"{k} {v}" for k, v in hyper.items() if k != "method"), flush=True)
    data = prepare_unlearning_data(dataset, request, processor, seed=config.seed)
    record = {"model": base_model, "dataset": data_args.dataset, "method": run.method, "request": request.describe(),
              "sha256": data.fingerprint["sha256"], "seed": config.seed}  # fmt: skip
    checkpoints = run.resume or config.save_strategy != "no"
    if unfinished is not None and {k: unfinished.get(k) for k in record} != record:
        changed = [k for k in record if unfinished.get(k) != record[k]]
        raise OutputError(
            f"`--resume`: the unfinished run in {output_dir!r} differs from this command in {changed} (it "
            f"unlearns {unfinished['request']} from {unfinished['model']}): run the command that started it, or "
            "pass a new folder."
        )
    if checkpoints and run.method != "lotus":
        raise ValueError(
            f"`--save-steps` and `--resume` are for LoTUS runs; drop them for `--method {run.method}`."
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
    say(f"forget {len(data.forget)}, retain {len(data.retain)}, unseen {len(data.unseen)}, test {len(data.test)}",
        flush=True)  # fmt: skip
    try:
        result = unlearn(model, data, config, base_model=base_model, dataset=data_args.dataset, retrained=retrained,
                         resume_from_checkpoint=run.resume or None)  # fmt: skip
    except KeyboardInterrupt:
        if checkpoints:
            message = f"the unfinished run in {output_dir} continues with the same command and --resume"
            raise KeyboardInterrupt(message) from None
        raise
    if fitted:
        result.report.notes.insert(0, fitted)
    state = PartialState()
    if state.is_main_process:  # under `accelerate launch`, one process reports and writes
        for entry in (e for e in result.history if "tau" in e):
            if "forget_member_rate" in entry:  # lotus-hf's class mode has its own stop rule (docs/method.md)
                probe = (f"forget called members {entry['forget_member_rate']:.4f} (stops at "
                         f"{entry['reference_member_rate']:.4f} once forget acc is 0)")  # fmt: skip
            else:
                probe = (f"unseen acc {entry['unseen_accuracy']:.4f}, delta {entry['delta']:+.2f}, "
                         f"tau {entry['tau']:.3f}")  # fmt: skip
            print(f"epoch {entry['epoch']}: forget acc {entry['forget_accuracy']:.4f}, {probe}"
                  + (" -> stop" if entry["stop"] else ""))  # fmt: skip
        print()
        print(result.report.to_markdown())
        print(f"\nunlearning took {result.report.unlearning_seconds:.1f} s (rf_jsd: textbook JSD variant)")
        for note in result.report.notes:
            print(f"note: {note}")
        print(verdict_text(result.report.verification))
        path = save_unlearned(result, processor, output_dir)
        print(f"saved the unlearned model, model card and report.json to {path}")
        if run.push_to_hub:
            print(f"pushed to {push_folder(path, run.push_to_hub, private=run.private)}")
    del result  # its trainer holds the DDP wrapper, and with it the process group
    _compat.leave_process_group(state)


def verdict_text(verification: dict) -> str:
    """The verdict a run ends with, its tests and what to do, as `lotus-hf unlearn` prints it."""
    from .cards import evidence_table

    return (f"\nverification on held-out data the run did not calibrate on: {verification['verdict']}\n"
            f"{evidence_table(verification)}\n{verification['advice']}")  # fmt: skip


def verify_command(argv: list[str]) -> None:
    import json

    from .hub import OutputError
    from .verify import recheck, verify, write_receipt

    groups = [VerifyArguments, DataArguments, ForgetArguments]
    parser = build_parser("lotus-hf verify", VerifyArguments.__doc__, groups)
    verify_values, data_values, forget_values, _ = split_values(parse_given(parser, argv, "verify"), *groups)
    args, data_args = VerifyArguments(**verify_values), DataArguments(**data_values)
    if args.recheck:
        confirmed, differences, result = recheck(args.recheck)
        print(result.to_text() + "\n")
        print("receipt confirmed: the same model, the same tests, the same verdict" if confirmed else
              "receipt NOT confirmed:\n" + "\n".join(f"- {d}" for d in differences))  # fmt: skip
        raise SystemExit(0 if confirmed else 1)
    if not args.model:
        raise ValueError("`--model` must name the model to verify: a folder, bundled name or Hub id.")
    if args.receipt and Path(args.receipt).exists():
        raise OutputError(
            f"`--receipt` {args.receipt!r} exists: pass a new file name (nothing is ever overwritten)."
        )
    request = ForgetArguments(**forget_values).request(args.seed or 0)
    if request is None:
        raise ValueError("give the deletion request to verify: `--forget-classes`, `--forget-indices`, ...")
    references = [r.strip() for r in (args.reference_models or "").split(",") if r.strip()]
    result = verify(args.model, data_args.dataset, request, revision=args.revision, seed=args.seed,
                    image_column=data_args.image_column, label_column=data_args.label_column,
                    reference_models=references or None)  # fmt: skip
    if args.receipt:
        write_receipt(result, args.receipt)
    print(json.dumps(result.to_dict()) if args.json else result.to_text())
    if args.receipt and not args.json:
        print(f"receipt written to {args.receipt}; `lotus-hf verify --recheck {args.receipt}` re-runs it")
    raise SystemExit(result.exit_code)


def _research(name: str):
    """A research-harness command (lotus_hf.research.commands), imported only when it runs."""

    def command(argv: list[str]) -> None:
        from .research import commands

        getattr(commands, f"{name}_command")(argv)

    return command


COMMANDS = {
    "unlearn": (unlearn_command, "make a model forget part of its training data (LoTUS or a baseline)"),
    "verify": (
        verify_command,
        "check that a model forgot a deletion request: its history, and what it knows now",
    ),
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
    except KeyboardInterrupt as stop:
        print(f"lotus-hf {command}: interrupted; {stop or 'no output folder was written'}.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
