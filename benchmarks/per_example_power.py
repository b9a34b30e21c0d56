"""How strong is `lotus-hf verify --reference-models`? The rate of forget samples its per-example score flags at a 1%
false-positive rate (TPR at 1% FPR, the figure the membership-inference literature reports), on the original, the
gold standard and each method at its 10%-budget pick, with K = 2, 4 and 8 reference models, and what the references
cost: K retrainings.

    .venv/bin/python benchmarks/per_example_power.py        # after `make benchmark` (its cache holds most models)

The ResNet sample cell of the committed benchmark (bundled ResNet, the 6,000-image subset, forget the first 10% of
each class), target seed 3407: its original, its gold standard (retrained without the forget set, seed 3407) and each
method run from that original at its pick for the 10% budget (benchmarks/results/fashion_mnist/tuning.json). The
references are gold standards of other seeds (13, 12, 7, 42, then 1, 101, 102, 103), from the benchmark's cache or
trained here with the same recipe. The score is the verifier's: a sample's logit-scaled confidence under the model
minus its mean under the K references; its threshold is the 99th percentile of the same score on the public held-out
half (no model trained on it), so 1% of unseen samples pass it. Also the verifier's own count: the forget samples the
per-example test flags (Benjamini-Hochberg at 5%). Writes benchmarks/results/per_example_power.{md,json}.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lotus_hf.baselines.base import fresh_model
from lotus_hf.data import class_names_of, load_image_dataset, split_unlearning_data
from lotus_hf.evaluation import markdown_table, predict_logits
from lotus_hf.evidence import log_softmax, logit_confidence, verify_outputs
from lotus_hf.images import preprocess
from lotus_hf.loading import load_model
from lotus_hf.methods import method_config
from lotus_hf.requests import ForgetRequest, stratified_subset
from lotus_hf.research.benchmark import BenchmarkSpec, cache_parts, cached_training, spec_recipe
from lotus_hf.run import unlearn

ROOT = Path(os.path.relpath(Path(__file__).parent))
RESULTS = ROOT / "results"
CACHE = RESULTS / "cache"
TARGET = 3407
REFERENCE_SEEDS = (13, 12, 7, 42, 1, 101, 102, 103)
KS = (2, 4, 8)
FPR = 0.01


def main() -> None:
    start = time.perf_counter()
    model_name, subset_size = "fashion-mnist-resnet", 6000
    given, processor = load_model(model_name)
    dataset = load_image_dataset("fashion_mnist")
    class_names = class_names_of(dataset)
    subset = stratified_subset(np.asarray(dataset["train"]["label"]), subset_size)
    train = preprocess(dataset["train"].select(subset), processor)
    held_out = preprocess(dataset["test"], processor)
    data = split_unlearning_data(train, held_out, class_names, ForgetRequest.first_percent(10), seed=TARGET)
    spec = BenchmarkSpec(
        model=model_name, dataset="fashion_mnist", request=ForgetRequest.first_percent(10), train_subset=subset_size
    )
    recipe = spec_recipe(spec)
    base = cache_parts(spec, given.config, subset)  # the benchmark's cache keys: its models are found here

    def trained(kind: str, seed: int, rows, parts: dict):
        def train():
            return replace(recipe, seed=seed).train(fresh_model(given.config, seed), rows, CACHE / "tmp")

        return cached_training(CACHE, {**base, **parts, "kind": kind, "seed": seed}, train, processor)

    forget = {"forget": data.fingerprint["sha256"]}
    original, _ = trained("original", TARGET, train, {})
    gold, retrain_seconds = trained("retrained", TARGET, data.retain, forget)
    references = [trained("retrained", seed, data.retain, forget)[0] for seed in REFERENCE_SEEDS]

    picks = json.loads((RESULTS / "fashion_mnist" / "tuning.json").read_text())["picks"]["resnet-first10"]["10"]
    models = {"original": original, "retrain (gold standard)": gold}
    costs = {"original": 0.0, "retrain (gold standard)": 1.0}
    for method, pick in picks.items():
        base_method = method.split("/")[0]
        fields = {**pick["fields"], "budget": 0.1, "retrain_epochs": recipe.epochs}
        quiet = {"use_cpu": True, "disable_tqdm": True, "logging_strategy": "no", "seed": TARGET}
        config = method_config(
            base_method, model_name, spec.request, output_dir=str(CACHE / "tmp-power"), **quiet, **fields
        )
        result = unlearn(copy.deepcopy(original), data, config)
        models[method] = result.model.eval()
        costs[method] = result.report.cost["share_of_retrain"]
        print(f"  {method}: {costs[method]:.1%} of a retraining, {result.report.verification['verdict']}")

    def log_probs(model, rows):
        return log_softmax(predict_logits(model, rows).double().numpy())

    f_labels, t_labels = data.forget.labels.numpy(), data.test.labels.numpy()
    ref_out = [(log_probs(r, data.forget), log_probs(r, data.test)) for r in references]
    ref_conf = [(logit_confidence(f, f_labels), logit_confidence(t, t_labels)) for f, t in ref_out]
    rows, table = {}, []
    for name, model in models.items():
        forget_lp, test_lp = log_probs(model, data.forget), log_probs(model, data.test)
        own_f, own_t = logit_confidence(forget_lp, f_labels), logit_confidence(test_lp, t_labels)
        rows[name] = {"cost_share": costs[name]}
        cells = []
        for k in KS:
            score_f = own_f - np.mean([c[0] for c in ref_conf[:k]], axis=0)
            score_t = own_t - np.mean([c[1] for c in ref_conf[:k]], axis=0)
            threshold = float(np.quantile(score_t, 1 - FPR))
            tpr = float(np.mean(score_f > threshold))
            found = verify_outputs(
                forget_lp,
                f_labels,
                test_lp,
                t_labels,
                kind="samples",
                reference_forget=[o[0] for o in ref_out[:k]],
                reference_heldout=[o[1] for o in ref_out[:k]],
            )
            flagged = next(e for e in found.evidence if e.test == "per_example").details["flagged"]
            rows[name][f"K={k}"] = {
                "tpr_at_1pct_fpr": tpr,
                "threshold": threshold,
                "bh_flagged": flagged,
                "verdict": found.verdict,
            }
            cells.append(f"{tpr:.3f} ({flagged}, {found.verdict})")
        table.append([name, f"{costs[name]:.1%}", *cells])
    minutes = (time.perf_counter() - start) / 60
    command = "python " + " ".join([str(ROOT / "per_example_power.py"), *sys.argv[1:]])
    results = {
        "command": command,
        "minutes": minutes,
        "target_seed": TARGET,
        "reference_seeds": list(REFERENCE_SEEDS),
        "fpr": FPR,
        "forget_samples": len(data.forget),
        "heldout_samples": len(data.test),
        "retrain_seconds": retrain_seconds,
        "models": rows,
    }
    lines = [
        "# Per-example power of `lotus-hf verify --reference-models`\n",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M')}; {minutes:.1f} min, models the benchmark cached "
        "included). Bundled ResNet, Fashion-MNIST's 6,000-image subset, forget the first 10% of each class "
        f"({len(data.forget)} images), target seed {TARGET}; held-out: the public half ({len(data.test)} images).\n",
        "Each cell: the share of forget samples whose per-example score passes the threshold that 1% of held-out "
        "samples pass (TPR at 1% FPR), then in brackets how many the verifier's per-example test flags "
        "(Benjamini-Hochberg at 5%) and its verdict with those references. A model that never trained on the forget "
        "set is expected at about 0.01. References cost K retrainings (K x 100% of one), on top of the unlearning; "
        "the method's own cost is its share of one retraining.\n",
        markdown_table(["model", "cost", *(f"K={k} ({k} retrainings)" for k in KS)], table),
        "",
    ]
    (RESULTS / "per_example_power.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "per_example_power.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
