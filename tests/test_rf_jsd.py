import math

import numpy as np
import pytest

from lotus_hf.rf_jsd import divergence, rf_jsd, rf_jsd_per_class

FORGET = [[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]
FORGET_LABELS = [0, 0, 1, 2]
UNSEEN = [[0.6, 0.3, 0.1], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]]
UNSEEN_LABELS = [0, 0, 1, 2, 2]


# The test vectors of docs/metric.md (also used by test_metric.py).
SPEC_VECTORS = [
    (FORGET, FORGET_LABELS, "jsd", 0.007851796809445479),
    (FORGET, FORGET_LABELS, "reference", 0.002680123408475369),
    ([[0.1, 0.8, 0.1]], [1], "jsd", 0.010162855274365355),
    ([[0.1, 0.8, 0.1]], [1], "reference", 0.010504109055246407),
]


@pytest.mark.parametrize("forget, labels, variant, expected", SPEC_VECTORS)
def test_spec_vectors(forget, labels, variant, expected):
    assert rf_jsd(forget, labels, UNSEEN, UNSEEN_LABELS, variant=variant) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("variant", ["jsd", "reference"])
def test_identical_inputs_give_zero(variant):
    assert rf_jsd(UNSEEN, UNSEEN_LABELS, UNSEEN, UNSEEN_LABELS, variant=variant) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_one_class():
    assert rf_jsd([[1.0, 0.0]], [0], [[0.0, 1.0]], [0]) == pytest.approx(math.log(2), abs=1e-12)
    assert rf_jsd([[1.0, 0.0]], [0], [[0.0, 1.0]], [0], "reference") == pytest.approx(8.517193201416237, abs=1e-9)


def test_per_class_values_average_to_the_metric():
    per_class = rf_jsd_per_class(FORGET, FORGET_LABELS, UNSEEN, UNSEEN_LABELS)
    assert sorted(per_class) == [0, 1, 2]
    assert sum(per_class.values()) / 3 == pytest.approx(0.007851796809445479, abs=1e-12)


def test_divergence_variants():
    assert divergence([[1.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(math.log(2))
    # the per-sample reference form on one row equals the class-level reference form
    assert divergence([[0.1, 0.8, 0.1]], [[0.2, 0.7, 0.1]], "reference") == pytest.approx(
        rf_jsd([[0.1, 0.8, 0.1]], [1], [[0.2, 0.7, 0.1]], [1], "reference")
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(predictions=[[0.5, 0.6]]), "`predictions` row 0 sums to 1.1"),
        (dict(predictions=[[-0.1, 1.1]]), "negative"),
        (dict(predictions=[[float("nan"), 1.0]]), "NaN"),
        (dict(predictions=[]), "2-D"),
        (dict(predictions=[[0.5, 0.5]], references=[0, 1]), "one label per probability row"),
        (dict(predictions=[[0.5, 0.5]], unseen_predictions=[[0.2, 0.3, 0.5]]), "same label set"),
        (dict(references=[1], unseen_references=[0]), "forget class 1 has no unseen sample"),
        (dict(variant="kl"), "`variant`"),
    ],
)
def test_bad_inputs_name_the_problem(kwargs, message):
    args = dict(predictions=[[0.5, 0.5]], references=[0], unseen_predictions=[[0.4, 0.6]], unseen_references=[0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        rf_jsd(**args)


def test_empty_rows_error():
    with pytest.raises(ValueError, match="`predictions` is empty"):
        rf_jsd(np.zeros((0, 2)), [], [[0.4, 0.6]], [0])


def test_interval_brackets_the_estimate_per_variant():
    from lotus_hf.rf_jsd import rf_jsd_interval

    rng = np.random.default_rng(3)
    forget, labels = rng.dirichlet([6, 2, 1], size=80), rng.integers(0, 3, size=80)
    unseen, unseen_labels = rng.dirichlet([1, 2, 6], size=90), rng.integers(0, 3, size=90)
    for variant in ("jsd", "reference"):
        value = rf_jsd(forget, labels, unseen, unseen_labels, variant)
        low, high = rf_jsd_interval(forget, labels, unseen, unseen_labels, variant, n_bootstrap=300, seed=0)
        assert low < value < high
