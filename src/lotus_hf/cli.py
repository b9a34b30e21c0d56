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
    method = run.method or default_method(forget.kind(), run.model)
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
    from .run import unlearn_from_arguments

    state = PartialState()
    say = state.print  # under several processes, the first one reports
    done = unlearn_from_arguments(run, data_args, forget, method, fields, scratch, say=say)
    result = done.result
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
        print(f"saved the unlearned model, model card and report.json to {done.path}")
        if done.pushed:
            print(f"pushed to {done.pushed}")
    del result, done  # the trainer holds the DDP wrapper, and with it the process group
    _compat.leave_process_group(state)


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
