"""RF-JSD under bad input, fuzzed with a fixed seed: every malformed input gets a `ValueError` with a message,
from the package's function and from the `evaluate` metric alike (never a numpy or evaluate traceback)."""

from pathlib import Path

import numpy as np
import pytest

from lotus_hf.rf_jsd import rf_jsd

evaluate = pytest.importorskip("evaluate")
METRIC_DIR = Path(__file__).resolve().parents[1] / "metrics" / "rf_jsd"
PACKAGE_NAMES = (
    "`predictions`",
    "`references`",
    "`unseen_predictions`",
    "`unseen_references`",
    "forget class",
)
# the same names through the metric; evaluate itself checks that predictions and references have the same length
METRIC_NAMES = (
    "`predictions`",
    "`references`",
    "`unseen_predictions`",
    "`unseen_references`",
    "forget class",
    "number of predictions",
    "Predictions and/or references",
)
DAMAGE = (
    "nan",
    "inf",
    "negative",
    "unnormalised",
    "ragged",
    "short_labels",
    "short_unseen_labels",
    "class_not_unseen",
    "empty_forget",
    "empty_unseen",
    "label_out_of_range",
    "fractional_label",
    "width_mismatch",
    "not_numbers",
)


def _valid(rng, classes: int):
    forget = rng.dirichlet(np.ones(classes), size=int(rng.integers(1, 30)))
    labels = rng.integers(0, classes, size=len(forget))
    unseen_labels = np.concatenate([np.arange(classes), rng.integers(0, classes, size=int(rng.integers(0, 30)))])
    unseen = rng.dirichlet(np.ones(classes), size=len(unseen_labels))
    return [forget.tolist(), labels.tolist(), unseen.tolist(), unseen_labels.tolist()]


def _damage(kind: str, inputs: list, rng) -> list:
    forget, labels, unseen, unseen_labels = inputs
    row, col = int(rng.integers(0, len(forget))), int(rng.integers(0, len(forget[0])))
    if kind in ("nan", "inf", "negative", "unnormalised", "not_numbers"):
        forget[row][col] = {
            "nan": float("nan"),
            "inf": float("inf"),
            "negative": -0.5,
            "unnormalised": 3.0,
            "not_numbers": "high",
        }[kind]
    elif kind == "ragged":
        forget[row] = forget[row] + [0.0]
    elif kind == "short_labels":
        labels = labels + [0]
    elif kind == "short_unseen_labels":
        unseen_labels = unseen_labels[:-1]
    elif kind == "class_not_unseen":
        keep = [i for i, label in enumerate(unseen_labels) if label != labels[row]]
        unseen, unseen_labels = [unseen[i] for i in keep], [unseen_labels[i] for i in keep]
    elif kind == "empty_forget":
        forget, labels = [], []
    elif kind == "empty_unseen":
        unseen, unseen_labels = [], []
    elif kind == "label_out_of_range":
        labels[row] = len(forget[0]) + int(rng.integers(0, 5))
    elif kind == "fractional_label":
        labels[row] = labels[row] + 0.5
    elif kind == "width_mismatch":
        unseen = [u + [0.0] for u in unseen]
    return [forget, labels, unseen, unseen_labels]


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def test_seeded_fuzz_every_bad_input_is_a_value_error(metric):
    rng = np.random.default_rng(20261201)
    seen = set()
    for trial in range(2 * len(DAMAGE)):  # each damage twice, once per variant (evaluate.compute is slow)
        kind = DAMAGE[trial % len(DAMAGE)]
        inputs = _damage(kind, _valid(rng, int(rng.integers(2, 6))), rng)
        variant = ("jsd", "reference")[trial // len(DAMAGE)]
        with pytest.raises(ValueError) as package_error:
            rf_jsd(*inputs, variant=variant)
        with pytest.raises(ValueError) as metric_error:
            metric.compute(
                predictions=inputs[0],
                references=inputs[1],
                unseen_predictions=inputs[2],
                unseen_references=inputs[3],
                variant=variant,
            )
        for error, names in ((package_error.value, PACKAGE_NAMES), (metric_error.value, METRIC_NAMES)):
            assert any(name in str(error) for name in names), (kind, str(error))  # says which input is wrong
        seen.add(kind)
    assert seen == set(DAMAGE)


def test_the_fuzzers_valid_inputs_are_accepted(metric):
    """The generator of the fuzz makes valid inputs before it damages them: both accept those."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        inputs = _valid(rng, int(rng.integers(2, 6)))
        value = rf_jsd(*inputs)
        result = metric.compute(
            predictions=inputs[0], references=inputs[1], unseen_predictions=inputs[2], unseen_references=inputs[3]
        )
        assert result["rf_jsd"] == pytest.approx(value, abs=1e-12) and 0 <= value <= np.log(2)
