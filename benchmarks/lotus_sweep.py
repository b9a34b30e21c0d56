"""Pick LoTUS's alpha and epochs for a benchmark cell on one seed (the baselines keep the spec's defaults).

    .venv/bin/python benchmarks/lotus_sweep.py --cell resnet-first10 --grid 2:2,4:2,8:2 [--seed 3407]

Runs `lotus-hf benchmark --methods lotus` per grid point (originals and retrained models come from the cache
of benchmarks/fashion_mnist.py) and writes benchmarks/results/fashion_mnist/sweep-<cell>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fashion_mnist import CELLS, RESULTS

from lotus_hf.cli import main as lotus_hf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cell", required=True, choices=list(CELLS))
    parser.add_argument("--grid", required=True, help="alpha:epochs pairs, comma-separated")
    parser.add_argument("--seed", type=int, default=3407)
    parser.add_argument("--train-subset", type=int, default=6000)
    args = parser.parse_args()
    rows = []
    for point in args.grid.split(","):
        alpha, epochs = point.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            argv = [
                "benchmark",
                *CELLS[args.cell],
                "--train-subset",
                str(args.train_subset),
                "--methods",
                "lotus",
                "--seeds",
                str(args.seed),
                "--cache-dir",
                str(RESULTS.parent / "cache"),
                "--config",
                f"lotus.alpha={alpha}",
                "--config",
                f"lotus.num_train_epochs={epochs}",
                "--output-dir",
                f"{tmp}/out",
            ]
            if lotus_hf(argv) != 0:
                raise SystemExit(f"{point} failed")
            result = json.loads(Path(tmp, "out", "results.json").read_text())
        lotus = result["summary"]["lotus"]
        rows.append(
            {
                "alpha": float(alpha),
                "epochs": int(epochs),
                **{
                    k: lotus[k]["mean"]
                    for k in ("avg_gap", "acc_forget", "acc_retain", "acc_test", "mia", "seconds")
                },
                "share_of_retrain": lotus["share_of_retrain"]["mean"],
            }
        )
    command = (
        f".venv/bin/python benchmarks/lotus_sweep.py --cell {args.cell} --grid {args.grid} --seed {args.seed}"
    )
    lines = [
        f"# LoTUS sweep, {args.cell}, seed {args.seed}\n",
        f"Command: `{command}`\n",
        "| alpha | epochs | Avg Gap | acc forget | acc retain | acc test | MIA | s | share of retrain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['alpha']:g} | {r['epochs']} | {r['avg_gap']:.4f} | {r['acc_forget']:.4f} | {r['acc_retain']:.4f} "
            f"| {r['acc_test']:.4f} | {r['mia']:.4f} | {r['seconds']:.1f} | {100 * r['share_of_retrain']:.1f}% |"
        )
    (RESULTS / f"sweep-{args.cell}.json").write_text(
        json.dumps({"command": command, "rows": rows}, indent=2) + "\n"
    )
    (RESULTS / f"sweep-{args.cell}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
