"""`lotus-hf benchmark`: LoTUS against retraining and the baselines, on one model, data set and forget request.

For each seed: split the test set into unseen / test, retrain the gold standard on the retain set (cached on
disk, keyed by everything it depends on), run every method from the same original, and evaluate it. Then
mean +- sample std over seeds, the Pearson r of RF-JSD against JSD across methods, and three plots.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..baselines import fresh_model
from ..data import (
    PAPER_SEEDS,
    ForgetRequest,
    class_names_of,
    load_image_dataset,
    preprocess,
    split_unlearning_data,
)
from ..evaluation import GAP_KEYS, entropy
from ..hub import atomic_output_dir, load_model, resolve_model, write_model_folder
from ..run import METHODS, method_config, unlearn
from .plots import plot
from .training import Recipe, train_with_recipe

METRICS = ("avg_gap", *GAP_KEYS, "rf_jsd", "jsd", "rf_jsd_reference", "jsd_reference", "seconds")


@dataclass
class BenchmarkSpec:
    """What a benchmark run compares. `config` maps a method to fields of its config that override its
    defaults (LoTUS also takes the model's `unlearning_config.json`; see `lotus_hf.run.method_config`)."""

    model: str = "fashion-mnist-resnet"
    dataset: str = "fashion_mnist"
    request: ForgetRequest = field(default_factory=lambda: ForgetRequest.first_percent(10))
    seeds: tuple[int, ...] = PAPER_SEEDS
    methods: tuple[str, ...] = METHODS
    train_subset: int | None = None
    recipe_epochs: int | None = None
    config: dict[str, dict] = field(default_factory=dict)
    cache_dir: str = str(Path.home() / ".cache" / "lotus-hf" / "benchmark")

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"`methods` names {unknown}: choose from {METHODS}.")
        if not [m for m in self.methods if m != "retrain"]:
            raise ValueError("`methods` must name a method besides retrain (e.g. lotus).")
        if "retrain" not in self.methods:
            self.methods = (*self.methods, "retrain")  # the gold standard defines every gap
        if not self.seeds:
            raise ValueError("`seeds` must name at least one seed (the paper's: 3407,13,12).")
        if self.train_subset is not None and self.train_subset < 10:
            raise ValueError(f"`train_subset` must be at least 10 samples, got {self.train_subset}.")
        for method in self.config:
            if method not in METHODS:
                raise ValueError(f"`config` sets {method!r}, which is not a method: choose from {METHODS}.")


# ----------------------------------------------------------------------------------------------- cache
def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cached_training(
    cache_dir: Path, parts: dict, train_fn, image_processor, log, reused: list[float]
) -> tuple[torch.nn.Module, float]:
    """A model trained by `train_fn()` -> (model, seconds), saved under `cache_dir/<key of parts>` and read
    back by any later run with the same parts (whose training seconds are then appended to `reused`)."""
    from transformers import AutoModelForImageClassification

    folder = cache_dir / f"{parts['kind']}-{_key(parts)}"
    meta = folder / "benchmark_cache.json"
    if meta.is_file():
        log(f"  cached {parts['kind']}: {folder}")
        model = AutoModelForImageClassification.from_pretrained(folder, use_safetensors=True).eval()
        seconds = json.loads(meta.read_text())["seconds"]
        reused.append(seconds)
        return model, seconds
    log(f"  training {parts['kind']} ({folder.name})")
    model, seconds = train_fn()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output_dir(folder) as staging:
        write_model_folder(
            staging, model, image_processor, f"# {parts['kind']}\n\nA lotus-hf benchmark cache entry.\n"
        )
        (staging / "benchmark_cache.json").write_text(
            json.dumps({"seconds": seconds, "parts": parts}, indent=2, default=str)
        )
    return model, seconds


def _architecture(config) -> str:
    keep = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("_name_or_path", "transformers_version", "lotus_hf_unlearning")
    }
    return _key(keep)


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` indices with each class in its share of `labels` (seeded), sorted.

    >>> stratified_subset(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 4).tolist()
    [1, 3, 4, 6]
    """
    rng = np.random.default_rng(seed)
    chosen = []
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts / len(labels) * size).astype(int)
    quotas[np.argsort(-(counts / len(labels) * size - quotas))[: size - quotas.sum()]] += 1
    for label, quota in zip(classes, quotas, strict=True):
        members = np.flatnonzero(labels == label)
        chosen.append(np.sort(rng.choice(members, size=min(quota, len(members)), replace=False)))
    return np.sort(np.concatenate(chosen))


# ------------------------------------------------------------------------------------------------ run
def benchmark_config(method: str, spec: BenchmarkSpec, seed: int, scratch: str):
    """The config a method runs with in this benchmark: `lotus_hf.run.method_config` with `spec.config[method]`,
    quiet, writing nothing but scratch files."""
    fields = dict(spec.config.get(method, {}))
    return method_config(method, spec.model, spec.request, **fields, output_dir=scratch, seed=seed,
                         disable_tqdm=True, logging_strategy="no")  # fmt: skip


def run_benchmark(spec: BenchmarkSpec, output_dir: str | Path, log=print, command: str | None = None) -> dict:
    """Run the benchmark and write results.json, results.md and the plots into `output_dir` (atomically).
    `command` is what the results say produced them (default: this process's command line)."""
    import tempfile

    start = time.perf_counter()
    cache_dir = Path(spec.cache_dir)
    original, processor = load_model(spec.model)
    dataset = load_image_dataset(spec.dataset)
    class_names = class_names_of(dataset)
    train = preprocess(dataset["train"], processor)
    held_out = preprocess(dataset["test"], processor)
    subset = None
    if spec.train_subset is not None and spec.train_subset < len(train):
        subset = stratified_subset(train.labels.numpy(), spec.train_subset)
        train = train.select(subset)
    has_recipe = (Path(resolve_model(spec.model)) / "training_recipe.json").is_file()
    recipe = Recipe.from_model(spec.model) if has_recipe else Recipe(model_config="config")
    if spec.recipe_epochs is not None:
        recipe.epochs = spec.recipe_epochs
    base = {
        "architecture": _architecture(original.config),
        "dataset": spec.dataset,
        "subset": None if subset is None else hashlib.sha256(subset.tobytes()).hexdigest()[:16],
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "seed"},
    }
    log(
        f"benchmark: {spec.model} on {spec.dataset} ({len(train)} training samples), forget {spec.request.describe()}"
    )

    reused: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lotus-hf-bench-") as scratch:
        if subset is not None:  # the original must have been trained on exactly this training data

            def train_original():
                model = fresh_model(original.config, recipe.seed)
                return train_with_recipe(model, train, recipe, Path(scratch) / "original")

            parts = {**base, "kind": "original", "seed": recipe.seed}
            original, original_seconds = _cached_training(
                cache_dir, parts, train_original, processor, log, reused
            )
        original.eval()
        runs = []
        for seed in spec.seeds:
            data = split_unlearning_data(train, held_out, class_names, spec.request, seed=seed)

            def retrain(seed=seed, data=data):
                model = fresh_model(original.config, seed)
                seeded = Recipe(**{**asdict(recipe), "seed": seed})
                return train_with_recipe(model, data.retain, seeded, Path(scratch) / "retrain")

            parts = {**base, "kind": "retrained", "seed": seed, "forget": data.fingerprint["sha256"]}
            retrained, retrain_seconds = _cached_training(cache_dir, parts, retrain, processor, log, reused)
            retrained.eval()
            logits_cache: dict = {}
            for method in spec.methods:
                if method == "retrain":
                    continue
                config = benchmark_config(method, spec, seed, scratch)
                probs: dict = {}
                result = unlearn(copy.deepcopy(original), data, config, retrained=retrained,
                                 retrain_seconds=retrain_seconds, original=original, probs_out=probs,
                                 logits_cache=logits_cache)  # fmt: skip
                rows = result.report.rows
                runs.append(_run_row(method, seed, rows["unlearned"], result.report.unlearning_seconds,
                                     config.method_hyperparameters(), probs["unlearned"]))  # fmt: skip
                log(f"  seed {seed} {method:>13}: Avg Gap {rows['unlearned']['avg_gap']:.4f}, "
                    f"{result.report.unlearning_seconds:.1f} s")  # fmt: skip
            runs.append(_run_row("original", seed, rows["original"], None, {}, probs["original"]))
            runs.append(_run_row("retrain", seed, rows["retrained"], retrain_seconds, asdict(recipe) | {"seed": seed},
                                 probs["retrained"]))  # fmt: skip

    results = summarise(spec, runs, subset_size=len(train), wall_seconds=time.perf_counter() - start)
    results["cached_training_seconds"] = sum(reused)  # trainings read from the cache, not run this time
    results["command"] = command or " ".join(
        Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)
    )
    with atomic_output_dir(output_dir) as staging:
        (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        plot(results, staging)
        (staging / "results.md").write_text(render_markdown(results))
    return results


def _run_row(method, seed, row, seconds, hyper, probs) -> dict:
    values = {k: row.get(k) for k in METRICS if k != "seconds"}
    forget_entropy = entropy(probs["forget"])
    return {
        "method": method,
        "seed": seed,
        **values,
        "seconds": seconds,
        "hyperparameters": hyper,
        "forget_entropy_histogram": np.histogram(
            forget_entropy, bins=30, range=(0.0, math.log(probs["forget"].shape[1]))
        )[0].tolist(),
    }


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _cache_note(results: dict) -> str:
    cached = results.get("cached_training_seconds") or 0.0
    return f", plus {cached / 60:.1f} min of training read from the cache" if cached else ""


def summarise(spec: BenchmarkSpec, runs: list[dict], subset_size: int, wall_seconds: float) -> dict:
    """Mean and sample std over seeds per method, each method's share of retraining time, and Pearson r."""
    order = ["original", "retrain", *[m for m in spec.methods if m != "retrain"]]
    summary = {}
    for method in order:
        rows = [r for r in runs if r["method"] == method]
        summary[method] = {
            k: dict(zip(("mean", "std"), _mean_std([r[k] for r in rows]), strict=True)) for k in METRICS
        }
        summary[method]["hyperparameters"] = rows[0]["hyperparameters"]
        retrain = {r["seed"]: r["seconds"] for r in runs if r["method"] == "retrain"}
        shares = [
            r["seconds"] / retrain[r["seed"]]
            for r in rows
            if r["seconds"] is not None and method != "retrain"
        ]
        summary[method]["share_of_retrain"] = dict(zip(("mean", "std"), _mean_std(shares), strict=True))
    # The paper's tables give the original no JSD/RF-JSD; the points are retrain and every unlearning method.
    points = [m for m in order if m != "original" and summary[m]["jsd"]["mean"] is not None]
    x = np.array([summary[m]["rf_jsd"]["mean"] for m in points])
    y = np.array([summary[m]["jsd"]["mean"] for m in points])
    pearson = float(np.corrcoef(x, y)[0, 1]) if len(points) > 2 and x.std() > 0 and y.std() > 0 else None
    methods_only = [m for m in order if m not in ("original", "retrain")]
    best = min(methods_only, key=lambda m: summary[m]["avg_gap"]["mean"]) if methods_only else None
    return {
        "command": None,  # set by run_benchmark
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "model": spec.model,
        "dataset": spec.dataset,
        "forget": spec.request.describe(),
        "seeds": list(spec.seeds),
        "train_samples": subset_size,
        "train_subset": spec.train_subset,
        "recipe_epochs": spec.recipe_epochs,
        "wall_seconds": wall_seconds,
        "pearson_rf_jsd_vs_jsd": pearson,
        "pearson_points": points,
        "lowest_avg_gap": best,
        "summary": summary,
        "runs": runs,
    }


# --------------------------------------------------------------------------------------------- outputs
def _pm(stat: dict, digits: int = 4, scale: float = 1.0) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def render_markdown(results: dict) -> str:
    """The results table (mean ± sample std over seeds), hyper-parameters and the Pearson r."""
    summary = results["summary"]
    subset = (
        f"a stratified subset of {results['train_samples']} training images (seed 0)"
        if results["train_subset"]
        else f"all {results['train_samples']} training images"
    )
    lines = [
        f"# {results['model']} on {results['dataset']}: forget {results['forget']}\n",
        f"Command: `{results['command']}` ({results['date']}; {results['wall_seconds'] / 60:.1f} min in all"
        + _cache_note(results)
        + ").\n",
        f"Trained and unlearned on {subset}; the original and the retrained models use the model's recipe"
        + (f" with {results['recipe_epochs']} epochs" if results["recipe_epochs"] else "")
        + f". Seeds {', '.join(map(str, results['seeds']))}: mean ± sample std. Times are wall-clock seconds of the "
        "unlearning call on this machine. JSD and RF-JSD: textbook variant (the `_reference` columns are the paper's "
        "form, whose tables print them x1e4).\n",
        "| method | Avg Gap | time (s) | share of retrain | acc forget | acc retain | acc test | MIA | RF-JSD | JSD |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, row in summary.items():
        share = row["share_of_retrain"]
        lines.append(
            f"| {method} | {_pm(row['avg_gap'])} | {_pm(row['seconds'], 1)} | "
            f"{_pm(share, 1, 100) + '%' if share['mean'] is not None else '-'} | {_pm(row['acc_forget'])} | "
            f"{_pm(row['acc_retain'])} | {_pm(row['acc_test'])} | {_pm(row['mia'])} | {_pm(row['rf_jsd'])} | "
            f"{_pm(row['jsd'])} |"
        )
    r = results["pearson_rf_jsd_vs_jsd"]
    lines += [
        "",
        f"Lowest Avg Gap: **{results['lowest_avg_gap']}**. Pearson r of RF-JSD against JSD across the methods' means "
        f"({', '.join(results['pearson_points'])}): **{'-' if r is None else f'{r:.3f}'}** (paper: 0.92 ± 0.04).\n",
        "![Avg Gap against time](avg_gap_vs_time.png) ![RF-JSD against JSD](rf_jsd_vs_jsd.png)\n",
        "![forget-set entropy per method](entropy_histograms.png)\n",
        "## Hyper-parameters\n",
        "| method | hyper-parameters |",
        "|---|---|",
    ]
    for method, row in summary.items():
        hyper = ", ".join(f"`{k}`={v}" for k, v in row["hyperparameters"].items() if k != "seed")
        lines.append(f"| {method} | {hyper or '-'} |")
    return "\n".join(lines) + "\n"
