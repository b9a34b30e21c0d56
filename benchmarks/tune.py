"""Tune every method alike before the committed benchmark: the same number of settings per method (its paper's own
hyper-parameters among them), run on seeds and classes that the benchmark does not report, each seed with its own
original. The best setting of each method by mean Avg Gap is what benchmarks/fashion_mnist.py then runs.

    .venv/bin/python benchmarks/tune.py [--only resnet-first10,vit-class]      # `make tune`
    .venv/bin/python benchmarks/tune.py --picks-only      # rewrite tuning.md and tuning.json from the cells' JSON
    .venv/bin/python benchmarks/tune.py --only resnet-first10 --rerun salun      # rerun some methods of a cell

Seeds 1 and 2 (the benchmark reports 3407, 13, 12); class cells forget Bag (the benchmark reports Sandal and Shirt);
the same stratified 6,000-image subset as the benchmark's subset cells. The full-data cell takes the settings tuned
on its 6,000-image counterpart (tuning on all 60,000 images would cost about two hours per method and seed pair).
Writes benchmarks/results/fashion_mnist/tuning/<cell>/ (one `lotus-hf benchmark --grid` run per cell),
tuning.md and tuning.json (the picks, which benchmarks/fashion_mnist.py reads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from lotus_hf.cli import main as lotus_hf
from lotus_hf.data import ForgetRequest
from lotus_hf.hub import atomic_output_dir
from lotus_hf.research.benchmark import (
    BenchmarkSpec,
    base_method,
    minutes_from_empty_cache,
    render_markdown,
    replacing,
    summarise,
)
from lotus_hf.research.plots import plot

RESULTS = Path(os.path.relpath(Path(__file__).parent / "results" / "fashion_mnist"))
TUNING = RESULTS / "tuning"
SEEDS = "1,2"
SUBSET = "6000"
CELLS = {
    "resnet-first10": ["--model", "fashion-mnist-resnet", "--forget-first-percent", "10"],
    "resnet-class": ["--model", "fashion-mnist-resnet", "--forget-classes", "Bag"],
    "vit-first10": ["--model", "fashion-mnist-vit", "--forget-first-percent", "10"],
    "vit-class": ["--model", "fashion-mnist-vit", "--forget-classes", "Bag"],
}


def _product(first: tuple[str, list], second: tuple[str, list], **fixed) -> list[dict]:
    return [{first[0]: a, second[0]: b, **fixed} for a in first[1] for b in second[1]]


# Six settings per method. The first of each is the paper's (or the method's reference) setting.
FINE_TUNING = _product(("learning_rate", [1e-3, 1e-2, 5e-2]), ("num_train_epochs", [5, 2]))
BASELINES = {
    "finetune": FINE_TUNING,
    "neggrad_plus": FINE_TUNING,
    "random_labels": FINE_TUNING,
    "salun": [
        {"learning_rate": 1e-3, "num_train_epochs": 5, "salun_sparsity": 0.1},
        {"learning_rate": 1e-2, "num_train_epochs": 5, "salun_sparsity": 0.1},
        {"learning_rate": 5e-2, "num_train_epochs": 2, "salun_sparsity": 0.1},
        {"learning_rate": 1e-2, "num_train_epochs": 5, "salun_sparsity": 0.5},
        {"learning_rate": 1e-2, "num_train_epochs": 2, "salun_sparsity": 0.5},
        {"learning_rate": 5e-2, "num_train_epochs": 2, "salun_sparsity": 0.5},
    ],
    "bad_teacher": _product(("learning_rate", [1e-4, 1e-3]), ("num_train_epochs", [1, 2, 3])),
    "scrub": [
        {"scrub_temperature": t, "scrub_max_epochs": m, "num_train_epochs": e}
        for t in (4.0, 2.0)
        for m, e in ((2, 3), (1, 3), (3, 4))
    ],
    "ssd": _product(("ssd_alpha", [10.0, 3.0, 1.0]), ("ssd_lambda", [1.0, 0.5])),
}
# LoTUS: the paper's settings (alpha, epochs, learning rate) first, then settings around those picked before.
LOTUS_RESNET = [
    {"alpha": 8, "num_train_epochs": 10, "learning_rate": 1e-4},  # paper, ResNet-18 on CIFAR-10
    {"alpha": 2, "num_train_epochs": 10, "learning_rate": 1e-4},  # paper, ResNet-18 on other data sets
    {"alpha": 8, "num_train_epochs": 1, "learning_rate": 5e-4},
    {"alpha": 14, "num_train_epochs": 2, "learning_rate": 1e-4},  # the bundled unlearning_config.json
    {"alpha": 4, "num_train_epochs": 5, "learning_rate": 5e-4},
    {"alpha": 16, "num_train_epochs": 3, "learning_rate": 1e-3},
]
LOTUS_VIT = [
    {
        "alpha": 2,
        "num_train_epochs": 3,
        "learning_rate": 1e-6,
        "per_device_train_batch_size": 32,
    },  # paper, ViT-B/16
    {"alpha": 2, "num_train_epochs": 10, "learning_rate": 1e-4},
    {"alpha": 8, "num_train_epochs": 10, "learning_rate": 1e-4},
    {"alpha": 4, "num_train_epochs": 5, "learning_rate": 5e-4},
    {"alpha": 16, "num_train_epochs": 2, "learning_rate": 1e-4},
    {"alpha": 8, "num_train_epochs": 3, "learning_rate": 1e-3},
]
# Class forgetting: three settings in the paper's mode (its class-forgetting row first), three in lotus-hf's class
# mode (docs/method.md), where alpha plays no part: its learning rate sets how finely the stop can land.
LOTUS_CLASS = [
    {"class_mode": "paper", "alpha": 32, "num_train_epochs": 10, "learning_rate": 1e-4},  # paper
    {"class_mode": "paper", "alpha": 64, "num_train_epochs": 5, "learning_rate": 1e-4},
    {"class_mode": "paper", "alpha": 8, "num_train_epochs": 10, "learning_rate": 1e-3},
    {"class_mode": "remaining", "num_train_epochs": 10, "learning_rate": 2e-4},
    {"class_mode": "remaining", "num_train_epochs": 20, "learning_rate": 2e-4},
    {"class_mode": "remaining", "num_train_epochs": 10, "learning_rate": 5e-4},
]
LOTUS = {
    "resnet-first10": LOTUS_RESNET,
    "vit-first10": LOTUS_VIT,
    "resnet-class": LOTUS_CLASS,
    "vit-class": LOTUS_CLASS,
}


def grid(cell: str) -> dict[str, list[dict]]:
    return {"lotus": LOTUS[cell], **BASELINES}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--only", default=",".join(CELLS), help=f"comma-separated cells of {', '.join(CELLS)}"
    )
    parser.add_argument("--picks-only", action="store_true", help="rewrite the picks from the cells' JSON")
    parser.add_argument("--rerun", help="comma-separated methods to run again in each cell of --only, the cell's "
                        "other methods kept (after a fix to those methods)")  # fmt: skip
    args = parser.parse_args()
    cells = args.only.split(",")
    unknown = sorted(set(cells) - set(CELLS))
    if unknown:
        parser.error(f"--only names unknown cells {unknown}; pick from {', '.join(CELLS)}")
    if args.rerun:
        methods = args.rerun.split(",")
        unknown = sorted(set(methods) - set(grid(cells[0])))
        if unknown:
            parser.error(f"--rerun names unknown methods {unknown}; pick from {', '.join(grid(cells[0]))}")
        missing = [c for c in cells if not (TUNING / c / "results.json").is_file()]
        if missing:
            parser.error(
                f"--rerun keeps the other methods of a tuned cell; tune {missing} first (without --rerun)"
            )
        for cell in cells:
            rerun(cell, methods)
    elif not args.picks_only:
        for cell in cells:
            start = time.perf_counter()
            argv = ["benchmark", *CELLS[cell], "--seeds", SEEDS, "--train-subset", SUBSET,
                    "--grid", json.dumps(grid(cell)), "--cache-dir", str(RESULTS.parent / "cache"),
                    "--output-dir", str(TUNING / cell)]  # fmt: skip
            print(f"== tuning {cell}", flush=True)
            with replacing(TUNING / cell):  # the committed results come back if the cell fails
                if lotus_hf(argv) != 0:
                    raise SystemExit(f"tuning {cell} failed")
            print(f"== {cell}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    write_picks()


def rerun(cell: str, methods: list[str]) -> None:
    """Run `methods` of a tuned cell again and merge their rows into it: the cell's other rows, its originals and
    retrained models are kept (the cache gives the same models; checked below), its summary drawn again."""
    old = json.loads((TUNING / cell / "results.json").read_text())
    partial = TUNING / f".{cell}.rerun"
    shutil.rmtree(partial, ignore_errors=True)
    argv = ["benchmark", *CELLS[cell], "--seeds", SEEDS, "--train-subset", SUBSET,
            "--grid", json.dumps({m: grid(cell)[m] for m in methods}), "--cache-dir", str(RESULTS.parent / "cache"),
            "--output-dir", str(partial)]  # fmt: skip
    print(f"== tuning {cell} again for {', '.join(methods)}", flush=True)
    if lotus_hf(argv) != 0:
        raise SystemExit(f"tuning {cell} again failed")
    new = json.loads((partial / "results.json").read_text())
    for kind in ("original", "retrain"):  # the same cached models, so the same numbers
        before = {r["seed"]: r["avg_gap"] for r in old["runs"] if r["method"] == kind}
        after = {r["seed"]: r["avg_gap"] for r in new["runs"] if r["method"] == kind}
        if before != after:
            raise SystemExit(
                f"{cell}: the {kind} models differ from the cell's ({before} vs {after}); rerun it whole"
            )
    runs = [r for r in old["runs"] if base_method(r["method"]) not in methods]
    runs += [r for r in new["runs"] if base_method(r["method"]) in methods]
    args = dict(zip(CELLS[cell][::2], CELLS[cell][1::2], strict=True))
    request = (ForgetRequest.classes(args["--forget-classes"].split(",")) if "--forget-classes" in args
               else ForgetRequest.first_percent(float(args["--forget-first-percent"])))  # fmt: skip
    spec = BenchmarkSpec(model=args["--model"], request=request, seeds=tuple(old["seeds"]), grid=grid(cell),
                         train_subset=old["train_subset"])  # fmt: skip
    results = summarise(spec, runs, subset_size=old["train_samples"], wall_seconds=old["wall_seconds"],
                        retrain_timed=old["retrain_timed"])  # fmt: skip
    for key in ("command", "date", "cached_training_seconds"):
        results[key] = old[key]
    results["reran"] = [*old.get("reran", []), {"methods": methods, "command": new["command"], "date": new["date"],
                                                "wall_seconds": new["wall_seconds"]}]  # fmt: skip
    with replacing(TUNING / cell) as previous, atomic_output_dir(TUNING / cell) as staging:
        (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        plot(results, staging)
        (staging / "results.md").write_text(render_markdown(results))
        if (previous / "NOTE.md").is_file():
            shutil.copy(previous / "NOTE.md", staging / "NOTE.md")
    shutil.rmtree(partial, ignore_errors=True)


def picks(results: dict) -> dict[str, dict]:
    """Each method's best setting; in a class cell LoTUS's best per class mode, `lotus` being the better mode's."""
    chosen = {}
    for method, tuning in results["tuning"].items():
        chosen[method] = {"setting": tuning["best"], "fields": tuning["settings"][tuning["best"] - 1],
                          "avg_gap": tuning["avg_gap"][tuning["best"] - 1]}  # fmt: skip
    modes = {s.get("class_mode") for s in results["tuning"]["lotus"]["settings"]} - {None}
    if modes:
        tuning = results["tuning"]["lotus"]
        per_mode = {}
        for mode in sorted(modes):
            indices = [i for i, s in enumerate(tuning["settings"], 1) if s.get("class_mode") == mode]
            best = min(indices, key=lambda i: tuning["avg_gap"][i - 1])
            per_mode[mode] = {
                "setting": best,
                "fields": tuning["settings"][best - 1],
                "avg_gap": tuning["avg_gap"][best - 1],
            }
        better = min(per_mode, key=lambda m: per_mode[m]["avg_gap"])
        chosen["lotus"] = per_mode[better]
        for mode, pick in per_mode.items():
            if mode != better:
                chosen[f"lotus/{mode}"] = pick
    return chosen


def write_picks() -> None:
    cells = {c: json.loads((TUNING / c / "results.json").read_text()) for c in CELLS if (TUNING / c).exists()}
    tuned = {cell: picks(results) for cell, results in cells.items()}
    lines = [
        "# Tuning: every method alike\n",
        "Command: `.venv/bin/python benchmarks/tune.py` (`make tune`). Each method runs its six settings of "
        "benchmarks/tune.py (the first is its paper's) on seeds 1 and 2, each seed with its own original and "
        "retrained model, on the benchmark's 6,000-image subset; class cells forget Bag. None of these seeds or "
        "classes is reported in the benchmark. Picked: the lowest mean Avg Gap over the two seeds. Per cell, every "
        "setting's numbers are in tuning/<cell>/results.md.\n",
        "| cell | method | picked setting | Avg Gap (seeds 1, 2) | its paper's setting (#1) | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for cell, results in cells.items():
        minutes = minutes_from_empty_cache([results])
        for method, pick in tuned[cell].items():
            base = method.split("/")[0]
            first = results["tuning"][base]["avg_gap"][0]
            noop = " *(no change)*" if results["summary"][f"{base}#{pick['setting']}"]["no_op"] else ""
            fields = ", ".join(f"`{k}`={v}" for k, v in pick["fields"].items())
            lines.append(f"| {cell} | {method} | #{pick['setting']}: {fields}{noop} | {pick['avg_gap']:.4f} | "
                         f"{first:.4f} | {minutes:.0f} |")  # fmt: skip
    (RESULTS / "tuning.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "tuning.json").write_text(json.dumps({"picks": tuned, "cells": {
        c: {k: r[k] for k in ("command", "seeds", "train_samples", "wall_seconds", "tuning")} for c, r in cells.items()
    }}, indent=2) + "\n")  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
