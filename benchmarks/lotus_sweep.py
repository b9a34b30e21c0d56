"""Pick LoTUS's alpha, epochs and learning rate for a benchmark cell on one or more seeds (the baselines keep
the spec's defaults).

    .venv/bin/python benchmarks/lotus_sweep.py --cell resnet-first10 --grid 2:2,4:2,8:2:3e-4 [--seeds 1,2]

Runs `lotus-hf benchmark --methods lotus` per grid point, `alpha:epochs[:learning_rate]` (the learning rate
defaults to the model's bundled one), with originals and retrained models from the cache of
benchmarks/fashion_mnist.py. Rows are added to benchmarks/results/fashion_mnist/sweep-<cell>[-seeds-...].{md,json}
(a point run again replaces its row), so the files keep every point tried and every command.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fashion_mnist import CELLS, FULL, RESULTS

from lotus_hf.cli import main as lotus_hf
from lotus_hf.evaluation import markdown_table
from lotus_hf.requests import DEFAULT_SEED, PAPER_SEEDS


def _fields(assignments: list[str]) -> dict:
    """`["retain_fraction=0.5"]` -> `{"retain_fraction": 0.5}` (values read as JSON where they can be)."""
    fields = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        try:
            fields[name] = json.loads(value)
        except json.JSONDecodeError:
            fields[name] = value
    return fields


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cell", required=True, choices=list(CELLS))
    parser.add_argument("--grid", required=True, help="alpha:epochs[:learning_rate] points, comma-separated")
    parser.add_argument(
        "--seeds",
        default=str(DEFAULT_SEED),
        help=f"comma-separated; best kept apart from the reported seeds ({', '.join(map(str, PAPER_SEEDS))})",
    )
    parser.add_argument("--train-subset", type=int, default=6000)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="another UnlearningConfig field, every point",
    )
    args = parser.parse_args()
    subset = None if args.cell in FULL else args.train_subset
    subset_args = [] if subset is None else ["--train-subset", str(subset)]
    tag = "" if args.seeds == str(DEFAULT_SEED) else "-seeds-" + args.seeds.replace(",", "-")
    tag += "" if subset in (None, 6000) else f"-subset-{subset}"  # the first sweeps ran on 6,000 images
    record = RESULTS / f"sweep-{args.cell}{tag}.json"
    previous = json.loads(record.read_text()) if record.exists() else {}
    # rows from before the learning rate was swept ran at the bundled 1e-4
    rows = {_key(r): r for r in ({"learning_rate": 1e-4, "other": "", **r} for r in previous.get("rows", []))}
    for point in args.grid.split(","):
        alpha, epochs, *lr = point.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            argv = [
                "benchmark",
                *CELLS[args.cell],
                *subset_args,
                "--methods",
                "lotus",
                "--seeds",
                args.seeds,
                "--cache-dir",
                str(RESULTS.parent / "cache"),
                "--method-config",
                json.dumps(
                    {
                        "lotus": {
                            "alpha": float(alpha),
                            "num_train_epochs": float(epochs),
                            **({"learning_rate": float(lr[0])} if lr else {}),
                            **_fields(args.set),
                        }
                    }
                ),
                "--output-dir",
                f"{tmp}/out",
            ]
            if lotus_hf(argv) != 0:
                raise SystemExit(f"{point} failed")
            result = json.loads(Path(tmp, "out", "results.json").read_text())
        lotus = result["summary"]["lotus"]
        row = {
            "alpha": float(alpha),
            "epochs": int(epochs),
            "learning_rate": float(lotus["hyperparameters"]["learning_rate"]),
            "other": " ".join(args.set),
            **{k: lotus[k]["mean"] for k in ("avg_gap", "acc_forget", "acc_retain", "acc_test", "mia", "seconds")},
            "share_of_retrain": lotus["share_of_retrain"]["mean"],
        }
        rows[_key(row)] = row
    command = (
        f".venv/bin/python benchmarks/lotus_sweep.py --cell {args.cell} --grid {args.grid} --seeds {args.seeds}"
        + "".join(f" --set {field}" for field in args.set)
        + "".join(f" {a}" for a in subset_args)
    )
    commands = [*previous.get("commands", [previous["command"]] if "command" in previous else []), command]
    lines = [
        f"# LoTUS sweep, {args.cell}, seeds {args.seeds} (means over the seeds), {subset or 'all'} training images\n",
        "Commands:\n",
        *[f"- `{c}`" for c in commands],
        "",
    ]
    header = [
        "alpha",
        "epochs",
        "lr",
        "other",
        "Avg Gap",
        "acc forget",
        "acc retain",
        "acc test",
        "MIA",
        "s",
        "share of retrain",
    ]
    table = [
        [
            f"{r['alpha']:g}",
            str(r["epochs"]),
            f"{r['learning_rate']:g}",
            r["other"],
            f"{r['avg_gap']:.4f}",
            f"{r['acc_forget']:.4f}",
            f"{r['acc_retain']:.4f}",
            f"{r['acc_test']:.4f}",
            f"{r['mia']:.4f}",
            f"{r['seconds']:.1f}",
            f"{100 * r['share_of_retrain']:.1f}%",
        ]
        for r in sorted(rows.values(), key=lambda r: r["avg_gap"])
    ]
    lines.append(markdown_table(header, table))
    record.write_text(json.dumps({"commands": commands, "rows": list(rows.values())}, indent=2) + "\n")
    (RESULTS / f"sweep-{args.cell}{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _key(row: dict) -> tuple:
    return row["alpha"], row["epochs"], row["learning_rate"], row["other"]


if __name__ == "__main__":
    main()
