"""The committed benchmark: bundled ResNet and ViT on Fashion-MNIST; forget the first 10% of each class, or a whole
class (Sandal, and Shirt, the most confusable); seeds 3407, 13 and 12, each with its own original and retrained
model; every method at the setting benchmarks/tune.py picked for it on other seeds and classes. One
`lotus-hf benchmark` run per cell, then a summary.

    .venv/bin/python benchmarks/fashion_mnist.py [--only resnet-first10,...]        # `make benchmark`
    .venv/bin/python benchmarks/fashion_mnist.py --only resnet-first10-full        # `make benchmark-full`
    .venv/bin/python benchmarks/fashion_mnist.py --summary-only        # redraw tables and summary from the JSON

The default cells must fit in 90 minutes on the 2-core CPU VM, so they train their originals and retrained models
on a stratified subset of 6,000 training images (documented in every table). resnet-first10-full is the paper's
protocol on all 60,000 images; it takes well over an hour by itself, so it runs only when asked. Trained models
are cached in benchmarks/results/cache/ (git-ignored), keyed by everything they depend on; one retraining per
cell is timed again in every run so that shares of its time compare times of one session.
Writes benchmarks/results/fashion_mnist/<cell>/ and benchmarks/results/fashion_mnist/summary.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from lotus_hf.cli import main as lotus_hf
from lotus_hf.research.benchmark import (
    cached_not_trained,
    minutes_from_empty_cache,
    render_markdown,
    replacing,
)
from lotus_hf.research.plots import plot

# relative to the working directory where possible, so the commands written into the results carry no
# machine's absolute paths (run from the repository root: `make benchmark`)
RESULTS = Path(os.path.relpath(Path(__file__).parent / "results" / "fashion_mnist"))
CELLS = {
    "resnet-first10": ["--model", "fashion-mnist-resnet", "--forget-first-percent", "10"],
    "resnet-class": ["--model", "fashion-mnist-resnet", "--forget-classes", "Sandal"],
    "resnet-class-shirt": ["--model", "fashion-mnist-resnet", "--forget-classes", "Shirt"],
    "vit-first10": ["--model", "fashion-mnist-vit", "--forget-first-percent", "10"],
    "vit-class": ["--model", "fashion-mnist-vit", "--forget-classes", "Sandal"],
    "vit-class-shirt": ["--model", "fashion-mnist-vit", "--forget-classes", "Shirt"],
    "resnet-first10-full": ["--model", "fashion-mnist-resnet", "--forget-first-percent", "10"],
}
FULL = {"resnet-first10-full"}  # cells on the whole training split (no subset)
DEFAULT_CELLS = [c for c in CELLS if c not in FULL]  # the 90-minute run
# The tuning cell (benchmarks/tune.py) whose picks each cell runs with.
TUNED_ON = {
    "resnet-first10": "resnet-first10",
    "resnet-class": "resnet-class",
    "resnet-class-shirt": "resnet-class",
    "vit-first10": "vit-first10",
    "vit-class": "vit-class",
    "vit-class-shirt": "vit-class",
    "resnet-first10-full": "resnet-first10",
}


def tuned(cell: str) -> dict[str, dict]:
    """The fields each method (and LoTUS's other class mode, as `lotus/<mode>`) runs with in `cell`."""
    path = RESULTS / "tuning.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `make tune` (benchmarks/tune.py) first.")
    tuned_cells = json.loads(path.read_text())["picks"]
    if TUNED_ON[cell] not in tuned_cells:
        raise SystemExit(
            f"{path} has no picks for {cell}: run `benchmarks/tune.py --only {TUNED_ON[cell]}` first."
        )
    picks = tuned_cells[TUNED_ON[cell]]
    order = sorted(
        picks, key=lambda m: (not m.startswith("lotus"), m != "lotus")
    )  # LoTUS first, stable otherwise
    return {method: picks[method]["fields"] for method in order}


PAPER = {
    "lotus_avg_gap_resnet_cifar10": 0.0375,
    "lotus_share_resnet_cifar10": 0.29 / 5.32,
    "pearson": "0.92 ± 0.04",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-subset", type=int, default=6000, help="training images of the subset cells")
    parser.add_argument(
        "--only", default=",".join(DEFAULT_CELLS), help=f"comma-separated cells of {', '.join(CELLS)}"
    )
    parser.add_argument(
        "--summary-only", action="store_true", help="rewrite the summary from the cells' JSON"
    )
    args = parser.parse_args()
    cells = args.only.split(",")
    unknown = sorted(set(cells) - set(CELLS))
    if unknown:
        parser.error(f"--only names unknown cells {unknown}; pick from {', '.join(CELLS)}")
    start = time.perf_counter()
    if not args.summary_only:
        for cell in cells:
            config = tuned(cell)
            methods = ["--methods", ",".join([*config, "retrain"]), "--method-config", json.dumps(config)]
            subset = [] if cell in FULL else ["--train-subset", str(args.train_subset)]
            argv = ["benchmark", *CELLS[cell], *methods, *subset,
                    "--cache-dir", str(RESULTS.parent / "cache"), "--output-dir", str(RESULTS / cell)]  # fmt: skip
            print(f"== {cell}: lotus-hf {' '.join(argv)}", flush=True)
            with replacing(RESULTS / cell):  # the committed results come back if the cell fails
                if lotus_hf(argv) != 0:
                    raise SystemExit(f"{cell} failed")
    if not args.summary_only:
        record_run(cells, time.perf_counter() - start)
    summarise()


# each set of cells run together: its wall time and each cell's
RUNS = RESULTS / "runs.json"


def record_run(cells: list[str], seconds: float) -> None:
    """Record this run of `cells`: its wall time and each cell's. A later run of the same cells replaces it."""
    runs = json.loads(RUNS.read_text()) if RUNS.is_file() else {}
    runs[",".join(sorted(cells))] = {
        "wall_seconds": seconds,
        "cell_wall_seconds": {
            c: json.loads((RESULTS / c / "results.json").read_text())["wall_seconds"] for c in cells
        },
    }
    RUNS.write_text(json.dumps(runs, indent=2) + "\n")


def one_run_minutes(cells: dict[str, dict]) -> float | None:
    """The minutes of the one run, from an empty cache, that wrote the results of all of `cells` as they are now;
    None if there was no such run."""
    run = (json.loads(RUNS.read_text()) if RUNS.is_file() else {}).get(",".join(sorted(cells)))
    if run is None or any(run["cell_wall_seconds"].get(c) != r["wall_seconds"] for c, r in cells.items()):
        return None
    return None if cached_not_trained(list(cells.values())) else run["wall_seconds"] / 60


def _pm(stat: dict) -> str:
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


# Issue 15's goals for class forgetting, against the retrained model of the same seeds.
CLASS_GOALS = {"avg_gap": 0.03, "acc_forget": 0.05, "acc_test_remaining": 0.01, "share": 0.10}


def _verdict(value: float, limit: float) -> str:
    return f"{value:.4f} ✓" if value <= limit else f"{value:.4f} ✗ (by {value - limit:.4f})"


def class_goals(cells: dict) -> list[str]:
    """Each class mode on each class cell against the goals: Avg Gap <= 0.03 and the lowest of all methods,
    forget accuracy within 0.05 of retraining's, kept-class test accuracy within 0.01 of it, at most 10% of
    retraining's time. A miss says by how much."""
    rows = []
    for name, r in cells.items():
        if "class" not in name:
            continue
        summary, retrain = r["summary"], r["summary"]["retrain"]
        for mode in [m for m in summary if m.startswith("lotus")]:
            row = summary[mode]
            others = [
                m for m in summary if m not in ("original", "retrain", mode) and not m.startswith("lotus")
            ]
            best_other = min(summary[m]["avg_gap"]["mean"] for m in others)

            gap = row["avg_gap"]["mean"]
            lowest = "✓" if gap < best_other else f"✗ (by {gap - best_other:.4f})"
            forget = abs(row["acc_forget"]["mean"] - retrain["acc_forget"]["mean"])
            kept = abs(row["acc_test_remaining"]["mean"] - retrain["acc_test_remaining"]["mean"])
            share = row["share_of_retrain"]["mean"]
            over = 100 * (share - CLASS_GOALS["share"])
            goals = (_verdict(gap, CLASS_GOALS["avg_gap"]), lowest, _verdict(forget, CLASS_GOALS["acc_forget"]),
                     _verdict(kept, CLASS_GOALS["acc_test_remaining"]),
                     f"{100 * share:.1f}% " + ("✓" if over <= 0 else f"✗ (by {over:.1f} points)"))  # fmt: skip
            rows.append(f"| {name} | {mode} | {' | '.join(goals)} |")
    if not rows:
        return []
    return [
        "Class forgetting against its goals (means over the seeds; differences are to the retrained model's means; "
        "✗ says by how much a goal is missed):\n",
        "| cell | mode | Avg Gap ≤ 0.03 | lowest of all methods | \\|Δ acc forget\\| ≤ 0.05 | "
        "\\|Δ acc test, kept classes\\| ≤ 0.01 | share of retrain ≤ 10% |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def summarise() -> None:
    cells = {
        c: json.loads((RESULTS / c / "results.json").read_text()) for c in CELLS if (RESULTS / c).exists()
    }
    # Cells measured before the tuned protocol (no per-seed originals, no paper aggregation) are left out of the
    # summary and named, until they are run again.
    stale = [c for c, r in cells.items() if "avg_gap_paper" not in r["summary"].get("lotus", {})]
    cells = {c: r for c, r in cells.items() if c not in stale}
    for cell, result in cells.items():  # redraw each cell's table and plots from its JSON
        plot(result, RESULTS / cell)
        (RESULTS / cell / "results.md").write_text(render_markdown(result))
    minutes = {c: minutes_from_empty_cache([r]) for c, r in cells.items()}
    ran = [c for c in cells if c in DEFAULT_CELLS]
    total = minutes_from_empty_cache([cells[c] for c in ran])
    measured = one_run_minutes({c: cells[c] for c in ran}) if len(ran) == len(DEFAULT_CELLS) else None
    if measured is not None:
        timing = f"took {measured:.1f} min in one run from an empty cache"
    else:
        timing = (f"take {total:.1f} min in all from an empty cache (each cell's last run, plus, once each, the "
                  "training time of the originals and retrained models it read from the cache)")  # fmt: skip
    full = "".join(
        f" The cell {c} (all {cells[c]['train_samples']:,} training images, `--only {c}`, `make benchmark-full`) "
        f"takes {minutes[c]:.1f} min by itself."
        for c in cells
        if c in FULL
    )
    lines = [
        "# Fashion-MNIST benchmark: LoTUS, retraining and seven baselines, every method tuned alike\n",
        f"Command: `.venv/bin/python benchmarks/fashion_mnist.py` (`make benchmark`). The {len(ran)} of its "
        f"{len(DEFAULT_CELLS)} default cells below {timing} on this 2-core CPU VM.{full} Every method "
        "runs at the setting benchmarks/tune.py picked for it on seeds 1 and 2 and, for class cells, the class Bag "
        "([tuning.md](tuning.md)); the seeds reported here (3407, 13, 12) each have their own original and retrained "
        "model. No gradient is clipped (`max_grad_norm=0`, as in the paper's code).\n",
        "Avg Gap: mean ± std of the per-seed gaps; (paper): the paper's aggregation, per metric |mean(method) - "
        "mean(retrain)|, averaged, the one comparable with the paper's numbers. Share: the method's time over one "
        "retraining timed in the same run. In class cells `lotus` is lotus-hf's class mode "
        '(`class_mode="remaining"`, the default for class requests) and `lotus/paper` the paper\'s.\n',
        "| cell | images | LoTUS Avg Gap | LoTUS Avg Gap (paper) | LoTUS share | LoTUS paper mode (paper agg.) | "
        "best other method, Avg Gap | (paper agg.) | lowest | retrain s | Pearson r textbook / reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for name, r in cells.items():
        summary = r["summary"]
        lotus = summary["lotus"]
        others = {
            m: v for m, v in summary.items() if m not in ("original", "retrain") and not m.startswith("lotus")
        }
        best = min(others, key=lambda m: others[m]["avg_gap"]["mean"])
        paper_mode = summary.get("lotus/paper")
        bold = "**" if r["lowest_avg_gap"] == "lotus" else ""
        pearson = " / ".join(
            "-" if v is None else f"{v:.3f}" for v in (r["pearson_rf_jsd_vs_jsd"], r.get("pearson_reference"))
        )
        paper_cell = "-" if paper_mode is None else f"{paper_mode['avg_gap_paper']:.4f}"
        timed = (r.get("retrain_timed") or {}).get("seconds") or summary["retrain"]["seconds"]["mean"]
        lines.append(
            f"| [{name}]({name}/results.md) | {r['train_samples']:,} | {bold}{_pm(lotus['avg_gap'])}{bold} | "
            f"{lotus['avg_gap_paper']:.4f} | {100 * lotus['share_of_retrain']['mean']:.1f}% | "
            f"{paper_cell} | "
            f"{best}{' *(no change)*' if others[best].get('no_op') else ''} {_pm(others[best]['avg_gap'])} | "
            f"{others[best]['avg_gap_paper']:.4f} | "
            f"{r['lowest_avg_gap']} / {r['lowest_avg_gap_paper']} | {timed:.0f} | {pearson} |"
        )
        still = [m for m, v in summary.items() if v.get("no_op")]
        if still:
            notes.append(f"{name}: {', '.join(still)} left the model as it was, at its best setting.")
    pearsons = {k: [r[k] for c, r in cells.items() if "first10" in c and r.get(k) is not None]
                for k in ("pearson_rf_jsd_vs_jsd", "pearson_reference")}  # fmt: skip
    mean_r = {
        k: f"{np.mean(v):.2f} ± {np.std(v, ddof=1):.2f}" if len(v) > 1 else "-" for k, v in pearsons.items()
    }
    if stale:
        folders = "their folders hold" if len(stale) > 1 else "its folder holds"
        notes.append(f"Not yet run with the tuned protocol, so left out: {', '.join(stale)} ({folders} the "
                     "earlier measurement, with clipping and untuned baselines).")  # fmt: skip
    lines += ["", *(f"- {note}" for note in notes), "", *class_goals(cells)]
    lines += [
        "",
        "Pearson r of RF-JSD against JSD over the sample-forgetting cells, mean ± std: textbook "
        f"**{mean_r['pearson_rf_jsd_vs_jsd']}**, reference form **{mean_r['pearson_reference']}** (paper, reference "
        f"form: {PAPER['pearson']} over 10 benchmarks). In class cells RF-JSD is not the yardstick: its reference is "
        "the original's outputs on unseen samples of the forgotten class, which a model that forgot the class is "
        "far from by design; read acc forget, acc test (kept classes) and MIA there.\n",
        f"Paper, ResNet-18 / CIFAR-10, 10% forget: LoTUS Avg Gap {PAPER['lotus_avg_gap_resnet_cifar10']} (paper "
        f"aggregation) in {100 * PAPER['lotus_share_resnet_cifar10']:.1f}% of retraining's time (0.29 vs 5.32 min).\n",
    ]
    keys = ("command", "train_samples", "lowest_avg_gap", "lowest_avg_gap_paper", "pearson_rf_jsd_vs_jsd",
            "pearson_reference", "wall_seconds", "retrain_timed")  # fmt: skip
    summary = {
        "cells": {
            n: {k: r.get(k) for k in keys}
            | {m: r["summary"][m] for m in r["summary"] if m.startswith("lotus") or m == "retrain"}
            for n, r in cells.items()
        },
        "pearson_mean_std": mean_r,
        "total_minutes": total,
        "minutes_per_cell": minutes,
        "one_run_minutes": measured,
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
