"""`lotus-hf benchmark` end to end on a tiny configuration: every method, two seeds, the cache, the outputs."""

import json

import numpy as np
import pytest
from conftest import save_tiny, tiny_model

from lotus_hf.cli import main
from lotus_hf.evaluation import GAP_KEYS
from lotus_hf.research.benchmark import stratified_subset

ONE_EPOCH = {m: {"num_train_epochs": 1} for m in ("finetune", "neggrad_plus", "random_labels", "salun", "scrub",
                                                  "bad_teacher")}  # fmt: skip
TINY = [
    "--seeds", "1,2", "--train-subset", "200", "--recipe-epochs", "3",
    "--method-config", json.dumps({"lotus": {"num_train_epochs": 1, "per_device_train_batch_size": 32}, **ONE_EPOCH}),
]  # fmt: skip


def test_benchmark_runs_end_to_end_and_reuses_its_cache(digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    common = ["benchmark", "--model", str(model_dir), "--dataset", str(digits_folder),
              "--cache-dir", str(tmp_path / "cache"), *TINY]  # fmt: skip
    assert main([*common, "--output-dir", str(tmp_path / "first")]) == 0
    out = capsys.readouterr().out
    assert "training original" in out and out.count("training retrained") == 2

    results = json.loads((tmp_path / "first" / "results.json").read_text())
    methods = {"original", "retrain", "lotus", "finetune", "neggrad_plus", "random_labels", "bad_teacher",
               "scrub", "ssd", "salun"}  # fmt: skip
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
        assert row["avg_gap"]["mean"] == pytest.approx(np.mean(gaps)) and row["avg_gap"][
            "std"
        ] == pytest.approx(np.std(gaps, ddof=1))
        shares = [runs[method, s]["seconds"] / runs["retrain", s]["seconds"] for s in (1, 2)]
        assert row["share_of_retrain"]["mean"] == pytest.approx(np.mean(shares))
        assert row["hyperparameters"]["method"] == method
    assert results["summary"]["lotus"]["hyperparameters"]["num_train_epochs"] == 1
    points = results["pearson_points"]
    assert set(points) == methods - {"original"}
    x = [results["summary"][m]["rf_jsd"]["mean"] for m in points]
    y = [results["summary"][m]["jsd"]["mean"] for m in points]
    assert results["pearson_rf_jsd_vs_jsd"] == pytest.approx(np.corrcoef(x, y)[0, 1])
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

    # Same request again: the original and both retrained models come from the cache, with their times.
    assert main([*common, "--methods", "lotus", "--output-dir", str(tmp_path / "second")]) == 0
    out = capsys.readouterr().out
    assert "training original" not in out and "training retrained" not in out
    assert out.count("cached retrained") == 2
    again = json.loads((tmp_path / "second" / "results.json").read_text())
    assert again["summary"]["retrain"]["seconds"] == results["summary"]["retrain"]["seconds"]
    assert again["summary"]["original"]["acc_test"] == results["summary"]["original"]["acc_test"]
    # the second run says how much training it read from the cache instead of running it
    assert results["cached_training_seconds"] == 0.0
    reused = again["cached_training_seconds"]
    retrained = sum(r["seconds"] for r in results["runs"] if r["method"] == "retrain")
    assert reused > retrained  # both retrained models and the original
    note = f"plus {reused / 60:.1f} min of training read from the cache"
    assert note in (tmp_path / "second" / "results.md").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--methods", "lotus,magic"], "`methods` names ['magic']"),
        (["--method-config", '{"lotus": {"alpa": 3}}'], "['alpa'] are not fields of `UnlearningConfig`"),
        (["--method-config", "lotus.alpha=3"], "`--method-config` must be a JSON object"),
        (["--seeds", "a,b"], "`--seeds` must be integers"),
        (["--method-config", '{"scrub": {"scrub_temperature": -1}}'], "`scrub_temperature` must be > 0"),
    ],
)
def test_bad_benchmark_flags_fail_before_any_work(extra, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["benchmark", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_stratified_subset_keeps_class_shares():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    chosen = stratified_subset(labels, 50, seed=3)
    assert len(chosen) == 50 and len(set(chosen.tolist())) == 50
    assert np.bincount(labels[chosen]).tolist() == [5, 10, 15, 20]
    assert np.array_equal(chosen, stratified_subset(labels, 50, seed=3))
