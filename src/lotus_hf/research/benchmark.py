"""`lotus-hf benchmark`: LoTUS against retraining and the baselines, on one model, data set and forget request.

For each seed, as the paper does: train an original with that seed (or take the given model), split the test
set into unseen / test, retrain the gold standard on the retain set with the same seed (both cached on disk,
keyed by everything they depend on), run every method from that original, and evaluate it. Then mean +- sample
std over seeds, both aggregations of the Avg Gap, the Pearson r of RF-JSD against JSD (both variants) across
methods, and three plots. With a `grid`, every setting of every method runs instead: the tuning mode.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..baselines import fresh_model
from ..data import class_names_of, load_image_dataset, split_unlearning_data
from ..errors import ArgumentError
from ..evaluation import GAP_KEYS, Evaluation, entropy, markdown_table, predict_logits
from ..evidence import VERDICTS
from ..hooks import stop_epoch
from ..images import preprocess
from ..loading import load_model
from ..methods import METHODS, method_config
from ..provenance import body_change
from ..recipe import Recipe
from ..requests import PAPER_SEEDS, ForgetRequest, stratified_subset
from ..run import unlearn, verify_probs
from ..saving import atomic_output_dir, write_model_folder
from .controls import adaptive_controls, error_rates, verifier_controls
from .plots import plot, plot_cost_curves

METRICS = (
    "avg_gap",
    *GAP_KEYS,
    "acc_test_remaining",
    "rf_jsd",
    "jsd",
    "rf_jsd_reference",
    "jsd_reference",
    "distance_to_original",
    "weight_change",
    "cost_share",
    "seconds",
)
# A method whose metrics stay this close to the original's (mean over GAP_KEYS) did not change the model.
NO_OP_DISTANCE = 0.002


@dataclass
class BenchmarkSpec:
    """What a benchmark run compares.

    `methods` names methods, or variants of one as `method/variant` (e.g. `lotus/paper`); `config` maps a name
    to fields of its config that override its defaults (LoTUS also takes the model's `unlearning_config.json`;
    see `lotus_hf.run.method_config`). `grid` (tuning) maps a method to a list of such field dicts: every
    setting runs, as `method#1`, `method#2`, ... With `original_per_seed` (the paper's protocol) each seed
    trains its own original with the model's recipe; otherwise the given model serves every seed (or, with
    `train_subset`, one original trained with the recipe's seed). `retime` retrains one gold standard in this
    run even when it is cached, so that every share of retraining's time divides two times of one session.
    """

    model: str = "fashion-mnist-resnet"
    dataset: str = "fashion_mnist"
    request: ForgetRequest = field(default_factory=lambda: ForgetRequest.first_percent(10))
    seeds: tuple[int, ...] = PAPER_SEEDS
    methods: tuple[str, ...] | None = None  # default: every method the request suits
    train_subset: int | None = None
    test_subset: int | None = None  # judge on a stratified subset of the test split (seed 0)
    recipe_epochs: int | None = None
    config: dict[str, dict] = field(default_factory=dict)
    grid: dict[str, list[dict]] | None = None
    original_per_seed: bool = True
    retime: bool = True
    controls: bool = True  # the verifier's controls per seed (research.controls)
    cache_dir: str = str(Path.home() / ".cache" / "lotus-hf" / "benchmark")
    # Shares of a retraining: every run stops at the largest and is evaluated at each (lotus_hf.cost)
    budgets: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.methods is None:  # Belief Relabel forgets whole classes only
            self.methods = tuple(m for m in METHODS if m != "belief_relabel" or self.request.kind == "classes")
        if self.grid is not None:
            self.methods = tuple(self.grid)
            empty = [m for m, settings in self.grid.items() if not settings]
            if empty:
                raise ArgumentError(f"`grid` gives no setting for {empty}: give each method a list of field dicts.")
        unknown = [m for m in self.methods if base_method(m) not in METHODS]
        if unknown:
            raise ArgumentError(f"`methods` names {unknown}: choose from {tuple(METHODS)}.")
        if not [m for m in self.methods if m != "retrain"]:
            raise ArgumentError("`methods` must name a method besides retrain (e.g. lotus).")
        if "retrain" not in self.methods:
            self.methods = (*self.methods, "retrain")  # the gold standard defines every gap
        if not self.seeds:
            raise ArgumentError(
                f"`seeds` must name at least one seed (the paper's: {','.join(map(str, PAPER_SEEDS))})."
            )
        if self.train_subset is not None and self.train_subset < 10:
            raise ArgumentError(f"`train_subset` must be at least 10 samples, got {self.train_subset}.")
        if self.test_subset is not None and self.test_subset < 20:
            raise ArgumentError(f"`test_subset` must be at least 20 samples, got {self.test_subset}.")
        if self.budgets is not None:
            self.budgets = tuple(sorted(float(b) for b in self.budgets))
            if not self.budgets or self.budgets[0] <= 0:
                raise ArgumentError(f"`budgets` must be shares of a retraining > 0, got {self.budgets!r}.")
        for method in self.config:
            if base_method(method) not in METHODS:
                raise ArgumentError(f"`config` sets {method!r}, which is not a method: choose from {tuple(METHODS)}.")

    def variants(self) -> list[tuple[str, str, dict]]:
        """(name, method, config fields) of every run per seed, retrain left out."""
        if self.grid is not None:
            return [
                (f"{m}#{i}", m, dict(fields))
                for m, settings in self.grid.items()
                for i, fields in enumerate(settings, 1)
                if m != "retrain"
            ]
        return [(n, base_method(n), dict(self.config.get(n, {}))) for n in self.methods if n != "retrain"]


def base_method(name: str) -> str:
    """The method of a benchmark name: `lotus/paper` -> `lotus`, `scrub#3` -> `scrub`."""
    return name.split("/")[0].split("#")[0]


# ----------------------------------------------------------------------------------------------- cache
def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cached_training(
    cache_dir: Path, parts: dict, train_fn, image_processor, log, trainings: dict[str, dict[str, float]]
) -> tuple[torch.nn.Module, float, bool]:
    """A model trained by `train_fn()` -> (model, seconds, cached), saved under `cache_dir/<key of parts>` and
    read back by any later run with the same parts. Its training seconds go into `trainings["cached"]` or
    `trainings["trained"]` under the cache entry's name."""
    from transformers import AutoModelForImageClassification

    folder = cache_dir / f"{parts['kind']}-{_key(parts)}"
    meta = folder / "benchmark_cache.json"
    if meta.is_file():
        log(f"  cached {parts['kind']}: {folder}")
        model = AutoModelForImageClassification.from_pretrained(folder, use_safetensors=True).eval()
        seconds = json.loads(meta.read_text())["seconds"]
        trainings["cached"][folder.name] = seconds
        return model, seconds, True
    log(f"  training {parts['kind']} ({folder.name})")
    model, seconds = train_fn()
    trainings["trained"][folder.name] = seconds
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output_dir(folder) as staging:
        write_model_folder(
            staging, model, image_processor, f"# {parts['kind']}\n\nA lotus-hf benchmark cache entry.\n"
        )
        (staging / "benchmark_cache.json").write_text(
            json.dumps({"seconds": seconds, "parts": parts}, indent=2, default=str)
        )
    return model, seconds, False


def cache_parts(spec: BenchmarkSpec, config, subset: np.ndarray | None) -> dict:
    """What every model a benchmark trains is cached under, beside its kind and seed (and a gold standard's forget
    set): the architecture, the data set, the training subset and the recipe."""
    recipe = spec_recipe(spec)
    return {
        "architecture": _architecture(config),
        "dataset": spec.dataset,
        "subset": None if subset is None else hashlib.sha256(subset.tobytes()).hexdigest()[:16],
        # (a recipe from scratch keys as it did before recipes could name pretrained weights)
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "seed" and (k != "pretrained" or v)},
    }


def cached_training(cache_dir: Path, parts: dict, train_fn, image_processor, log=print):
    """`(model, seconds)` trained by `train_fn()` or read from `cache_dir` under `parts` (`cache_parts` with the kind
    and seed), the cache `lotus-hf benchmark` reads and writes."""
    model, seconds, _ = _cached_training(
        cache_dir, parts, train_fn, image_processor, log, {"trained": {}, "cached": {}}
    )
    return model.eval(), seconds


def _architecture(config) -> str:
    keep = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("_name_or_path", "transformers_version", "lotus_hf_unlearning")
    }
    return _key(keep)


@contextmanager
def replacing(folder: Path):
    """Write `folder` anew in the body, which `lotus-hf benchmark` does only for a folder that does not exist: its
    committed contents wait beside it (`.NAME.previous`, yielded), come back if the body fails or is interrupted
    (Ctrl-C, or SIGTERM, which raises `SystemExit` meanwhile), and go once it succeeds."""
    folder = Path(folder)
    previous = folder.with_name(f".{folder.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        folder.rename(previous)
    on_term = None
    if threading.current_thread() is threading.main_thread():
        on_term = signal.signal(signal.SIGTERM, _exit_on_term)
    try:
        yield previous
    except BaseException:
        if previous.exists():
            shutil.rmtree(folder, ignore_errors=True)
            previous.rename(folder)
        raise
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)
    shutil.rmtree(previous, ignore_errors=True)


def _exit_on_term(signum, frame):
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------------------------------------ run
def benchmark_config(method: str, spec: BenchmarkSpec, seed: int, scratch: str, fields: dict | None = None):
    """The config a method runs with in this benchmark: `lotus_hf.run.method_config` with `fields` (default
    `spec.config[method]`), quiet, writing nothing but scratch files. `method` may name a variant."""
    fields = dict(spec.config.get(method, {}) if fields is None else fields)
    fields.setdefault("retrain_epochs", spec_recipe(spec).epochs)  # costs are shares of this benchmark's retraining
    if spec.budgets:  # stop at the largest budget, checkpoints at the others
        fields.update(budget=spec.budgets[-1], budget_checkpoints=list(spec.budgets[:-1]))
    return method_config(
        base_method(method),
        spec.model,
        spec.request,
        **fields,
        output_dir=scratch,
        seed=seed,
        disable_tqdm=True,
        logging_strategy="no",
    )


def spec_recipe(spec: BenchmarkSpec) -> Recipe:
    """The recipe that trains this benchmark's originals and gold standards (the model's, with `recipe_epochs`)."""
    recipe = Recipe.of_model(spec.model) or Recipe(model_config="config")
    if spec.recipe_epochs is not None:
        recipe.epochs = spec.recipe_epochs
    return recipe


def weight_change(model: torch.nn.Module, original: torch.nn.Module) -> float:
    """||theta - theta_0|| / ||theta_0|| over every parameter: 0 for a model left as it was."""
    moved = sum(
        float((a.detach().double() - b.detach().double()).pow(2).sum())
        for a, b in zip(model.parameters(), original.parameters(), strict=True)
    )
    size = sum(float(b.detach().double().pow(2).sum()) for b in original.parameters())
    return math.sqrt(moved / size) if size else 0.0


def run_benchmark(spec: BenchmarkSpec, output_dir: str | Path, log=print, command: str | None = None) -> dict:
    """Run the benchmark and write results.json, results.md and the plots into `output_dir` (atomically).
    `command` is what the results say produced them (default: this process's command line)."""
    import tempfile

    start = time.perf_counter()
    cache_dir = Path(spec.cache_dir)
    given, processor = load_model(spec.model)
    dataset = load_image_dataset(spec.dataset)
    class_names = class_names_of(dataset)
    train_split, test_split = dataset["train"], dataset["test"]
    subset = None  # the subsets are drawn before any image is processed
    if spec.train_subset is not None and spec.train_subset < len(train_split):
        subset = stratified_subset(np.asarray(train_split["label"]), spec.train_subset)
        train_split = train_split.select(subset)
    if spec.test_subset is not None and spec.test_subset < len(test_split):  # judged on it; none trains on it
        test_split = test_split.select(stratified_subset(np.asarray(test_split["label"]), spec.test_subset))
    train, held_out = preprocess(train_split, processor), preprocess(test_split, processor)
    private = None  # the adaptive controls' private held-out set: training images outside the subset, never trained on
    if spec.controls and subset is not None:
        rest = np.setdiff1d(np.arange(len(dataset["train"])), subset)
        size = min(len(rest), len(held_out) - len(held_out) // 2)  # as many as the public held-out half
        chosen = rest[stratified_subset(np.asarray(dataset["train"]["label"])[rest], size, seed=1)]
        private = preprocess(dataset["train"].select(chosen), processor)
    recipe = spec_recipe(spec)
    base = cache_parts(spec, given.config, subset)
    log(f"benchmark: {spec.model} on {spec.dataset} ({len(train)} training samples), forget {spec.request.describe()}")

    # each original and retrained model this run trained or read from the cache, by cache entry: its seconds
    trainings: dict[str, dict[str, float]] = {"trained": {}, "cached": {}}
    timed: dict = {}  # the gold standard's training time measured in this run

    def trained(kind: str, seed: int, data, parts: dict, scratch: str):
        def train_fn():
            seeded = Recipe(**{**asdict(recipe), "seed": seed})
            model = seeded.pretrained_model(class_names) if recipe.pretrained else fresh_model(given.config, seed)
            return seeded.train(model, data, Path(scratch) / kind)

        model, seconds, cached = _cached_training(
            cache_dir, {**base, **parts, "kind": kind, "seed": seed}, train_fn, processor, log, trainings
        )
        if kind == "retrained" and spec.retime and not timed:
            if cached:  # time one retraining in this run: shares of its time compare one session's times
                log(f"  re-timing the cached {kind} model of seed {seed}")
                _, timed["seconds"] = train_fn()
            else:
                timed["seconds"] = seconds
            timed["seed"] = seed
        return model.eval(), seconds

    runs, controls = [], []
    with tempfile.TemporaryDirectory(prefix="lotus-hf-bench-") as scratch:
        # every seed's original and gold standard first: the other seeds' gold standards are each seed's references
        models = {}
        for seed in spec.seeds:
            original_seed = seed if spec.original_per_seed else recipe.seed if subset is not None else None
            if original_seed is not None:  # trained here, on exactly this training data
                original, _ = trained("original", original_seed, train, {}, scratch)
            else:
                original = given.eval()
            data = split_unlearning_data(train, held_out, class_names, spec.request, seed=seed)
            # keyed by the original's seed too when there is one per seed: the paper's pairs
            retrained, retrain_seconds = trained(
                "retrained", seed, data.retain, {"forget": data.fingerprint["sha256"]}, scratch
            )
            models[seed] = (original, original_seed, data, retrained, retrain_seconds)
        for seed, (original, original_seed, data, retrained, retrain_seconds) in models.items():
            references = [m[3] for other, m in models.items() if other != seed]
            reference_probs = {
                split: [softmax_probs(r, getattr(data, split)) for r in references] for split in ("forget", "test")
            }
            # one evaluation per seed: the original's and the gold standard's outputs are computed once
            evaluation = Evaluation(data, original, retrained, reference_probs=reference_probs, seed=seed)
            first_lotus = None
            for name, _, fields in spec.variants():
                run_dir = Path(scratch) / f"{name.replace('/', '-')}-{seed}"  # its own checkpoints
                config = benchmark_config(name, spec, seed, str(run_dir), fields)
                result = unlearn(
                    copy.deepcopy(original), data, config, retrain_seconds=retrain_seconds, evaluation=evaluation
                )
                rows, probs = result.report.rows, result.report.probs
                row = dict(
                    rows["unlearned"],
                    weight_change=weight_change(result.model, original),
                    distance_to_original=_distance(rows["unlearned"], rows["original"]),
                    cost_share=result.report.cost["share_of_retrain"],
                )
                runs.append(
                    _run_row(
                        name,
                        seed,
                        row,
                        result.report.unlearning_seconds,
                        config.method_hyperparameters(),
                        probs["unlearned"],
                        result.report.verification,
                        result.history,
                        budget=spec.budgets[-1] if spec.budgets else None,
                        cost=result.report.cost,
                        stopped_by=result.report.training["stopped_by"],
                    )
                )
                log(
                    f"  seed {seed} {name:>13}: Avg Gap {row['avg_gap']:.4f}, "
                    f"{result.report.unlearning_seconds:.1f} s, {result.report.cost['share_of_retrain']:.1%} of a "
                    f"retraining, {result.report.verification['verdict']}"
                )
                for budget in (spec.budgets or ())[:-1]:  # the same run, as it was when it reached each budget
                    runs.append(
                        _at_budget(
                            name,
                            seed,
                            budget,
                            result,
                            run_dir,
                            evaluation,
                            retrain_seconds,
                            config,
                        )
                    )
                    log(
                        f"  seed {seed} {name:>13} at {budget:.0%}: Avg Gap {runs[-1]['avg_gap']:.4f}, "
                        f"{runs[-1]['verdict']}"
                    )
                shutil.rmtree(run_dir, ignore_errors=True)
                if base_method(name) == "lotus" and first_lotus is None:
                    first_lotus = (name, fields, result)
            checks = {
                name: verify_probs(
                    probs[name], data, None, reference_probs, probs["original"], body_change(model, original)
                ).to_dict()
                for name, model in (("original", original), ("retrained", retrained))
            }
            runs.append(
                _run_row(
                    "original",
                    seed,
                    rows["original"],
                    None,
                    {"seed": original_seed},
                    probs["original"],
                    checks["original"],
                )
            )
            runs.append(
                _run_row(
                    "retrain",
                    seed,
                    rows["retrained"],
                    retrain_seconds,
                    recipe.to_dict() | {"seed": seed},
                    probs["retrained"],
                    checks["retrained"],
                )
            )
            if spec.controls and first_lotus is not None:
                name, fields, lotus = first_lotus
                zero = benchmark_config(
                    name, spec, seed, scratch, {**fields, "learning_rate": 0.0, "num_train_epochs": 1}
                )
                controls += verifier_controls(
                    spec.request,
                    seed,
                    original,
                    data,
                    checks,
                    lotus,
                    zero,
                    processor,
                    evaluation,
                    Path(scratch) / f"controls-{seed}",
                    log,
                )
            if spec.controls:  # models built to pass, on the public half and on the private set
                controls += adaptive_controls(
                    seed, original, data, references, recipe, private, Path(scratch) / f"adaptive-{seed}", log
                )

    command = command or " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))

    def summary_of(rows: list[dict]) -> dict:
        results = summarise(
            spec,
            rows,
            subset_size=len(train),
            wall_seconds=time.perf_counter() - start,
            retrain_timed=timed,
            controls=controls,
        )
        results["cached_training_seconds"] = sum(trainings["cached"].values())  # read from the cache, not run now
        results["trainings"] = trainings
        results["command"] = command
        return results

    def write(results: dict, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        plot(results, folder)
        (folder / "results.md").write_text(render_markdown(results))

    if not spec.budgets or len(spec.budgets) == 1:  # one budget (or none): one standard results folder
        results = summary_of(runs)
        results["budget"] = spec.budgets[0] if spec.budgets else None
        with atomic_output_dir(output_dir) as staging:
            write(results, staging)
        return results
    # one standard results folder per budget (budget-5/, budget-10/, ...), and the curves of every method across them
    fixed = [r for r in runs if r["budget"] is None]  # the original and the gold standard
    by_budget = {budget_label(b): summary_of(fixed + [r for r in runs if r["budget"] == b]) for b in spec.budgets}
    results = {"budgets": by_budget, "command": command, "wall_seconds": time.perf_counter() - start}
    with atomic_output_dir(output_dir) as staging:
        for label, budget_results in by_budget.items():
            write(budget_results, staging / f"budget-{label}")
        (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        plot_cost_curves(by_budget, staging / "cost_curves.png")
        (staging / "results.md").write_text(budgets_markdown(by_budget))
    return results


def budgets_markdown(by_budget: dict[str, dict]) -> str:
    """One run evaluated at several budgets: the curves of every method across them, then each budget's results
    (its plots in its own budget-N/ folder)."""
    parts = ["![Avg Gap and verified rate against cost](cost_curves.png)\n"]
    parts += [
        f"# At {label}% of a retraining\n\n{render_markdown(r, images=f'budget-{label}/')}"
        for label, r in by_budget.items()
    ]
    return "\n".join(parts)


def budget_label(budget: float) -> str:
    """A budget as its folder names it: 0.1 -> "10" (percent of a retraining).

    >>> budget_label(0.05), budget_label(0.1), budget_label(0.025)
    ('5', '10', '2.5')
    """
    return f"{budget * 100:g}"


def _at_budget(
    name,
    seed,
    budget,
    result,
    run_dir,
    evaluation,
    retrain_seconds,
    config,
) -> dict:
    """The row of a run as it stood when its cost reached `budget`: the checkpoint saved there, or the finished run
    when it ended first (SSD, which takes no step, is over the budget when its one pass cost more)."""
    from safetensors.torch import load_file

    cost = result.report.cost
    taken = cost.get("checkpoints", {}).get(str(budget))
    model, units, seconds = result.model, cost["units"], result.report.unlearning_seconds
    parts = cost.get("parts") or {}  # what the probes and checks cost (SSD has none)
    original, data = evaluation.original, evaluation.data
    if taken is not None:
        model = copy.deepcopy(original)
        model.load_state_dict(load_file(run_dir / f"checkpoint-{taken['step']}" / "model.safetensors"), strict=False)
        units, seconds, parts = taken["units"], taken["seconds"], taken.get("parts", {})
    share = units / cost["retrain_units"]
    report = evaluation(model.eval(), unlearning_seconds=seconds, retrain_seconds=retrain_seconds)
    probs, rows = report.probs, report.rows
    verification = verify_probs(
        probs["unlearned"],
        data,
        config.method,
        evaluation.reference_probs,
        probs["original"],
        body_change(model, original),
    ).to_dict()
    row = dict(
        rows["unlearned"],
        weight_change=weight_change(model, original),
        distance_to_original=_distance(rows["unlearned"], rows["original"]),
        cost_share=share,
    )
    history = [e for e in result.history if e.get("cost", 0) <= units]
    stopped_by = "budget" if taken is not None else result.report.training["stopped_by"]
    return _run_row(
        name,
        seed,
        row,
        seconds,
        config.method_hyperparameters(),
        probs["unlearned"],
        verification,
        history,
        budget=budget,
        cost={
            **cost,
            "units": units,
            "share_of_retrain": share,
            "parts": parts,
            "within_budget": share <= budget + 1e-12,
        },
        stopped_by=stopped_by,
    )


def _distance(row: dict, original: dict) -> float:
    return float(np.mean([abs(row[k] - original[k]) for k in GAP_KEYS]))


def _run_row(
    method,
    seed,
    row,
    seconds,
    hyper,
    probs,
    verification: dict,
    history: list | None = None,
    budget=None,
    cost: dict | None = None,
    stopped_by: str | None = None,
) -> dict:
    values = {k: row.get(k) for k in METRICS if k != "seconds"}
    forget_entropy = entropy(probs["forget"])
    return {
        "method": method,
        "seed": seed,
        **values,
        "seconds": seconds,
        "budget": budget,
        "cost": cost,
        "stopped_by": stopped_by,
        "hyperparameters": hyper,
        "verdict": verification["verdict"],
        "utility": (verification.get("utility") or {}).get("outcome"),
        "verification": compact_verification(verification),
        "history": history or [],
        "stopped_at_epoch": stop_epoch(history),
        "forget_entropy_histogram": np.histogram(
            forget_entropy, bins=30, range=(0.0, math.log(probs["forget"].shape[1]))
        )[0].tolist(),
    }


def compact_verification(verification: dict) -> dict:
    """A verdict's tests without the per-example p-values (results.json keeps the counts)."""
    return {
        e["test"]: {
            "statistic": e["statistic"],
            "interval": e["interval"],
            "outcome": e["outcome"],
            **({"flagged": e["details"]["flagged"]} if "flagged" in e["details"] else {}),
        }
        for e in verification["evidence"]
    }


def softmax_probs(model, dataset) -> np.ndarray:
    """`model`'s softmax outputs on `dataset`, in float64 (what `lotus_hf.run.verify_probs` reads)."""
    return torch.softmax(predict_logits(model, dataset).double(), dim=-1).numpy()


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def cached_not_trained(runs: list[dict]) -> dict[str, float]:
    """The trained models that the benchmark runs `runs` (results.json contents) read from a cache none of them
    filled, by cache entry: their training seconds, as measured when they were trained. Cells of one architecture
    share their originals, so a model one run trained and another read back is not among them."""
    trained: set[str] = set()
    cached: dict[str, float] = {}
    for i, results in enumerate(runs):
        if "trainings" in results:
            trained |= set(results["trainings"]["trained"])
            cached |= results["trainings"]["cached"]
        elif results.get("cached_training_seconds"):  # written before trainings were recorded by name
            cached[f"unnamed-{i}"] = results["cached_training_seconds"]
    return {name: seconds for name, seconds in cached.items() if name not in trained}


def minutes_from_empty_cache(runs: list[dict]) -> float:
    """Minutes the benchmark runs `runs` take together from an empty cache: their wall times, plus, once each,
    the training time of every model they read from the cache without training it (`cached_not_trained`)."""
    return (sum(r["wall_seconds"] for r in runs) + sum(cached_not_trained(runs).values())) / 60


def _cache_note(results: dict) -> str:
    cached = results.get("cached_training_seconds") or 0.0
    return f", plus {cached / 60:.1f} min of training read from the cache" if cached else ""


def summarise(
    spec: BenchmarkSpec,
    runs: list[dict],
    subset_size: int,
    wall_seconds: float,
    retrain_timed: dict | None = None,
    controls: list[dict] | None = None,
) -> dict:
    """Per method: mean and sample std over seeds, `avg_gap_paper` (per metric |mean(method) - mean(retrain)|,
    averaged: the paper's aggregation), the share of retraining's time, whether it changed the model at all, how
    many seeds `lotus-hf verify` calls `forgotten` (and the rest), and, for methods with a stop rule, on how many
    seeds it fired; across methods the Pearson r of RF-JSD against JSD in both variants, the seed-level comparison
    of the lowest method with every other (`paired_comparison`) and the verifier's error rates on its controls;
    with a grid, the best setting of each method."""
    names = [name for name, _, _ in spec.variants()]
    order = ["original", "retrain", *names]
    gold = {k: float(np.mean([r[k] for r in runs if r["method"] == "retrain"])) for k in GAP_KEYS}
    timed = (retrain_timed or {}).get("seconds")
    per_seed_retrain = {r["seed"]: r["seconds"] for r in runs if r["method"] == "retrain"}
    summary = {}
    for name in order:
        rows = [r for r in runs if r["method"] == name]
        row = {k: dict(zip(("mean", "std"), _mean_std([r.get(k) for r in rows]), strict=True)) for k in METRICS}
        row["hyperparameters"] = rows[0]["hyperparameters"]
        row["avg_gap_paper"] = float(np.mean([abs(row[k]["mean"] - gold[k]) for k in GAP_KEYS]))
        shares = [
            r["seconds"] / (timed or per_seed_retrain[r["seed"]])
            for r in rows
            if r["seconds"] is not None and name != "retrain"
        ]
        row["share_of_retrain"] = dict(zip(("mean", "std"), _mean_std(shares), strict=True))
        distance = row["distance_to_original"]["mean"]
        row["no_op"] = distance is not None and distance < NO_OP_DISTANCE
        row["verdicts"] = {v: sum(r.get("verdict") == v for r in rows) for v in VERDICTS}
        row["damaged"] = sum(r.get("utility") == "damaged" for r in rows)  # models that no longer work
        # what the stops' own passes (probes, the verifier's checks) cost, as a share of each run: at most, and mean
        stops = [
            sum((r["cost"].get("parts") or {}).values()) / r["cost"]["units"]
            for r in rows
            if r.get("cost") and r["cost"].get("units")
        ]
        row["stops_share"] = {"mean": float(np.mean(stops)), "max": float(np.max(stops))} if stops else None
        if any(r.get("history") and "stop" in r["history"][0] for r in rows):
            row["stop_fired"] = [r["stopped_at_epoch"] for r in rows]  # per seed: the epoch, or None
        summary[name] = row
    # The paper's tables give the original no JSD/RF-JSD; the points are retrain and every unlearning method.
    points = [m for m in order if m != "original" and summary[m]["jsd"]["mean"] is not None]
    methods_only = [m for m in order if m not in ("original", "retrain")]
    results = {
        "command": None,  # set by run_benchmark
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "model": spec.model,
        "dataset": spec.dataset,
        "forget": spec.request.describe(),
        "seeds": list(spec.seeds),
        "original_per_seed": spec.original_per_seed,
        "train_samples": subset_size,
        "train_subset": spec.train_subset,
        "test_subset": spec.test_subset,
        "recipe_epochs": spec.recipe_epochs,
        "wall_seconds": wall_seconds,
        "retrain_timed": retrain_timed or None,
        "pearson_rf_jsd_vs_jsd": _pearson(summary, points, "rf_jsd", "jsd"),
        "pearson_reference": _pearson(summary, points, "rf_jsd_reference", "jsd_reference"),
        "pearson_points": points,
        "lowest_avg_gap": min(methods_only, key=lambda m: summary[m]["avg_gap"]["mean"]) if methods_only else None,
        "lowest_avg_gap_paper": min(methods_only, key=lambda m: summary[m]["avg_gap_paper"]) if methods_only else None,
        "summary": summary,
        "paired": paired_comparison(runs, methods_only, summary),
        "controls": controls or [],
        "error_rates": error_rates(controls or []),
        "runs": runs,
    }
    if spec.grid is not None:
        results["tuning"] = {
            method: {
                "settings": settings,
                "avg_gap": [summary[f"{method}#{i}"]["avg_gap"]["mean"] for i in range(1, len(settings) + 1)],
                "best": best_setting(summary, method, len(settings)),
            }
            for method, settings in spec.grid.items()
        }
    return results


def paired_comparison(runs: list[dict], methods: list[str], summary: dict, level: float = 0.05) -> dict:
    """The method with the lowest mean Avg Gap against each other method, seed by seed: its wins, the mean
    difference, and a one-sided paired t-test (H1: lower) with Holm's correction over the comparisons. `claim` is
    "lowest" when every comparison is significant at `level`, else "level with" the methods it is not separated
    from. A reviewer's question, answered from the runs: is "lowest" more than seed noise?"""
    from scipy.stats import ttest_rel

    if len(methods) < 2:
        return {}
    best = min(methods, key=lambda m: summary[m]["avg_gap"]["mean"])
    gaps = {m: {r["seed"]: r["avg_gap"] for r in runs if r["method"] == m} for m in methods}
    rows = {}
    for other in (m for m in methods if m != best):
        seeds = sorted(set(gaps[best]) & set(gaps[other]))
        a, b = np.array([gaps[best][s] for s in seeds]), np.array([gaps[other][s] for s in seeds])
        p = float(ttest_rel(a, b, alternative="less").pvalue) if len(seeds) > 1 and np.any(a != b) else 1.0
        rows[other] = {
            "wins": int((a < b).sum()),
            "seeds": len(seeds),
            "mean_difference": float((a - b).mean()),
            "p": p if np.isfinite(p) else 1.0,
        }
    # Holm: the k-th smallest p-value is compared with level / (m - k + 1), stopping at the first that fails
    passed, ordered = True, sorted(rows, key=lambda m: rows[m]["p"])
    for k, other in enumerate(ordered):
        rows[other]["p_holm"] = min(
            1.0, max(rows[o]["p"] * (len(ordered) - i) for i, o in enumerate(ordered[: k + 1]))
        )
        passed = passed and rows[other]["p"] <= level / (len(ordered) - k)
        rows[other]["separated"] = passed
    level_with = [m for m in rows if not rows[m]["separated"]]
    return {
        "best": best,
        "level": level,
        "claim": "lowest" if not level_with else "level with",
        "level_with": level_with,
        "against": rows,
    }


def best_setting(summary: dict, method: str, count: int, allowed=None) -> int:
    """The 1-based index of `method`'s grid setting with the lowest mean Avg Gap (the first on ties), among the
    indices in `allowed` when given."""
    indices = [i for i in range(1, count + 1) if allowed is None or i in allowed]
    return min(indices, key=lambda i: summary[f"{method}#{i}"]["avg_gap"]["mean"])


def _pearson(summary: dict, points: list[str], x: str, y: str) -> float | None:
    xs = np.array([summary[m][x]["mean"] for m in points])
    ys = np.array([summary[m][y]["mean"] for m in points])
    if len(points) > 2 and xs.std() > 0 and ys.std() > 0:
        return float(np.corrcoef(xs, ys)[0, 1])
    return None


# --------------------------------------------------------------------------------------------- outputs
def _pm(stat: dict, digits: int = 4, scale: float = 1.0) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def _r(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_markdown(results: dict, images: str = "") -> str:
    """The results table (mean ± sample std over seeds, and the paper's aggregation), hyper-parameters, the
    Pearson r in both variants and, for a tuning run, each method's settings. `images`: the plots' folder,
    relative to where the markdown is written ("" beside it)."""
    summary = results["summary"]
    subset = (
        f"a stratified subset of {results['train_samples']} training images (seed 0)"
        if results["train_subset"]
        else f"all {results['train_samples']} training images"
    ) + (
        f", judged on a stratified subset of {results['test_subset']} test images (seed 0)"
        if results.get("test_subset")
        else ""
    )
    per_seed = results.get("original_per_seed")
    originals = (
        "an original trained per seed with the model's recipe and that seed, and a retrained model with the same seed"
        if per_seed
        else "one original for every seed"
    )
    timed = results.get("retrain_timed")
    shares = "Shares of retraining divide by each seed's retraining time."
    if timed:
        shares = (
            f"Shares of retraining divide by one retraining timed in this run ({timed['seconds']:.0f} s, "
            f"seed {timed['seed']})."
        )
    remaining = any(row["acc_test_remaining"]["mean"] is not None for row in summary.values())
    lines = [
        f"# {results['model']} on {results['dataset']}: forget {results['forget']}\n",
        f"Command: `{results['command']}` ({results['date']}; {results['wall_seconds'] / 60:.1f} min in all"
        + _cache_note(results)
        + ").\n",
        *[
            f"Then {', '.join(r['methods'])} ran again and replaced their rows: `{r['command']}` ({r['date']}; "
            f"{r['wall_seconds'] / 60:.1f} min).\n"
            for r in results.get("reran", [])
        ],
        f"Trained and unlearned on {subset}; {originals}"
        + (f", with {results['recipe_epochs']} epochs" if results["recipe_epochs"] else "")
        + f". Seeds {', '.join(map(str, results['seeds']))}: mean ± sample std. Avg Gap is the mean of the per-seed "
        "gaps; Avg Gap (paper) is the paper's aggregation, per metric |mean(method) - mean(retrain)|, averaged. "
        f"Times are wall-clock seconds of the unlearning call on this machine. {shares} JSD and RF-JSD: textbook "
        "variant (the `_reference` columns of results.json are the paper's form, whose tables print them x1e4). "
        f"Δ original: mean |metric - original's| over the four gap metrics; below {NO_OP_DISTANCE} the method left "
        "the model as it was, marked *(no change)*. Verified: on how many seeds `lotus-hf verify`'s tests call the "
        "model `forgotten` (f), `inconclusive` (i) or `not_forgotten` (n), on held-out data no method calibrated on "
        "(docs/verification.md). MIA's non-members are that same held-out half.\n",
    ]
    header = [
        "method",
        "Avg Gap",
        "Avg Gap (paper)",
        "time (s)",
        "share of retrain",
        "acc forget",
        "acc retain",
        "acc test",
        *(["acc test (kept classes)"] if remaining else []),
        "MIA",
        "RF-JSD",
        "JSD",
        "Δ original",
        "verified f/i/n",
    ]
    rows = []
    for method, row in summary.items():
        share = row["share_of_retrain"]
        label = method + (" *(no change)*" if row.get("no_op") else "")
        rows.append(
            [
                label,
                _pm(row["avg_gap"]),
                f"{row['avg_gap_paper']:.4f}",
                _pm(row["seconds"], 1),
                _pm(share, 1, 100) + "%" if share["mean"] is not None else "-",
                _pm(row["acc_forget"]),
                _pm(row["acc_retain"]),
                _pm(row["acc_test"]),
                *([_pm(row["acc_test_remaining"])] if remaining else []),
                _pm(row["mia"]),
                _pm(row["rf_jsd"]),
                _pm(row["jsd"]),
                _pm(row["distance_to_original"]),
                _verdicts(row),
            ]
        )
    lines += [
        markdown_table(header, rows),
        "",
        f"Lowest Avg Gap: **{results['lowest_avg_gap']}**; lowest Avg Gap (paper): "
        f"**{results['lowest_avg_gap_paper']}**. Pearson r of RF-JSD against JSD across the methods' means "
        f"({', '.join(results['pearson_points'])}): textbook **{_r(results['pearson_rf_jsd_vs_jsd'])}**, reference "
        f"**{_r(results.get('pearson_reference'))}** (paper, reference form: 0.92 ± 0.04).\n",
        f"![Avg Gap against time]({images}avg_gap_vs_time.png) ![RF-JSD against JSD]({images}rf_jsd_vs_jsd.png)\n",
        f"![forget-set entropy per method]({images}entropy_histograms.png)\n",
        *_paired_lines(results.get("paired") or {}),
        *_stop_lines(summary),
        *_control_lines(results.get("error_rates") or {}),
    ]
    if results.get("tuning"):
        tuned = []
        for method, tuning in results["tuning"].items():
            for i, fields in enumerate(tuning["settings"], 1):
                row = summary[f"{method}#{i}"]
                bold = "**" if i == tuning["best"] else ""
                tuned.append(
                    [
                        method,
                        f"{bold}#{i}{bold}",
                        f"{bold}{row['avg_gap']['mean']:.4f}{bold}",
                        f"{row['avg_gap_paper']:.4f}",
                        _fields(fields),
                    ]
                )
        header = ["method", "setting", "Avg Gap", "Avg Gap (paper)", "fields"]
        lines += [
            "## Tuning\n",
            "Every setting of every method, with the same number per method; the best by mean Avg Gap is in bold.\n",
            markdown_table(header, tuned),
            "",
        ]
    hyper = [
        [method, _fields({k: v for k, v in row["hyperparameters"].items() if k != "seed"}) or "-"]
        for method, row in summary.items()
    ]
    lines += ["## Hyper-parameters\n", markdown_table(["method", "hyper-parameters"], hyper)]
    return "\n".join(lines) + "\n"


def _verdicts(row: dict) -> str:
    """Verdict counts f/i/n, and how many of those models no longer work (utility `damaged`), apart."""
    counts = row.get("verdicts") or {}
    if not counts:
        return "-"
    text = "/".join(str(counts.get(v, 0)) for v in ("forgotten", "inconclusive", "not_forgotten"))
    return text + (f", {row['damaged']} damaged" if row.get("damaged") else "")


def _paired_lines(paired: dict) -> list[str]:
    if not paired:
        return []
    level_with = f" {', '.join(paired['level_with'])}" if paired["level_with"] else ""
    rows = [
        [
            other,
            f"{r['wins']}/{r['seeds']}",
            f"{r['mean_difference']:+.4f}",
            r["p"],
            r["p_holm"],
            "yes" if r["separated"] else "no",
        ]
        for other, r in paired["against"].items()
    ]
    return [
        "## Seed by seed\n",
        f"**{paired['best']}** has the lowest mean Avg Gap. Against each other method: the "
        "seeds it wins, the mean per-seed difference, a one-sided paired t-test and Holm's correction over the "
        f"comparisons (level {paired['level']}). Claim: **{paired['claim']}**{level_with}.\n",
        markdown_table(["against", "wins", "mean difference", "p", "p (Holm)", "separated"], rows),
        "",
    ]


def _stop_lines(summary: dict) -> list[str]:
    rows = [
        [
            m,
            f"{sum(e is not None for e in r['stop_fired'])}/{len(r['stop_fired'])}",
            ", ".join(str(e) for e in r["stop_fired"] if e is not None) or "-",
        ]
        for m, r in summary.items()
        if "stop_fired" in r
    ]
    if not rows:
        return []
    return [
        "## Stop rules\n",
        "On how many seeds each method's stop rule fired, and before which epoch (per-epoch "
        "histories in results.json).\n",
        markdown_table(["method", "fired", "epochs"], rows),
        "",
    ]


def _control_lines(rates: dict) -> list[str]:
    if not rates:
        return []
    header = [
        "control",
        "expected",
        "seeds",
        "forgotten",
        "inconclusive",
        "not_forgotten",
        "wrong",
        "skipped",
        "damaged",
        "forgotten rate",
    ]
    rows = []
    for control, row in rates.items():
        low_high = row.get("forgotten_rate_interval")
        rate = f"{row['forgotten'] / row['seeds']:.2f} [{low_high[0]:.2f}, {low_high[1]:.2f}]" if low_high else "-"
        rows.append([control, row["expected"], *(str(row.get(k, 0)) for k in header[2:-1]), rate])
    return [
        "## The verifier's controls\n",
        "Models whose answer is known (docs/verification.md), verified on every "
        "seed: wrong = a retrained model called `not_forgotten` (a false alarm), or any other control not called "
        "`not_forgotten` or whose forged history passed (a miss); skipped = a seed whose LoTUS run changed no "
        "weight, so there was no history to forge. The adaptive controls (models built to pass: "
        "`trained_on_heldout`, `masked_logit`, `nearest_relabel`, `temperature`) are scored twice, on the public "
        "held-out half and on a private held-out set of training images outside the subset; damaged = called "
        "with its utility `damaged`. Rate: the share called `forgotten`, with its 95% (Wilson) interval.\n",
        markdown_table(header, rows),
        "",
    ]


def _fields(fields: dict) -> str:
    return ", ".join(f"`{k}`={v}" for k, v in fields.items())
