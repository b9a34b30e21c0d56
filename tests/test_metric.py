"""The `evaluate` metric under metrics/rf_jsd/, loaded offline from its local path, and its Space app."""

import ast
import contextlib
import doctest
import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from test_rf_jsd import FORGET, FORGET_LABELS, SPEC_VECTORS, UNSEEN, UNSEEN_LABELS

evaluate = pytest.importorskip("evaluate")
package = importlib.import_module("lotus_hf.rf_jsd")  # the module: `lotus_hf.rf_jsd` is also a function

METRIC_DIR = Path(__file__).resolve().parents[1] / "metrics" / "rf_jsd"
# What the folder may import on a Space, which holds only this folder and its requirements.txt.
SPACE_REQUIREMENTS = {"evaluate", "datasets", "numpy", "gradio", "pandas"}
ALLOWED_IMPORTS = {"rf_jsd.py": {"evaluate", "datasets", "numpy"}, "rf_jsd_math.py": {"numpy"}}
ALLOWED_IMPORTS["app.py"] = ALLOWED_IMPORTS["rf_jsd.py"] | {"gradio", "pandas"}
# The package's argument names -> the metric's, as the metric's errors say them.


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
    return metric.compute(
        predictions=forget,
        references=forget_labels,
        unseen_predictions=UNSEEN,
        unseen_references=UNSEEN_LABELS,
        **kwargs,
    )


@pytest.mark.parametrize("forget, labels, variant, expected", SPEC_VECTORS)
def test_spec_vectors_through_evaluate_load(metric, forget, labels, variant, expected):
    assert _compute(metric, forget, labels, variant=variant)["rf_jsd"] == pytest.approx(expected, abs=1e-9)


def test_one_class_vectors_and_identical_inputs(metric):
    kwargs = dict(predictions=[[1.0, 0.0]], references=[0], unseen_predictions=[[0.0, 1.0]], unseen_references=[0])
    assert metric.compute(**kwargs)["rf_jsd"] == pytest.approx(np.log(2), abs=1e-9)
    assert metric.compute(**kwargs, variant="reference")["rf_jsd"] == pytest.approx(8.517193201416237, abs=1e-9)
    same = metric.compute(
        predictions=UNSEEN,
        references=UNSEEN_LABELS,
        unseen_predictions=UNSEEN,
        unseen_references=UNSEEN_LABELS,
        variant="reference",
    )
    assert same["rf_jsd"] == pytest.approx(0.0, abs=1e-12)


def test_configuration_name_picks_the_variant(hf_home):
    reference = evaluate.load(str(METRIC_DIR), "reference")
    assert _compute(reference, FORGET, FORGET_LABELS)["rf_jsd"] == pytest.approx(0.002680123408475369, abs=1e-9)


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
        (
            dict(predictions=[[0.5, 0.5, 0.0]], references=[0], unseen_references=[0, 0, 1]),
            "`unseen_references` must hold one label per probability row (5)",
        ),
        (
            dict(
                predictions=[[0.5, 0.5, 0.0]],
                references=[0],
                unseen_predictions=[[0.5, 0.5, 0.0]],
                unseen_references=[1],
            ),
            "forget class 0 has no unseen sample",
        ),
        (dict(predictions=[], references=[]), "`predictions` must be a 2-D array"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], unseen_predictions=[]), "`unseen_predictions`"),
        (
            dict(
                predictions=[[0.5, 0.5, 0.0]],
                references=[0],
                unseen_predictions=[[0.5, 0.5], [0.2, 0.3, 0.5]],
                unseen_references=[0, 0],
            ),
            "`unseen_predictions` must be rows of numbers of one width",
        ),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], variant="paper"), "`variant` must be one of"),
        (dict(predictions=[[0.5, 0.5, 0.0]], references=[0], n_bootstrap=3), "`n_bootstrap` must be"),
    ],
)
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


@contextlib.contextmanager
def _as_on_a_space():
    """The metric folder on sys.path (a Space runs `python app.py` in it) and lotus-hf not importable."""
    names = {name for name in sys.modules if name.split(".")[0] == "lotus_hf"} | {"lotus_hf"}
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(dict.fromkeys(names))  # None: `import lotus_hf...` raises ImportError
    sys.modules.pop("rf_jsd_math", None)
    sys.path.insert(0, str(METRIC_DIR))
    try:
        yield
    finally:
        sys.path.remove(str(METRIC_DIR))
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _load_app():
    pytest.importorskip("gradio")
    spec = importlib.util.spec_from_file_location("rf_jsd_app", METRIC_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    with _as_on_a_space():
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
        summary, bars = client.predict(
            "", app.EXAMPLE_UNSEEN, "reference", 0, 0, handle_file(str(upload)), None, api_name="/score"
        )
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
    assert set(report.probs) == {"original", "unlearned"} and "probs" not in report.to_dict()  # in memory only


def test_one_evaluation_passes_the_original_once_and_reports_like_evaluate_unlearning(trained_resnet, digits_data):
    """An `Evaluation` of many models against one original: the original's outputs come from its first call, and
    each report is the one `evaluate_unlearning` gives."""
    import copy

    import torch

    from lotus_hf.evaluation import Evaluation, evaluate_unlearning

    original = copy.deepcopy(trained_resnet)
    passes = []
    original.register_forward_hook(lambda *_: passes.append(1))
    evaluation = Evaluation(digits_data, original)
    models = [copy.deepcopy(trained_resnet) for _ in range(2)]
    with torch.no_grad():
        models[1].classifier[-1].weight.mul_(0.5)
    reports = [evaluation(models[0])]
    after_first = len(passes)
    reports.append(evaluation(models[1]))
    assert len(passes) == after_first > 0
    for model, report in zip(models, reports, strict=True):
        alone = evaluate_unlearning(trained_resnet, model, digits_data)
        for name in ("original", "unlearned"):
            assert report.rows[name] == pytest.approx(alone.rows[name], abs=1e-6)


def test_the_metric_ships_the_packages_math_byte_for_byte():
    """One source of truth: lotus_hf/rf_jsd.py and the metric folder's rf_jsd_math.py are the same file."""
    package_file = Path(package.__file__)
    assert (METRIC_DIR / "rf_jsd_math.py").read_bytes() == package_file.read_bytes(), (
        "copy src/lotus_hf/rf_jsd.py to metrics/rf_jsd/rf_jsd_math.py (they must not drift)"
    )


def _random_inputs(seed):
    """Random softmax rows (some one-hot, so exact zeros occur) and labels; the unseen set has every class."""
    rng = np.random.default_rng(seed)
    classes, n_forget, n_unseen = int(rng.integers(2, 8)), int(rng.integers(1, 50)), int(rng.integers(10, 80))
    forget_labels = rng.integers(0, classes, size=n_forget)
    unseen_labels = np.concatenate([np.arange(classes), rng.integers(0, classes, size=n_unseen)])
    forget = rng.dirichlet(np.full(classes, 0.3), size=n_forget)
    forget[rng.random(n_forget) < 0.2] = np.eye(classes)[0]
    unseen = rng.dirichlet(np.full(classes, 0.3), size=len(unseen_labels))
    unseen[rng.random(len(unseen_labels)) < 0.1] = np.eye(classes)[-1]
    return forget, forget_labels, unseen, unseen_labels


@pytest.mark.parametrize("forget, labels, variant, expected", SPEC_VECTORS)
def test_spec_vectors_agree_with_the_package(metric, forget, labels, variant, expected):
    inputs = (forget, labels, UNSEEN, UNSEEN_LABELS)
    ours = package.rf_jsd(*inputs, variant=variant)
    assert ours == pytest.approx(expected, abs=1e-9)
    assert _compute(metric, forget, labels, variant=variant)["rf_jsd"] == pytest.approx(ours, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("variant", ["jsd", "reference"])
def test_random_inputs_agree_with_the_package(metric, seed, variant):
    """Value, per-class JSDs and the seeded bootstrap interval: the metric (via evaluate.load) gives
    lotus_hf.rf_jsd's numbers to 1e-12, under the same argument names."""
    inputs = _random_inputs(seed)
    forget, labels, unseen, unseen_labels = inputs
    value = package.rf_jsd(*inputs, variant=variant)
    per_class = package.rf_jsd_per_class(*inputs)
    low, high = package.rf_jsd_interval(*inputs, variant=variant, n_bootstrap=120, confidence=0.9, seed=seed)
    got = metric.compute(
        predictions=forget,
        references=labels,
        unseen_predictions=unseen,
        unseen_references=unseen_labels,
        variant=variant,
        per_class=True,
        n_bootstrap=120,
        confidence=0.9,
        seed=seed,
    )
    assert got["rf_jsd"] == pytest.approx(value, abs=1e-12)
    assert got["per_class"].keys() == per_class.keys()
    assert got["per_class"] == pytest.approx(per_class, abs=1e-12)
    assert (got["rf_jsd_low"], got["rf_jsd_high"]) == pytest.approx((low, high), abs=1e-12)


def _imports(path):
    """(absolute top-level module names, relative module names) that a file imports, at any depth."""
    absolute, relative = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            absolute.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            relative.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            absolute.add(node.module.split(".")[0])
    return absolute, relative


def test_the_metric_folder_imports_only_what_a_space_installs():
    """No lotus_hf: only the standard library, the packages in requirements.txt and the folder's own files."""
    files = sorted(path.name for path in METRIC_DIR.glob("*.py"))
    assert files == sorted(ALLOWED_IMPORTS)
    local = {Path(name).stem for name in files}
    for name in files:
        absolute, relative = _imports(METRIC_DIR / name)
        outside = absolute - set(sys.stdlib_module_names) - ALLOWED_IMPORTS[name] - (local - {"rf_jsd"})
        assert not outside, f"{name} imports {sorted(outside)}"
        assert relative <= local - {"rf_jsd"}, f"{name} imports {sorted(relative)} relatively"
    requirements = (METRIC_DIR / "requirements.txt").read_text().splitlines()
    names = {line.split("#")[0].strip().split(">")[0].split("=")[0].split("<")[0] for line in requirements}
    assert names - {""} == SPACE_REQUIREMENTS


def test_evaluates_import_scanner_reads_the_metric_module():
    """evaluate checks the library imports it finds and copies the relative ones next to the module."""
    from evaluate.loading import get_imports

    found = {(kind, name) for kind, name, _, _ in get_imports(str(METRIC_DIR / "rf_jsd.py"))}
    assert found == {("library", "datasets"), ("library", "evaluate"), ("internal", "rf_jsd_math")}
    for line in (METRIC_DIR / "rf_jsd.py").read_text().splitlines():
        assert not (line.startswith("from ") and "," in line), f"one import per line for evaluate: {line}"


def test_a_copy_of_the_folder_loads_and_computes_without_lotus_hf(hf_home, tmp_path):
    """What a Hub metric repo holds: the folder alone, loaded with evaluate.load while lotus_hf is blocked."""
    copy = tmp_path / "rf_jsd"
    shutil.copytree(METRIC_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "rf_jsd.py").open("a") as script:
        script.write("# a Space's copy\n")  # another hash: evaluate imports this copy afresh
    with _as_on_a_space():
        metric = evaluate.load(str(copy))
        value = _compute(metric, FORGET, FORGET_LABELS, variant="reference")["rf_jsd"]
    assert value == pytest.approx(0.002680123408475369, abs=1e-12)
    module_dir = Path(sys.modules[type(metric).__module__].__file__).parent
    assert (module_dir / "rf_jsd_math.py").is_file() and module_dir != copy
