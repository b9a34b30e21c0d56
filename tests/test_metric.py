"""The `evaluate` metric under metrics/rf_jsd/, loaded offline from its local path, and its Space app."""

import doctest
from pathlib import Path

import numpy as np
import pytest
from test_rf_jsd import FORGET, FORGET_LABELS, SPEC_VECTORS, UNSEEN, UNSEEN_LABELS

evaluate = pytest.importorskip("evaluate")

METRIC_DIR = Path(__file__).resolve().parents[1] / "metrics" / "rf_jsd"


@pytest.fixture(scope="module")
def hf_home():
    """evaluate.load writes its module cache into $HF_HOME, a temp dir set by conftest before any import."""
    import os

    home = Path(os.environ["HF_HOME"])
    assert Path(evaluate.config.HF_MODULES_CACHE).is_relative_to(home) and "lotus-hf-test-home-" in home.name
    return home


@pytest.fixture(scope="module")
def metric(hf_home):
    return evaluate.load(str(METRIC_DIR))


def _compute(metric, forget, forget_labels, **kwargs):
    return metric.compute(predictions=forget, references=forget_labels, unseen_predictions=UNSEEN,
                          unseen_references=UNSEEN_LABELS, **kwargs)  # fmt: skip


@pytest.mark.parametrize("forget, labels, variant, expected", SPEC_VECTORS)
def test_spec_vectors_through_evaluate_load(metric, forget, labels, variant, expected):
    assert _compute(metric, forget, labels, variant=variant)["rf_jsd"] == pytest.approx(expected, abs=1e-9)


def test_one_class_vectors_and_identical_inputs(metric):
    kwargs = dict(
        predictions=[[1.0, 0.0]], references=[0], unseen_predictions=[[0.0, 1.0]], unseen_references=[0]
    )
    assert metric.compute(**kwargs)["rf_jsd"] == pytest.approx(np.log(2), abs=1e-9)
    assert metric.compute(**kwargs, variant="reference")["rf_jsd"] == pytest.approx(
        8.517193201416237, abs=1e-9
    )
    same = metric.compute(predictions=UNSEEN, references=UNSEEN_LABELS, unseen_predictions=UNSEEN,
                          unseen_references=UNSEEN_LABELS, variant="reference")  # fmt: skip
    assert same["rf_jsd"] == pytest.approx(0.0, abs=1e-12)


def test_configuration_name_picks_the_variant(hf_home):
    reference = evaluate.load(str(METRIC_DIR), "reference")
    assert _compute(reference, FORGET, FORGET_LABELS)["rf_jsd"] == pytest.approx(
        0.002680123408475369, abs=1e-9
    )


def test_add_batch_equals_one_shot_compute(metric):
    rng = np.random.default_rng(0)
    forget = rng.dirichlet(np.ones(3), size=40)
    labels = rng.integers(0, 3, size=40)
    one_shot = _compute(metric, forget, labels, per_class=True)
    for start in range(0, 40, 7):
        metric.add_batch(predictions=forget[start : start + 7], references=labels[start : start + 7])
    batched = metric.compute(unseen_predictions=UNSEEN, unseen_references=UNSEEN_LABELS, per_class=True)
    assert batched["rf_jsd"] == pytest.approx(one_shot["rf_jsd"], abs=1e-12)
    assert batched["per_class"] == pytest.approx(one_shot["per_class"], abs=1e-12)
    assert np.mean(list(one_shot["per_class"].values())) == pytest.approx(one_shot["rf_jsd"], abs=1e-12)


def test_bootstrap_interval_contains_the_estimate_and_is_seeded(metric):
    rng = np.random.default_rng(1)
    forget = rng.dirichlet([8, 1, 1], size=60)  # the unlearned model still favours class 0 on all rows
    labels = rng.integers(0, 3, size=60)
    first = _compute(metric, forget, labels, n_bootstrap=500, seed=7)
    again = _compute(metric, forget, labels, n_bootstrap=500, seed=7)
    other = _compute(metric, forget, labels, n_bootstrap=500, seed=8)
    assert first["rf_jsd_low"] < first["rf_jsd"] < first["rf_jsd_high"]
    assert (first["rf_jsd_low"], first["rf_jsd_high"]) == (again["rf_jsd_low"], again["rf_jsd_high"])
    assert (first["rf_jsd_low"], first["rf_jsd_high"]) != (other["rf_jsd_low"], other["rf_jsd_high"])
    wider = _compute(metric, forget, labels, n_bootstrap=500, seed=7, confidence=0.99)
    assert wider["rf_jsd_low"] <= first["rf_jsd_low"] and wider["rf_jsd_high"] >= first["rf_jsd_high"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(predictions=[[0.5, 0.6, 0.1]], references=[0]), "`predictions` row 0 sums to 1.200000"),
        (dict(predictions=[[-0.1, 1.0, 0.1]], references=[0]), "`predictions` holds negative values"),
        (dict(predictions=[[float("nan"), 0.5, 0.5]], references=[0]), "`predictions` holds NaN"),
        (dict(predictions=[[0.5, 0.5]], references=[0]), "`predictions` has 2 classes per row"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], unseen_references=[0, 0, 1]),
         "`unseen_references` must hold one label per probability row (5)"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], unseen_predictions=[[0.5, 0.5, 0.0]],
              unseen_references=[1]), "forget class 0 has no unseen sample"),
        (dict(predictions=[], references=[]), "`predictions` must be a 2-D array"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], unseen_predictions=[]), "`unseen_predictions`"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], unseen_predictions=[[0.5, 0.5], [0.2, 0.3, 0.5]],
              unseen_references=[0, 0]), "`unseen_predictions` must be rows of numbers of one width"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], variant="paper"), "`variant` must be one of"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], n_bootstrap=3), "`n_bootstrap` must be"),
    ],
)  # fmt: skip
def test_bad_inputs_get_clear_errors(metric, kwargs, message):
    full = {"unseen_predictions": UNSEEN, "unseen_references": UNSEEN_LABELS, **kwargs}
    with pytest.raises(ValueError) as error:
        metric.compute(**full)
    assert message in str(error.value)


def test_missing_unseen_inputs_are_named(metric):
    with pytest.raises(ValueError, match="`unseen_predictions` and `unseen_references` are required"):
        metric.compute(predictions=FORGET, references=FORGET_LABELS)


def test_doctests_of_the_metric_module(metric):
    module = type(metric)  # the class evaluate imported from metrics/rf_jsd/rf_jsd.py
    import sys

    globs = {"evaluate": _LocalEvaluate()}
    results = doctest.testmod(sys.modules[module.__module__], extraglobs=globs, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 3 and results.failed == 0


class _LocalEvaluate:
    """`evaluate` as the docstrings use it, with `evaluate.load("rf_jsd")` resolved to the local folder."""

    def load(self, name, *args, **kwargs):
        return evaluate.load(str(METRIC_DIR) if name == "rf_jsd" else name, *args, **kwargs)


def _load_app():
    import importlib.util

    pytest.importorskip("gradio")
    spec = importlib.util.spec_from_file_location("rf_jsd_app", METRIC_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_score_function_and_its_errors():
    import gradio as gr

    app = _load_app()
    summary, bars = app.score(app.EXAMPLE_FORGET, app.EXAMPLE_UNSEEN, "jsd", 200, 0)
    assert "**RF-JSD (jsd)** = 0.0078518" in summary and "bootstrap interval" in summary
    assert list(bars["class"]) == ["0", "1", "2"]
    assert bars["jsd"].mean() == pytest.approx(0.007851796809445479, abs=1e-12)
    with pytest.raises(gr.Error, match="The unseen table is empty"):
        app.score(app.EXAMPLE_FORGET, "", "jsd", 0, 0)
    with pytest.raises(gr.Error, match="forget class 2 has no unseen sample"):
        app.score(app.EXAMPLE_FORGET, "0, 0.5, 0.5, 0\n1, 0.2, 0.7, 0.1", "jsd", 0, 0)


def test_app_serves_on_localhost_and_answers_a_client(tmp_path, monkeypatch):
    """The metric's Space app on 127.0.0.1, one request through `gradio_client`, a CSV upload included."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client, handle_file

    app = _load_app()
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        upload = tmp_path / "forget.csv"
        upload.write_text("label,p0,p1,p2\n" + app.EXAMPLE_FORGET + "\n")
        client = Client(demo.local_url, verbose=False)
        summary, bars = client.predict("", app.EXAMPLE_UNSEEN, "reference", 0, 0, handle_file(str(upload)), None,
                                       api_name="/score")  # fmt: skip
        assert "**RF-JSD (reference)** = 0.00268012" in summary and "multiplied by 1e4" in summary
        assert "4 forget and 5 unseen samples, 3 classes" in summary
        assert [row[0] for row in bars["data"]] == ["0", "1", "2"]
    finally:
        demo.close()


def test_rf_jsd_inputs_feed_the_metric_and_agree_with_the_report(metric, trained_resnet, digits_data):
    """`rf_jsd_inputs` (one pass of each model) -> the metric == the RF-JSD in the evaluation report."""
    import copy

    import torch

    from lotus_hf.evaluation import evaluate_unlearning, rf_jsd_inputs

    unlearned = copy.deepcopy(trained_resnet)
    with torch.no_grad():
        unlearned.classifier[-1].weight.mul_(0.5)  # a different model from the original
    inputs = rf_jsd_inputs(unlearned, trained_resnet, digits_data.forget, digits_data.test)
    assert inputs["predictions"].shape == (len(digits_data.forget), 10)
    assert (inputs["unseen_references"] == digits_data.test.labels.numpy()).all()
    report = evaluate_unlearning(trained_resnet, unlearned, digits_data)
    for variant, key in (("jsd", "rf_jsd"), ("reference", "rf_jsd_reference")):
        value = metric.compute(**inputs, variant=variant)["rf_jsd"]
        assert value == pytest.approx(report.rows["unlearned"][key], abs=1e-9)
    assert report.rows["unlearned"]["rf_jsd"] != pytest.approx(report.rows["original"]["rf_jsd"], abs=1e-9)
