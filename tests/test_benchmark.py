"""`lotus-hf benchmark` end to end on a tiny configuration: every method, two seeds, the cache, the outputs."""

import json

import numpy as np
import pytest
import torch
from conftest import save_tiny, tiny_model

from lotus_hf.cli import main
from lotus_hf.evaluation import GAP_KEYS
from lotus_hf.research.benchmark import (
    NO_OP_DISTANCE,
    cached_not_trained,
    minutes_from_empty_cache,
    replacing,
    stratified_subset,
)

ONE_EPOCH = {
    m: {"num_train_epochs": 1} for m in ("finetune", "neggrad_plus", "random_labels", "salun", "scrub", "bad_teacher")
}
TINY = [
    "--seeds",
    "1,2",
    "--train-subset",
    "200",
    "--recipe-epochs",
    "3",
    # the paper's rule at stop_margin 0.99 never fires before the first step, so LoTUS changes the weights and the
    # history controls have a real history to forge
    "--method-config",
    json.dumps(
        {
            "lotus": {
                "num_train_epochs": 1,
                "per_device_train_batch_size": 32,
                "stop_margin": 0.99,
                "stop_rule": "paper",
            },
            **ONE_EPOCH,
        }
    ),
]


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_reuses_its_cache(digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    common = [
        "benchmark",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--cache-dir",
        str(tmp_path / "cache"),
        *TINY,
    ]
    assert main([*common, "--output-dir", str(tmp_path / "first")]) == 0
    out = capsys.readouterr().out
    # the paper's protocol: an original per seed, each with its own retrained model
    assert out.count("training original") == 2 and out.count("training retrained") == 2
    assert "re-timing" not in out  # the first retraining was timed in this run already

    results = json.loads((tmp_path / "first" / "results.json").read_text())
    methods = {
        "original",
        "retrain",
        "lotus",
        "finetune",
        "neggrad_plus",
        "random_labels",
        "bad_teacher",
        "scrub",
        "ssd",
        "salun",
    }
    assert set(results["summary"]) == methods
    assert len(results["runs"]) == 2 * len(methods)
    retrain = results["summary"]["retrain"]
    assert retrain["avg_gap"]["mean"] == 0 and retrain["jsd"]["mean"] == 0
    runs = {(r["method"], r["seed"]): r for r in results["runs"]}
    for method in methods - {"original", "retrain"}:
        row = results["summary"][method]
        # Avg Gap of each run: the mean over the four metrics of |method - retrained| on that seed; the
        # summary is their mean and sample std over the seeds
        gaps = [np.mean([abs(runs[method, s][k] - runs["retrain", s][k]) for k in GAP_KEYS]) for s in (1, 2)]
        for seed, gap in zip((1, 2), gaps, strict=True):
            assert runs[method, seed]["avg_gap"] == pytest.approx(gap, abs=1e-12)
        assert row["avg_gap"]["mean"] == pytest.approx(np.mean(gaps)) and row["avg_gap"]["std"] == pytest.approx(
            np.std(gaps, ddof=1)
        )
        # the paper's aggregation: per metric, |mean over seeds of the method - mean over seeds of retrain|
        paper = np.mean(
            [
                abs(np.mean([runs[method, s][k] for s in (1, 2)]) - np.mean([runs["retrain", s][k] for s in (1, 2)]))
                for k in GAP_KEYS
            ]
        )
        assert row["avg_gap_paper"] == pytest.approx(paper, abs=1e-12)
        assert row["avg_gap_paper"] <= row["avg_gap"]["mean"] + 1e-12  # |mean| <= mean of |.|
        # every share divides by the one retraining timed in this run (seed 1's)
        assert results["retrain_timed"] == {"seconds": runs["retrain", 1]["seconds"], "seed": 1}
        shares = [runs[method, s]["seconds"] / runs["retrain", 1]["seconds"] for s in (1, 2)]
        assert row["share_of_retrain"]["mean"] == pytest.approx(np.mean(shares))
        assert row["hyperparameters"]["method"] == method
        assert runs[method, 1]["weight_change"] >= 0 and runs[method, 1]["distance_to_original"] >= 0
    assert results["summary"]["lotus"]["hyperparameters"]["num_train_epochs"] == 1
    for method in methods - {
        "original",
        "retrain",
    }:  # "no change": metrics within NO_OP_DISTANCE of the original's
        row = results["summary"][method]
        assert row["no_op"] == (row["distance_to_original"]["mean"] < NO_OP_DISTANCE)
    points = results["pearson_points"]
    assert set(points) == methods - {"original"}
    for key, (x_key, y_key) in {
        "pearson_rf_jsd_vs_jsd": ("rf_jsd", "jsd"),
        "pearson_reference": ("rf_jsd_reference", "jsd_reference"),
    }.items():
        x = [results["summary"][m][x_key]["mean"] for m in points]
        y = [results["summary"][m][y_key]["mean"] for m in points]
        assert results[key] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert results["train_samples"] == 200
    files = {p.name for p in (tmp_path / "first").iterdir()}
    assert files == {
        "results.json",
        "results.md",
        "avg_gap_vs_time.png",
        "rf_jsd_vs_jsd.png",
        "entropy_histograms.png",
    }
    for png in ("avg_gap_vs_time.png", "rf_jsd_vs_jsd.png", "entropy_histograms.png"):
        assert (tmp_path / "first" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "first" / "results.md").read_text()
    assert "| lotus |" in table and "Pearson r" in table and "`salun_sparsity`=0.1" in table
    # every run's verdict and inside are kept; the lowest method is compared seed by seed with every other
    assert all(r["verdict"] in ("forgotten", "inconclusive", "not_forgotten") for r in results["runs"])
    lotus_runs = [r for r in results["runs"] if r["method"] == "lotus"]
    assert all(r["history"] and "tau" in r["history"][0] for r in lotus_runs)
    assert results["summary"]["lotus"]["stop_fired"] == [r["stopped_at_epoch"] for r in lotus_runs]
    assert sum(results["summary"]["lotus"]["verdicts"].values()) == 2
    paired = results["paired"]
    assert paired["best"] == results["lowest_avg_gap"] and set(paired["against"]) == methods - {
        "original",
        "retrain",
        paired["best"],
    }
    assert all(0 <= row["wins"] <= 2 and 0 <= row["p"] <= 1 for row in paired["against"].values())
    # the verifier's controls ran on both seeds: each one's verdict, and the forged histories caught
    assert {r["control"] for r in results["controls"] if "heldout" not in r} == {
        "retrained",
        "original",
        "lr0",
        "edited_history",
        "swapped_weights",
    }
    assert all(
        r["weights_match"] is False for r in results["controls"] if r["control"].endswith(("history", "weights"))
    ), [(r["control"], r.get("weights_match"), r.get("step")) for r in results["controls"]]
    assert results["error_rates"]["retrained"]["seeds"] == 2
    # and the models built to pass, per seed, on the public half and on the private set (digits outside the subset)
    adaptive = {(r["control"], r["heldout"]) for r in results["controls"] if "heldout" in r}
    assert adaptive == {
        (c, h) for c in ("trained_on_heldout", "nearest_relabel", "temperature") for h in ("public", "private")
    }
    assert results["error_rates"]["trained_on_heldout (private)"]["seeds"] == 2
    assert "## Seed by seed" in table and "## The verifier's controls" in table and "verified f/i/n" in table

    # Same request again: the original and both retrained models come from the cache, with their times.
    assert main([*common, "--methods", "lotus", "--output-dir", str(tmp_path / "second")]) == 0
    out = capsys.readouterr().out
    assert "training original" not in out and "training retrained" not in out
    assert out.count("cached retrained:") == 2
    # the cached retrained models are used, and one of them is trained again only to time it in this run
    assert out.count("re-timing the cached retrained model of seed 1") == 1
    again = json.loads((tmp_path / "second" / "results.json").read_text())
    assert again["summary"]["retrain"]["seconds"] == results["summary"]["retrain"]["seconds"]
    # the cached originals are the same weights, reloaded: each seed's test accuracy within one of the test half's
    # 50 images (a reload may change the kernels, and a near tie may fall the other way)
    runs_again = {(r["method"], r["seed"]): r for r in again["runs"]}
    for seed in (1, 2):
        expected = runs["original", seed]["acc_test"]
        assert runs_again["original", seed]["acc_test"] == pytest.approx(expected, abs=1 / 50)
    # the second run says how much training it read from the cache instead of running it
    assert results["cached_training_seconds"] == 0.0
    reused = again["cached_training_seconds"]
    retrained = sum(r["seconds"] for r in results["runs"] if r["method"] == "retrain")
    assert reused > retrained  # both retrained models and both originals
    # by cache entry: what the first run trained, the second read back (4 models: 2 seeds, original and retrained)
    assert len(results["trainings"]["trained"]) == 4 and results["trainings"]["cached"] == {}
    assert again["trainings"] == {"trained": {}, "cached": results["trainings"]["trained"]}
    note = f"plus {reused / 60:.1f} min of training read from the cache"
    assert note in (tmp_path / "second" / "results.md").read_text()
    assert again["retrain_timed"]["seed"] == 1 and again["retrain_timed"]["seconds"] > 0

    # Tuning: every setting of every method. SSD with a threshold nothing passes leaves the model as it was, and
    # the table says so; Finetune at learning rate 0 moves no weight, but its BatchNorm statistics still move.
    grid = {
        "finetune": [{"learning_rate": 0.0, "num_train_epochs": 1}, {"learning_rate": 0.05, "num_train_epochs": 1}],
        "ssd": [{"ssd_alpha": 1e9}, {"ssd_alpha": 0.5}],
    }
    assert main([*common, "--seeds", "1", "--grid", json.dumps(grid), "--output-dir", str(tmp_path / "grid")]) == 0
    tuned = json.loads((tmp_path / "grid" / "results.json").read_text())
    assert set(tuned["summary"]) == {"original", "retrain", "finetune#1", "finetune#2", "ssd#1", "ssd#2"}
    still = tuned["summary"]["ssd#1"]
    assert still["no_op"] and still["weight_change"]["mean"] == 0 and still["distance_to_original"]["mean"] == 0
    assert tuned["summary"]["finetune#1"]["weight_change"]["mean"] == 0
    assert not tuned["summary"]["finetune#2"]["no_op"] and tuned["summary"]["finetune#2"]["weight_change"]["mean"] > 0
    for method in grid:
        gaps = [tuned["summary"][f"{method}#{i}"]["avg_gap"]["mean"] for i in (1, 2)]
        assert tuned["tuning"][method] == {"settings": grid[method], "avg_gap": gaps, "best": 1 + int(np.argmin(gaps))}
    table = (tmp_path / "grid" / "results.md").read_text()
    assert "| ssd#1 *(no change)* |" in table and "## Tuning" in table


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--methods", "lotus,magic"], "`methods` names ['magic']"),
        (["--method-config", '{"lotus": {"alpa": 3}}'], "['alpa'] are not fields of `UnlearningConfig`"),
        (["--method-config", "lotus.alpha=3"], "`--method-config` must be a JSON object"),
        (["--seeds", "a,b"], "`--seeds` must be integers"),
        (["--method-config", '{"scrub": {"scrub_temperature": -1}}'], "`scrub_temperature` must be > 0"),
        (["--grid", '{"lotus": []}'], "`--grid` must map each method to a non-empty list"),
        (["--grid", "no-such-grid.json"], "`--grid` must be a JSON object or a file holding one"),
        (["--grid", '{"ssd": [{"ssd_alpha": -1}]}'], "`ssd_alpha` must be > 0"),
    ],
)
def test_bad_benchmark_flags_fail_before_any_work(extra, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["benchmark", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_minutes_from_an_empty_cache_count_each_shared_model_once():
    # cell a trained its original; cell b read it and a retrained model back; cell c read both originals
    a = {"wall_seconds": 60.0, "trainings": {"trained": {"original-1": 30.0}, "cached": {}}}
    b = {
        "wall_seconds": 120.0,
        "trainings": {"trained": {}, "cached": {"original-1": 30.0, "retrained-1": 90.0}},
    }
    c = {
        "wall_seconds": 30.0,
        "trainings": {"trained": {}, "cached": {"original-1": 30.0, "original-2": 60.0}},
    }
    assert minutes_from_empty_cache([a]) == 1.0
    assert minutes_from_empty_cache([b]) == (120 + 30 + 90) / 60
    # together: original-1 is already in a's wall time, retrained-1 and original-2 count once
    assert minutes_from_empty_cache([a, b, c]) == (60 + 120 + 30 + 90 + 60) / 60
    assert cached_not_trained([a, b, c]) == {"retrained-1": 90.0, "original-2": 60.0}
    # results from before trainings were named: their cached seconds are added as they are
    assert minutes_from_empty_cache([{"wall_seconds": 60.0, "cached_training_seconds": 120.0}]) == 3.0


def test_stratified_subset_keeps_class_shares():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    chosen = stratified_subset(labels, 50, seed=3)
    assert len(chosen) == 50 and len(set(chosen.tolist())) == 50
    assert np.bincount(labels[chosen]).tolist() == [5, 10, 15, 20]
    assert np.array_equal(chosen, stratified_subset(labels, 50, seed=3))


@pytest.mark.parametrize("failure", [SystemExit("the cell failed"), KeyboardInterrupt()])
def test_a_folder_being_replaced_comes_back_whole_if_the_run_fails(failure, tmp_path):
    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / "results.json").write_text("committed")
    with pytest.raises(type(failure)), replacing(folder) as previous:
        assert not folder.exists() and (previous / "results.json").read_text() == "committed"
        folder.mkdir()  # a run that wrote part of its folder, then failed
        (folder / "half.json").write_text("{")
        raise failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell"]
    assert [p.name for p in folder.iterdir()] == ["results.json"] and (
        folder / "results.json"
    ).read_text() == "committed"
    with replacing(folder):  # a run that succeeds: its folder stays, the committed one goes
        folder.mkdir()
        (folder / "results.json").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell"] and (folder / "results.json").read_text() == "new"


@pytest.mark.slow
def test_a_folder_being_replaced_comes_back_when_the_script_is_terminated(tmp_path):
    """SIGTERM (what `kill` and job schedulers send) interrupts the body like Ctrl-C does."""
    import signal
    import subprocess
    import sys

    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / "results.json").write_text("committed")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from lotus_hf.research.benchmark import replacing\n"
        "folder = Path(sys.argv[1])\n"
        "with replacing(folder):\n"
        "    folder.mkdir()\n"
        "    (folder / 'half.json').write_text('{')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell"]
    assert [p.name for p in folder.iterdir()] == ["results.json"]


def test_a_skipped_control_is_counted_apart_never_as_right():
    from lotus_hf.research.controls import error_rates

    rows = [
        {"control": "edited_history", "seed": 1, "verdict": "not_forgotten", "correct": True},
        {"control": "edited_history", "seed": 2, "verdict": "skipped", "correct": None},
        {"control": "swapped_weights", "seed": 2, "verdict": "skipped", "correct": None},
        {"control": "retrained", "seed": 1, "verdict": "not_forgotten", "correct": False},
    ]
    rates = error_rates(rows)
    assert rates["edited_history"] == {
        "seeds": 1,
        "forgotten": 0,
        "inconclusive": 0,
        "not_forgotten": 1,
        "wrong": 0,
        "expected": "not_forgotten",
        "skipped": 1,
        "forgotten_rate_interval": [0.0, 0.7935],
    }
    assert rates["swapped_weights"]["seeds"] == 0 and rates["swapped_weights"]["skipped"] == 1
    assert rates["retrained"]["wrong"] == 1 and "original" not in rates


def test_the_adaptive_controls_rates_are_per_held_out_set_with_an_interval():
    from lotus_hf.research.controls import error_rates, wilson

    rows = [
        {
            "control": "trained_on_heldout",
            "seed": s,
            "heldout": h,
            "verdict": v,
            "correct": v == "not_forgotten",
            "utility": "kept",
        }
        for s in range(4)
        for h, v in (("public", "forgotten"), ("private", "not_forgotten"))
    ]
    rates = error_rates(rows)
    assert rates["trained_on_heldout (public)"]["forgotten"] == 4 == rates["trained_on_heldout (public)"]["wrong"]
    assert rates["trained_on_heldout (private)"]["not_forgotten"] == 4
    assert rates["trained_on_heldout (private)"]["forgotten_rate_interval"] == wilson(0, 4)
    # Wilson's interval by hand: p = 1/2 of 4, z = 1.96
    z2 = 1.96**2
    centre, half = (0.5 + z2 / 8) / (1 + z2 / 4), 1.96 * np.sqrt(0.25 / 4 + z2 / 64) / (1 + z2 / 4)
    assert wilson(2, 4) == [round(centre - half, 4), round(centre + half, 4)]


def test_models_built_to_pass_change_only_what_they_claim(trained_resnet, digits_data):
    """A masked logit: that class is never predicted, every other logit as it was; a temperature: every logit
    divided by it, so every prediction stays."""
    from lotus_hf.evaluation import predict_logits
    from lotus_hf.research.controls import flattened, masked_logit

    before = predict_logits(trained_resnet, digits_data.test)
    masked = predict_logits(masked_logit(trained_resnet, [3]), digits_data.test)
    assert (masked.argmax(1) != 3).all() and (before.argmax(1) == 3).any()
    torch.testing.assert_close(masked[:, [0, 1, 2, 4, 5, 6, 7, 8, 9]], before[:, [0, 1, 2, 4, 5, 6, 7, 8, 9]])
    aucs = iter([0.7, 0.6, 0.5])  # what a verifier would report at T = 2, 4, 8: stops at the first under 0.55
    model, temperature = flattened(
        trained_resnet, lambda m: {"evidence": [{"test": "membership_auc", "statistic": next(aucs)}]}
    )
    assert temperature == 8.0
    torch.testing.assert_close(predict_logits(model, digits_data.test), before / 8, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("architecture", ["resnet", "vit"])
def test_the_bundled_models_defaults_are_what_the_budgeted_tuning_verified(architecture, monkeypatch):
    """What ships is what the benchmark ran: for each request kind tuned at budgets, the bundled model's
    unlearning_config.json names as its default the method whose setting the tuning verified `forgotten` (utility
    kept) most often within 10% of a retraining, with that setting; every other method's fields are its 10% pick
    (benchmarks/results/fashion_mnist/tuning.json), each with its budget (benchmarks/defaults.py)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "benchmarks"))  # defaults.py reads the tuning runs through tune.py
    monkeypatch.chdir(root)  # whose paths are relative to the repository
    spec = importlib.util.spec_from_file_location("bench_defaults", root / "benchmarks" / "defaults.py")
    defaults = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(defaults)
    picks = json.loads((root / "benchmarks/results/fashion_mnist/tuning.json").read_text())["picks"]
    model = f"fashion-mnist-{architecture}"
    shipped = json.loads((root / f"src/lotus_hf/bundled/{model}/unlearning_config.json").read_text())
    tuned = {kind: cell for kind, cell in defaults.CELLS[model].items() if "10" in picks.get(cell, {})}
    held = {kind for kind, cell in tuned.items() if cell in defaults.HELD_BACK}  # each with its reason written
    tuned = {kind: cell for kind, cell in tuned.items() if kind not in held}
    assert set(shipped.get("default", {})) == set(tuned)
    for kind, cell in tuned.items():
        chosen = defaults.verified_choice(cell)
        assert shipped["default"][kind] == chosen["method"].split("/")[0]
        for method, pick in picks[cell]["10"].items():
            if "/" in method:
                continue
            fields = chosen["fields"] if method == chosen["method"] else pick["fields"]
            section = shipped[method] if kind == "samples" else shipped[method]["classes"]
            assert {k: v for k, v in section.items() if k != "classes"} == {**fields, "budget": 0.1}, method


def test_the_digits_folder_holds_every_digit_once_in_a_stratified_split(tmp_path):
    """scripts/digits_folder.py (the digits ViT cells' data set): scikit-learn's 1,797 digits, each image once, in a
    70/30 split that keeps every digit's share, read back by `lotus-hf` as any image folder."""
    import sys
    from pathlib import Path

    from sklearn.datasets import load_digits

    from lotus_hf.data import load_image_dataset

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from digits_folder import write_digits

    assert write_digits(tmp_path / "digits") == {"train": 1257, "test": 540}
    data = load_image_dataset(str(tmp_path / "digits"))
    assert data["train"].features["label"].names == [str(d) for d in range(10)]
    digits = load_digits()
    for split, size in (("train", 1257), ("test", 540)):
        labels = np.array(data[split]["label"])
        assert len(labels) == size
        # every digit keeps its share of the whole (scikit-learn's counts: 174 to 183 per digit)
        assert np.abs(np.bincount(labels, minlength=10) / size - np.bincount(digits.target) / 1797).max() < 0.005
    files = sorted((tmp_path / "digits").rglob("*.png"))
    assert len({f.name for f in files}) == 1797  # each image once, named by its index
    from PIL import Image

    for index in (0, 1796):  # the pixels 0-16 scaled to 0-255, in the folder of the image's digit
        (path,) = [f for f in files if f.name == f"{index:04d}.png"]
        assert path.parent.name == str(digits.target[index])
        expected = np.clip(np.rint(digits.images[index] * 255 / 16), 0, 255).astype(np.uint8)
        assert np.array_equal(np.asarray(Image.open(path)), expected)


def test_a_budgeted_benchmark_evaluates_each_run_at_every_budget(digits_folder, tmp_path, capsys):
    """Budgets 4%, 8% and 16% of the recipe's retraining (30 epochs of 180 images): every run stops at 16% and is
    evaluated, from the checkpoint it saved on the way, at 4% and 8%; one results folder per budget, and the cost
    curves."""
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    config = {
        "finetune": {"num_train_epochs": 30},
        "ssd": {},
        "lotus": {
            "num_train_epochs": 30,
            "stop_rule": "paper",
            "stop_margin": 0.99,
            "per_device_train_batch_size": 32,
        },
    }
    argv = [
        "benchmark",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--seeds",
        "1",
        "--train-subset",
        "200",
        "--recipe-epochs",
        "30",
        "--methods",
        "lotus,finetune,ssd",
        "--budgets",
        "0.16,0.04,0.08",
        "--method-config",
        json.dumps(config),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0
    out = tmp_path / "out"
    assert (out / "cost_curves.png").is_file() and "# At 8% of a retraining" in (out / "results.md").read_text()
    top = json.loads((out / "results.json").read_text())
    assert list(top["budgets"]) == ["4", "8", "16"]
    for label in ("4", "8", "16"):
        results = json.loads((out / f"budget-{label}" / "results.json").read_text())
        assert results == top["budgets"][label] and (out / f"budget-{label}" / "results.md").is_file()
        budget = float(label) / 100
        for run in (r for r in results["runs"] if r["method"] in ("lotus", "finetune")):
            assert run["budget"] == budget and run["cost"]["within_budget"], (
                label,
                run["method"],
                run["cost"],
            )
            assert run["cost_share"] == pytest.approx(run["cost"]["share_of_retrain"])
            assert budget / 2 < run["cost_share"] <= budget  # trained until the budget was near, not past it
            assert run["stopped_by"] == "budget"
        # every run's verdict comes with its utility, and each method's row counts the damaged models apart
        assert all(r["utility"] in ("kept", "damaged") for r in results["runs"] if r["method"] != "retrain")
        assert all(
            row["damaged"] == sum(r["utility"] == "damaged" for r in results["runs"] if r["method"] == m)
            for m, row in results["summary"].items()
        )
        # the probes' share of each LoTUS run, as its parts counted them
        lotus = [r["cost"] for r in results["runs"] if r["method"] == "lotus"]
        assert results["summary"]["lotus"]["stops_share"]["max"] == pytest.approx(
            max(c["parts"]["probes"] / c["units"] for c in lotus)
        )
        ssd = next(r for r in results["runs"] if r["method"] == "ssd")
        assert ssd["cost"]["within_budget"] == (ssd["cost_share"] <= budget)  # one pass: over the small budgets
        assert results["summary"]["finetune"]["cost_share"]["mean"] == pytest.approx(
            next(r for r in results["runs"] if r["method"] == "finetune")["cost_share"]
        )
    # the runs at the smaller budgets are states the larger ones went through: less cost, other weights
    share = {
        label: json.loads((out / f"budget-{label}" / "results.json").read_text())["summary"]["finetune"]["cost_share"][
            "mean"
        ]
        for label in ("4", "8", "16")
    }
    assert share["4"] < share["8"] < share["16"]


@pytest.mark.slow
def test_tuning_picks_per_budget_among_the_settings_within_it(digits_folder, tmp_path, monkeypatch):
    """benchmarks/tune.py's picks on a real budgeted grid run: per budget, the lowest Avg Gap among the settings whose
    runs all kept within it (SSD's one pass, over 4% here, is no candidate there)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    from tune import picks_of

    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    steps = {"num_train_epochs": 30, "per_device_train_batch_size": 32}
    grid = {
        "finetune": [{"learning_rate": 1e-4, **steps}, {"learning_rate": 3e-2, **steps}],
        "ssd": [{"ssd_alpha": 10.0, "ssd_lambda": 1.0}],
    }
    argv = [
        "benchmark",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--seeds",
        "1,2",
        "--train-subset",
        "200",
        "--recipe-epochs",
        "30",
        "--grid",
        json.dumps(grid),
        "--budgets",
        "0.02,0.16",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0
    by_budget = json.loads((tmp_path / "out" / "results.json").read_text())["budgets"]
    for label, results in by_budget.items():
        chosen = picks_of("resnet-first10", {"grid": results})
        gaps = {i: results["summary"][f"finetune#{i}"]["avg_gap"]["mean"] for i in (1, 2)}
        best = min(gaps, key=gaps.get)
        assert chosen["finetune"]["fields"] == grid["finetune"][best - 1], label
        assert chosen["finetune"]["from"] == f"grid #{best}"
        ssd_share = results["summary"]["ssd#1"]["cost_share"]["mean"]
        assert ("ssd" in chosen) == (ssd_share <= float(label) / 100), (label, ssd_share)
    assert "ssd" not in picks_of("resnet-first10", {"grid": by_budget["2"]})  # 2% is less than SSD's one pass


def test_cost_curves_draw_every_method_of_any_budget_however_many(tmp_path):
    """A tuning run draws a curve per setting (64 and more), and a method with no row at one budget (no setting
    kept within it) is still drawn through the others (the digits ViT's tuning ran out of colours after 12)."""
    from lotus_hf.research.plots import plot_cost_curves

    def budget(methods, cost):
        row = {"cost_share": {"mean": cost}, "avg_gap": {"mean": 0.1}, "verdicts": {"forgotten": 1}}
        runs = [
            {"method": m, "verdict": "forgotten", "utility": "damaged" if i % 2 else "kept"}
            for i, m in enumerate(methods)
        ]
        return {"model": "m", "forget": "f", "summary": {m: row for m in ["original", *methods]}, "runs": runs}

    many = [f"finetune#{i}" for i in range(70)]
    drawn = plot_cost_curves({"5": budget(many, 0.05), "10": budget([*many, "lotus"], 0.1)}, tmp_path / "c.png")
    assert drawn == [*many, "lotus"] and (tmp_path / "c.png").stat().st_size > 0
