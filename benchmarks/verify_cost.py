"""What the default verdict costs, with and without the `heldout_unseen_*` tests (docs/verification.md), against one
evaluation of a run, for the bundled ResNet on Fashion-MNIST (forget the first 10% of each class, seed 3407).

The verdict reads the model's outputs on the forget set and on the held-out half of the test split; the
`heldout_unseen_*` tests add its outputs on the other half (one more forward pass over 5,000 images) and two more
bootstraps. The goal: a verdict costs no more than one evaluation of an unlearned model (its outputs on the four
splits, 70,000 images). Each part is timed three times (the median is reported), and counted in examples through a
forward pass, the hardware-independent unit of lotus_hf.cost. Writes benchmarks/results/verify_cost.{md,json}.

    .venv/bin/python benchmarks/verify_cost.py
"""

from __future__ import annotations

import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from lotus_hf import ForgetRequest, load_image_dataset
from lotus_hf.data import prepare_unlearning_data
from lotus_hf.evaluation import Evaluation, markdown_table, predict_logits
from lotus_hf.evidence import log_softmax, verify_outputs
from lotus_hf.loading import load_model

RESULTS = Path(__file__).parent / "results"
REPEATS = 3


def timed(fn) -> tuple[float, object]:
    """The median seconds of `REPEATS` calls of `fn`, and its last value."""
    seconds, value = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        value = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), value


def main() -> None:
    model, processor = load_model("fashion-mnist-resnet")
    model.eval()
    data = prepare_unlearning_data(
        load_image_dataset("fashion_mnist"), ForgetRequest.first_percent(10), processor, seed=3407
    )
    splits = {"forget": data.forget, "test": data.test, "unseen": data.unseen}
    forward, outputs = {}, {}
    for name, rows in splits.items():
        forward[name], logits = timed(lambda rows=rows: predict_logits(model, rows))
        outputs[name] = log_softmax(logits.double().numpy())
    labels = {name: rows.labels.numpy() for name, rows in splits.items()}
    kind = data.fingerprint["kind"]

    def verdict(twin: bool):
        return verify_outputs(
            outputs["forget"],
            labels["forget"],
            outputs["test"],
            labels["test"],
            kind=kind,
            calibration_log_probs=outputs["unseen"] if twin else None,
            calibration_labels=labels["unseen"] if twin else None,
        )

    tests_without, without = timed(lambda: verdict(False))
    tests_with, found = timed(lambda: verdict(True))
    evaluation = Evaluation(data, copy.deepcopy(model))
    evaluation(model)  # the first call also computes the original's outputs, which a run's evaluation reuses
    evaluate, _ = timed(lambda: evaluation(model))

    sizes = {name: len(rows) for name, rows in splits.items()}
    rows = [
        {
            "what": "verdict without heldout_unseen_*",
            "examples": sizes["forget"] + sizes["test"],
            "seconds": forward["forget"] + forward["test"] + tests_without,
        },
        {
            "what": "verdict with heldout_unseen_* (the default)",
            "examples": sizes["forget"] + sizes["test"] + sizes["unseen"],
            "seconds": forward["forget"] + forward["test"] + forward["unseen"] + tests_with,
        },
        {
            "what": "one evaluation of an unlearned model",
            "examples": sizes["forget"] + len(data.retain) + sizes["test"] + sizes["unseen"],
            "seconds": evaluate,
        },
    ]
    for row in rows:
        row["share_of_evaluation"] = row["seconds"] / evaluate
    result = {
        "command": "python " + " ".join(sys.argv),
        "torch": torch.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "request": "fashion_mnist, first 10% of each class, seed 3407, bundled ResNet (the original)",
        "rows": rows,
        "bootstrap_seconds": {"without": tests_without, "with": tests_with},
        "forward_seconds": forward,
        "verdict": {"without": without.verdict, "with": found.verdict},
        "heldout_unseen": [
            {"test": e.test, "statistic": e.statistic, "interval": e.interval, "outcome": e.outcome}
            for e in found.evidence
            if e.test.startswith("heldout_unseen")
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "verify_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table(
        ["", "examples through a forward pass", "seconds", "share of one evaluation"],
        [[r["what"], f"{r['examples']:,}", f"{r['seconds']:.1f}", f"{r['share_of_evaluation']:.2f}"] for r in rows],
    )
    unseen = "; ".join(
        f"`{e['test']}` {e['statistic']:.4f} [{e['interval'][0]:.4f}, {e['interval'][1]:.4f}] {e['outcome']}"
        for e in result["heldout_unseen"]
    )
    (RESULTS / "verify_cost.md").write_text(
        "# What a verdict costs\n\n"
        f"Command: `{result['command']}` ({time.ctime()}; torch {result['torch']}; {result['machine']}; medians of "
        f"{REPEATS})\n\n{result['request']}.\n\n{table}\n\n"
        f"The bootstraps take {tests_without:.1f} s without the two tests and {tests_with:.1f} s with them. The "
        f"original's verdict: {without.verdict} without, {found.verdict} with; {unseen}.\n"
    )
    print((RESULTS / "verify_cost.md").read_text())


if __name__ == "__main__":
    main()
