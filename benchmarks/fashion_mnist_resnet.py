"""Benchmark: bundled ResNet on Fashion-MNIST, forget = first 10% of each class.

Rows: original, retrained (gold standard, trained on the retain set with the original's recipe) and LoTUS
for each (alpha, epochs) setting; the four accuracies, MIA, RF-JSD (both variants), JSD, Avg Gap and the
wall time of LoTUS and of retraining. Writes benchmarks/results/fashion_mnist_resnet.{md,json}.

    .venv/bin/python benchmarks/fashion_mnist_resnet.py [--retrained DIR] [--settings 2:10,8:10]

Retraining takes ~15-20 min on a 2-core CPU; pass --retrained to reuse a model from an earlier run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lotus_hf import ForgetRequest, UnlearningConfig, load_image_dataset, prepare_unlearning_data
from lotus_hf.hub import load_model, resolve_model
from lotus_hf.pipeline import Recipe, train_original, unlearn

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrained", default=None, help="a retrained model folder to reuse")
    parser.add_argument("--settings", default="2:10,8:10", help="alpha:epochs pairs for LoTUS")
    parser.add_argument("--seed", type=int, default=3407)
    args = parser.parse_args()

    request = ForgetRequest.first_percent(10)
    dataset = load_image_dataset("fashion_mnist")
    model, processor = load_model("fashion-mnist-resnet")
    retrained_dir = Path(args.retrained or RESULTS / "retrained-resnet")
    retrain_seconds = None
    if not retrained_dir.exists():
        recipe = Recipe.from_dir(resolve_model("fashion-mnist-resnet"))
        summary = train_original(dataset, processor, recipe, retrained_dir, request=request)
        retrain_seconds = summary["training_seconds"]
    else:
        retrain_seconds = json.loads((retrained_dir / "training_recipe.json").read_text())["training_seconds"]
    retrained = load_model(str(retrained_dir))[0]
    data = prepare_unlearning_data(dataset, request, processor, seed=args.seed)

    runs = []
    for setting in args.settings.split(","):
        alpha, epochs = (float(x) for x in setting.split(":"))
        model, _ = load_model("fashion-mnist-resnet")
        config = UnlearningConfig(output_dir="/tmp/lotus-bench", alpha=alpha, num_train_epochs=epochs,
                                  seed=args.seed, disable_tqdm=True, logging_strategy="no")  # fmt: skip
        result = unlearn(model, data, config, retrained=retrained, retrain_seconds=retrain_seconds)
        runs.append({"alpha": alpha, "epochs": epochs, **result.report.to_dict()})
        print(f"alpha {alpha} epochs {epochs}\n{result.report.to_markdown()}", flush=True)

    RESULTS.mkdir(exist_ok=True)
    command = "python " + " ".join(sys.argv)
    (RESULTS / "fashion_mnist_resnet.json").write_text(
        json.dumps({"command": command, "runs": runs}, indent=2)
    )
    lines = [
        f"# Fashion-MNIST, bundled ResNet, forget first 10% per class\n\nCommand: `{command}` ({time.ctime()})\n"
    ]
    for run in runs:
        lines.append(f"## LoTUS alpha={run['alpha']} epochs={run['epochs']}\n")
        rows = run["rows"]
        keys = list(rows["unlearned"])
        lines.append("| model | " + " | ".join(keys) + " |")
        lines.append("|---" * (len(keys) + 1) + "|")
        for name, row in rows.items():
            lines.append(
                f"| {name} | "
                + " | ".join("-" if row.get(k) is None else f"{row[k]:.4f}" for k in keys)
                + " |"
            )
        share = (
            run["unlearning_seconds"] / run["retrain_seconds"] if run.get("retrain_seconds") else float("nan")
        )
        lines.append(
            f"\nLoTUS {run['unlearning_seconds']:.1f} s, retrain {run['retrain_seconds']:.0f} s "
            f"({100 * share:.1f}% of retraining)\n"
        )
    (RESULTS / "fashion_mnist_resnet.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
