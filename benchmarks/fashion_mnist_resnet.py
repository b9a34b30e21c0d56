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
from lotus_hf.evaluation import markdown_table
from lotus_hf.loading import load_model
from lotus_hf.recipe import Recipe
from lotus_hf.requests import DEFAULT_SEED
from lotus_hf.research.training import train_original
from lotus_hf.run import unlearn

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrained", default=None, help="a retrained model folder to reuse")
    parser.add_argument("--settings", default="2:10,8:10", help="alpha:epochs pairs for LoTUS")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--render-only", action="store_true", help="rewrite the markdown from the JSON")
    args = parser.parse_args()
    if args.render_only:
        render(json.loads((RESULTS / "fashion_mnist_resnet.json").read_text()))
        return

    request = ForgetRequest.first_percent(10)
    dataset = load_image_dataset("fashion_mnist")
    model, processor = load_model("fashion-mnist-resnet")
    retrained_dir = Path(args.retrained or RESULTS / "retrained-resnet")
    retrain_seconds = None
    if not retrained_dir.exists():
        recipe = Recipe.from_model("fashion-mnist-resnet")
        summary = train_original(dataset, processor, recipe, retrained_dir, request=request)
        retrain_seconds = summary["training_seconds"]
    else:
        retrain_seconds = json.loads((retrained_dir / "training_recipe.json").read_text())["training_seconds"]
    retrained = load_model(str(retrained_dir))[0]
    data = prepare_unlearning_data(dataset, request, processor, seed=args.seed)

    runs = []
    for setting in filter(None, args.settings.split(",")):
        alpha, epochs = (float(x) for x in setting.split(":"))
        model, _ = load_model("fashion-mnist-resnet")
        config = UnlearningConfig(
            output_dir="/tmp/lotus-bench",
            alpha=alpha,
            num_train_epochs=epochs,
            seed=args.seed,
            disable_tqdm=True,
            logging_strategy="no",
        )
        result = unlearn(model, data, config, retrained=retrained, retrain_seconds=retrain_seconds)
        runs.append({"alpha": alpha, "epochs": epochs, "history": result.history, **result.report.to_dict()})
        print(f"alpha {alpha} epochs {epochs}\n{result.report.to_markdown()}", flush=True)

    RESULTS.mkdir(exist_ok=True)
    result = {
        "command": "python " + " ".join(sys.argv),
        "date": time.ctime(),
        "retrained": str(retrained_dir),
        "runs": runs,
    }
    (RESULTS / "fashion_mnist_resnet.json").write_text(json.dumps(result, indent=2) + "\n")
    render(result)


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"


def render(result: dict) -> None:
    """Write the markdown report from the JSON one."""
    runs = result["runs"]
    lines = [
        "# Fashion-MNIST, bundled ResNet, forget first 10% per class\n",
        f"Command: `{result['command']}` ({result.get('date', '')})\n",
        f"Retrained model: `{result.get('retrained', '')}` (this script trains it when the folder is absent; its "
        "wall time is read from its `training_recipe.json`). One seed (3407); times on this 2-core VM, where "
        "wall times vary by up to 25% between runs.\n",
        "## Summary\n",
    ]
    summary = []
    for run in runs:
        epochs_run = sum(1 for entry in run["history"] if not entry["stop"])
        share = run["unlearning_seconds"] / run["retrain_seconds"]
        summary.append(
            [
                f"{run['alpha']:g}",
                f"{run['epochs']:g}",
                str(epochs_run),
                f"{run['rows']['unlearned']['avg_gap']:.4f}",
                f"{run['unlearning_seconds']:.1f}",
                f"{run['retrain_seconds']:.0f}",
                f"{100 * share:.1f}%",
            ]
        )
    header = ["alpha", "max epochs", "epochs run", "Avg Gap", "LoTUS s", "retrain s", "share of retrain"]
    lines.append(markdown_table(header, summary))
    for run in runs:
        lines.append(f"\n## LoTUS alpha={run['alpha']:g}, epochs={run['epochs']:g}\n")
        rows = run["rows"]
        keys = list(rows["unlearned"])
        table = [[name, *(_cell(row.get(k)) for k in keys)] for name, row in rows.items()]
        lines.append(markdown_table(["model", *keys], table))
        probes = ", ".join(f"{e['forget_accuracy']:.4f}/tau {e['tau']:.2f}" for e in run["history"])
        lines.append(f"\nProbes before each epoch (forget accuracy / tau): {probes}")
    (RESULTS / "fashion_mnist_resnet.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
