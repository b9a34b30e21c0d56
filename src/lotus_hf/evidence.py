"""Evidence of forgetting from a model's behaviour: statistical tests of its outputs on a forget set against
its outputs on held-out data, each with a bootstrap interval, and the verdict they add up to (pure numpy).

A model retrained without the forget set treats its samples as unseen samples of their classes. So, with no
retrained model at hand, compare the model with itself (docs/verification.md):

- sample requests: its accuracy on the forget samples against its accuracy on held-out samples of the same
  classes, and how well a membership score (the logit-scaled confidence of the true label) tells the two
  apart, as an AUC;
- class requests: how often it still predicts a forgotten class, on the class's training images and on its
  held-out images, and whether a label-free confidence tells the training images from the held-out ones;
- with the model's outputs on the test split's other half (the one a run calibrates on), whether the held-out
  half is unseen at all: the two halves are a random split of the same images, so a model trained on neither
  tells them apart no more than chance (`heldout_unseen_*`; an owner who trained on the held-out half fails it);
- with reference models (trained without the forget set), a per-example test: each forget sample's
  confidence under the model, beside the references' on the same sample, against the same comparison on
  held-out samples, with Benjamini-Hochberg control of the false-discovery rate.

Each statistic grows with what the model still knows of the forget set. A test says `forgotten` when its
interval shows the statistic at most its threshold (a one-sided test at 5%: the upper end of the 90% interval),
`not_forgotten` when it shows it above (the lower end of the Bonferroni-adjusted 95% interval), and
`inconclusive` otherwise, with how much more held-out data would settle it. A statistic well below what unseen
data gives (the model knows the forget set less than unseen data) counts against the verdict (`over_forgetting`)
when references show it, or when the request drew a typical sample of its classes (a fraction, the first percent,
a percent range); for hand-picked indices it is only noted, as atypical forget sets (mislabelled samples,
outliers) sit there under retraining too. The verdict is `not_forgotten` if any test says
so, `forgotten` if all do, else `inconclusive`.

Example:
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(400, 3)); labels = rng.integers(0, 3, 400)
    >>> log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    >>> result = verify_outputs(log_probs[:200], labels[:200], log_probs[200:], labels[200:], kind="samples")
    >>> result.verdict in VERDICTS
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import DataError

VERDICTS = ("forgotten", "not_forgotten", "inconclusive")
# requests that draw a typical sample of their classes (requests.FORGET_KINDS): the over-forgetting side applies to
# them without references; a hand-picked set of indices may be atypical, so there it needs references
TYPICAL_REQUESTS = ("fraction", "first_percent", "percent_range")
EXIT_CODES = {"forgotten": 0, "not_forgotten": 1, "inconclusive": 3}
DAMAGED_EXIT_CODE = 4  # `forgotten`, but the model no longer works (utility `damaged`)
# The most held-out accuracy a model may lose against its original before its utility is `damaged`: fixed before any
# result of this test was read (docs/verification.md, "Utility").
UTILITY_MARGIN = 0.05
# How far above unseen data's value a statistic may be for a model that never trained on the forget set
# (docs/verification.md says why these widths).
ACCURACY_MARGIN = 0.05  # accuracy on the forget set - on held-out data of the same classes
AUC_MARGIN = 0.05  # AUC - 0.5 of a membership score between forget and held-out samples
CLASS_RATE_MAX = 0.02  # share of a forgotten class's images still predicted as a forgotten class
# The least a model's layers before its head must have moved from the original's (||theta - theta_0|| / ||theta_0||)
# for its outputs to count: below it, the representation that recognised the forget set is the original's, whatever
# the head now outputs. Fixed 2026-12-07 after the masked_logit control passed every output test; the smallest change
# of any method's reported run was 0.024 (ResNet class cell at 10%), a retraining's ~1.
BODY_CHANGE_MIN = 1e-3
FDR = 0.05  # Benjamini-Hochberg level of the per-example test
ALPHA = 0.05  # every decision is a test at this level
BOOTSTRAP = 1000
SEED = 0  # of the bootstrap: the same inputs give the same intervals


@dataclass
class Evidence:
    """One test: its statistic, its intervals, what unseen data gives (`expected`) and the most a model that never
    saw the forget set may show (`threshold`), the sample counts and the outcome. `heldout_needed` says, for an
    inconclusive test, how many more held-out images would settle it if the statistic stayed where it is (None:
    more held-out data cannot, the forget set is too small). `below`: the forget set is known less than unseen
    data (noted, not counted)."""

    test: str
    statistic: float
    interval: list[float]  # Bonferroni-adjusted 95%: `not_forgotten` when its lower end exceeds the threshold
    equivalence_interval: list[float]  # 90%: `forgotten` when its upper end is at most the threshold
    expected: float
    threshold: float
    n_forget: int
    n_heldout: int
    outcome: str
    heldout_needed: int | None = None
    below: bool = False
    details: dict = field(default_factory=dict)


@dataclass
class Verification:
    """A verdict and the tests behind it (`to_dict` is what `--json`, report.json and receipts hold)."""

    verdict: str
    kind: str
    evidence: list[Evidence]
    advice: str = ""
    utility: dict | None = None  # the model's held-out accuracy against its original's (`utility`), when known

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "kind": self.kind,
            "advice": self.advice,
            "evidence": [asdict(e) for e in self.evidence],
            "utility": self.utility,
        }

    @property
    def exit_code(self) -> int:
        if self.verdict == "forgotten" and (self.utility or {}).get("outcome") == "damaged":
            return DAMAGED_EXIT_CODE
        return EXIT_CODES[self.verdict]


def utility(
    heldout_log_probs: np.ndarray,
    heldout_labels: np.ndarray,
    original_log_probs: np.ndarray,
    exclude_classes: list[int] | None = None,
) -> dict:
    """Whether the model still works: its accuracy on held-out images against its original's on the same images
    (the forgotten classes left out), the drop with a paired bootstrap 95% interval, and the outcome: `damaged` when
    the whole interval lies above `UTILITY_MARGIN` (the model is surely more than 5 points worse), else `kept`.

    Example:
        >>> labels = np.arange(200) % 2
        >>> right = np.log(np.eye(2)[labels] * 0.98 + 0.01)
        >>> wrong = np.log(np.eye(2)[1 - labels] * 0.98 + 0.01)
        >>> utility(right, labels, right)["outcome"], utility(wrong, labels, right)["outcome"]
        ('kept', 'damaged')
    """
    labels = np.asarray(heldout_labels)
    rows = ~np.isin(labels, exclude_classes) if exclude_classes else np.ones(len(labels), bool)
    model = (np.asarray(heldout_log_probs)[rows].argmax(-1) == labels[rows]).astype(float)
    original = (np.asarray(original_log_probs)[rows].argmax(-1) == labels[rows]).astype(float)
    rng = np.random.default_rng(SEED)
    draws = rng.integers(0, len(model), size=(BOOTSTRAP, len(model)))
    drops = original[draws].mean(1) - model[draws].mean(1)
    low, high = np.quantile(drops, [ALPHA / 2, 1 - ALPHA / 2])
    drop = float(original.mean() - model.mean())
    return {
        "accuracy": float(model.mean()),
        "original_accuracy": float(original.mean()),
        "drop": drop,
        "interval": [float(low), float(high)],
        "margin": UTILITY_MARGIN,
        "n_heldout": int(rows.sum()),
        "outcome": "damaged" if low > UTILITY_MARGIN else "kept",
    }


def measurements_agree(before: dict, now: dict) -> bool:
    """Whether two measurements of one test (`Evidence.to_dict` rows) agree, as a re-check on another machine needs.

    The same weights on another CPU, or reloaded with another memory layout, give logits that differ in the sixth
    decimal (oneDNN picks kernels by CPU and layout), so a near tie in a prediction or a rank may fall the other way:
    that moves a statistic by about one example's share. More than that is a different measurement.

    Example:
        >>> row = {"statistic": 0.10, "n_forget": 50, "n_heldout": 200}
        >>> measurements_agree(row, {**row, "statistic": 0.11}), measurements_agree(row, {**row, "statistic": 0.2})
        (True, False)
    """
    one_example = 1 / max(1, min(before["n_forget"], before["n_heldout"]))
    return math.isclose(before["statistic"], now["statistic"], rel_tol=0, abs_tol=one_example)


# ------------------------------------------------------------------------------------------- scores
def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def logit_confidence(log_probs: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """`log p_y - log(1 - p_y)` per row, from log-probabilities, for the class `labels` (default: each row's
    predicted class). It spreads out the confidences near 1 that membership is read from.

    >>> logit_confidence(np.log(np.array([[0.75, 0.25], [0.5, 0.5]]))).round(4).tolist()
    [1.0986, 0.0]
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    rows = np.arange(len(log_probs))
    labels = log_probs.argmax(axis=1) if labels is None else np.asarray(labels)
    own = log_probs[rows, labels]
    others = log_probs.copy()
    others[rows, labels] = -np.inf
    peak = others.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = peak[:, 0] + np.log(np.exp(others - np.where(np.isfinite(peak), peak, 0)).sum(axis=1))
    return own - rest


# ---------------------------------------------------------------------------------------- bootstrap
def class_matched_weights(forget_labels: np.ndarray, heldout_labels: np.ndarray) -> np.ndarray:
    """Weights of held-out samples that give each class the share it has in the forget set (0 for classes the
    forget set lacks): held-out statistics then compare like with like.

    >>> class_matched_weights(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 2])).tolist()
    [3.0, 0.5, 0.5, 0.0]
    """
    forget_labels, heldout_labels = np.asarray(forget_labels), np.asarray(heldout_labels)
    classes, forget_counts = np.unique(forget_labels, return_counts=True)
    weights = np.zeros(len(heldout_labels))
    missing = [int(c) for c in classes if not (heldout_labels == c).any()]
    if missing:
        raise DataError(
            f"the held-out data has no sample of the forget set's class(es) {missing}: verification compares "
            "each forget sample with held-out samples of its class; pass a data set whose test split has them."
        )
    for c, count in zip(classes, forget_counts, strict=True):
        members = heldout_labels == c
        weights[members] = (count / len(forget_labels)) / (members.sum() / len(heldout_labels))
    return weights


def resampling_weights(strata: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """`draws` bootstrap replicates as counts (draws x n): each stratum resampled with replacement to its size."""
    strata = np.asarray(strata)
    counts = np.zeros((draws, len(strata)), dtype=np.float64)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        size = len(members)
        picks = rng.integers(0, size, (draws, size)) + size * np.arange(draws)[:, None]
        counts[:, members] = np.bincount(picks.ravel(), minlength=draws * size).reshape(draws, size)
    return counts


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of `scores` for telling `positive` rows from the others, under each row of `weights` (draws x n or
    n): the weighted share of (positive, negative) pairs the scores order right, ties counting one half.

    >>> weighted_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), np.ones(4))
    0.75
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(scores, kind="stable")
    ranked, is_positive = np.asarray(scores)[order], np.asarray(positive, dtype=bool)[order]
    w = weights[:, order]
    negative = np.where(is_positive, 0.0, w)
    below_or_tied = np.cumsum(negative, axis=1)
    # tied scores form groups: a positive counts the negatives strictly below, and half of those tied with it
    starts = np.searchsorted(ranked, ranked, side="left")
    ends = np.searchsorted(ranked, ranked, side="right") - 1
    strictly_below = np.where(starts > 0, below_or_tied[:, np.maximum(starts - 1, 0)], 0.0)
    tied = below_or_tied[:, ends] - strictly_below
    pairs = (np.where(is_positive, w, 0.0) * (strictly_below + 0.5 * tied)).sum(axis=1)
    total = np.where(is_positive, w, 0.0).sum(axis=1) * negative.sum(axis=1)
    auc = np.where(total > 0, pairs / np.where(total > 0, total, 1), np.nan)
    return auc if auc.shape[0] > 1 else float(auc[0])


def benjamini_hochberg(p_values: np.ndarray, level: float = FDR) -> np.ndarray:
    """Which hypotheses Benjamini-Hochberg rejects at false-discovery rate `level`.

    >>> benjamini_hochberg(np.array([0.001, 0.2, 0.02, 0.9]), 0.1).tolist()
    [True, False, True, False]
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    passed = p[order] <= level * np.arange(1, len(p) + 1) / max(len(p), 1)
    cut = np.flatnonzero(passed).max() + 1 if passed.any() else 0
    rejected = np.zeros(len(p), dtype=bool)
    rejected[order[:cut]] = True
    return rejected


def _z(level: float) -> float:
    """The standard normal quantile at `level`."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(level)


def _bootstrap(statistic_fn, forget_strata, heldout_strata, rng, forget: bool = True, heldout: bool = True):
    """`BOOTSTRAP` values of `statistic_fn(forget_weights, heldout_weights)`, resampling the forget rows, the
    held-out rows or both (within strata), in chunks that keep memory small."""
    values = []
    for start in range(0, BOOTSTRAP, 250):
        draws = min(250, BOOTSTRAP - start)
        wf = resampling_weights(forget_strata, draws, rng) if forget else np.ones((draws, len(forget_strata)))
        wh = resampling_weights(heldout_strata, draws, rng) if heldout else np.ones((draws, len(heldout_strata)))
        values.append(np.atleast_1d(statistic_fn(wf, wh)))
    values = np.concatenate(values)
    return values[np.isfinite(values)]


def _decide(
    test: str,
    statistic_fn,
    forget_strata: np.ndarray,
    heldout_strata: np.ndarray,
    expected: float,
    margin: float,
    tests: int,
    rng: np.random.Generator,
    details: dict | None = None,
) -> Evidence:
    """Bootstrap `statistic_fn(forget_weights, heldout_weights)` (each draws x n, resampled within strata), and
    decide against the threshold `expected + margin`: shown at most it (90% interval) `forgotten`, shown above it
    (Bonferroni-adjusted 95%) `not_forgotten`."""
    n_f, n_h = len(forget_strata), len(heldout_strata)
    statistic = float(np.atleast_1d(statistic_fn(np.ones((1, n_f)), np.ones((1, n_h))))[0])
    joint = _bootstrap(statistic_fn, forget_strata, heldout_strata, rng)
    adjusted = ALPHA / tests
    interval = [float(np.quantile(joint, adjusted / 2)), float(np.quantile(joint, 1 - adjusted / 2))]
    equivalence = [float(np.quantile(joint, ALPHA)), float(np.quantile(joint, 1 - ALPHA))]
    threshold = expected + margin
    if interval[0] > threshold:
        outcome = "not_forgotten"
    elif equivalence[1] <= threshold:
        outcome = "forgotten"
    else:
        outcome = "inconclusive"
    needed = None
    if outcome == "inconclusive" and n_h > 1:
        # The interval's variance splits into a forget part and a held-out part (~1/n each): how many held-out
        # images make it narrow enough, if the statistic stays where it is?
        var_f = float(np.var(_bootstrap(statistic_fn, forget_strata, heldout_strata, rng, heldout=False)))
        var_h = float(np.var(_bootstrap(statistic_fn, forget_strata, heldout_strata, rng, forget=False)))
        z = _z(1 - ALPHA) if statistic <= threshold else _z(1 - adjusted / 2)
        budget = (abs(threshold - statistic) / z) ** 2
        if budget > var_f and var_h > 0:
            needed = max(0, math.ceil(n_h * var_h / (budget - var_f)) - n_h)
    below = margin > 0 and interval[1] < expected - margin
    return Evidence(
        test, statistic, interval, equivalence, expected, threshold, n_f, n_h, outcome, needed, below, details or {}
    )


# ---------------------------------------------------------------------------------------------- tests
def verify_outputs(
    forget_log_probs: np.ndarray,
    forget_labels: np.ndarray,
    heldout_log_probs: np.ndarray,
    heldout_labels: np.ndarray,
    *,
    kind: str,
    forgotten_classes: list[int] | None = None,
    reference_forget: list[np.ndarray] | None = None,
    reference_heldout: list[np.ndarray] | None = None,
    method: str | None = None,
    original_heldout: np.ndarray | None = None,
    body_change: float | None = None,
    calibration_log_probs: np.ndarray | None = None,
    calibration_labels: np.ndarray | None = None,
) -> Verification:
    """The verdict on a forget set from a model's log-probabilities on it and on held-out data it never trained
    on (nor calibrated on). `kind` is the request's: `"classes"` (then `forgotten_classes`, default the forget
    labels) or anything else for samples. `reference_forget` / `reference_heldout`: log-probabilities of
    reference models trained without the forget set, on the same rows, for the per-example test. `method`
    tailors the advice. `original_heldout`: the original model's log-probabilities on the held-out rows, for the
    verdict's `utility` (`utility`). `body_change`: how far the model's layers before its head moved from the
    original's (`lotus_hf.provenance.body_change`), for the `body_kept` test, which no output can pass.
    `calibration_log_probs` / `calibration_labels`: the model's outputs on the other half of the test split (the
    one an unlearning run calibrates on), for the `heldout_unseen_*` tests: were the held-out images trained on?"""
    rng = np.random.default_rng(SEED)
    forget_log_probs, heldout_log_probs = np.asarray(forget_log_probs), np.asarray(heldout_log_probs)
    forget_labels, heldout_labels = np.asarray(forget_labels), np.asarray(heldout_labels)
    if len(forget_labels) < 2:
        raise DataError("the forget set must hold at least 2 samples to be verified from behaviour.")
    references = reference_forget is not None and len(reference_forget) > 0
    if kind == "classes":
        classes = sorted(set(forget_labels.tolist()) if forgotten_classes is None else forgotten_classes)
        heldout_rows = np.isin(heldout_labels, classes)
        if not heldout_rows.any():
            raise DataError(
                f"the held-out data has no image of the forgotten class(es) {classes}: verification compares the "
                "class's training images with its held-out images; pass a data set whose test split has them."
            )
        held_lp, held_labels = heldout_log_probs[heldout_rows], heldout_labels[heldout_rows]
        tests = 3 + references
        evidence = _class_tests(forget_log_probs, forget_labels, held_lp, held_labels, classes, tests, rng)
        score_labels = (None, None)  # label-free: how sure the model is of whatever it predicts
    else:
        # two-sided where it can be: against references, or against held-out images when the request drew a typical
        # sample of its classes (a hand-picked set may be atypical, so there the lower side is only noted)
        two_sided = references or kind in TYPICAL_REQUESTS
        tests = 2 + references + two_sided
        held_lp, held_labels, heldout_rows = (
            heldout_log_probs,
            heldout_labels,
            np.ones(len(heldout_labels), bool),
        )
        evidence = _sample_tests(forget_log_probs, forget_labels, held_lp, held_labels, tests, rng)
        score_labels = (forget_labels, held_labels)
        if two_sided:
            evidence.append(
                _over_forgetting_test(
                    forget_log_probs, forget_labels, held_lp, held_labels, reference_forget, tests, rng
                )
            )
    if references:
        ref_held = [np.asarray(r)[heldout_rows] for r in reference_heldout]
        evidence.append(
            _per_example_test(
                forget_log_probs,
                held_lp,
                forget_labels,
                held_labels,
                reference_forget,
                ref_held,
                score_labels,
                tests,
                rng,
            )
        )
    if body_change is not None:
        evidence.append(_body_kept_test(body_change, len(forget_labels), len(held_labels)))
    if calibration_log_probs is not None:
        evidence += _heldout_unseen_tests(
            held_lp,
            held_labels,
            np.asarray(calibration_log_probs),
            np.asarray(calibration_labels),
            forget_labels,
            score_labels[0] is None,
            tests,
            rng,
        )
    outcomes = [e.outcome for e in evidence]
    verdict = (
        "not_forgotten"
        if "not_forgotten" in outcomes
        else "forgotten"
        if all(o == "forgotten" for o in outcomes)
        else "inconclusive"
    )
    kept = None
    if original_heldout is not None:
        kept = utility(heldout_log_probs, heldout_labels, original_heldout, classes if kind == "classes" else None)
    text = advice(verdict, evidence, method)
    if kept is not None and verdict == "forgotten" and kept["outcome"] == "damaged":
        text += (
            f" But the model no longer works: its held-out accuracy fell from {kept['original_accuracy']:.3f} to "
            f"{kept['accuracy']:.3f} (more than {UTILITY_MARGIN:.2f} below its original's): forgetting by "
            "breaking the model is no unlearning."
        )
    return Verification(verdict, "classes" if kind == "classes" else "samples", evidence, text, kept)


def _sample_tests(forget_lp, forget_labels, held_lp, held_labels, tests, rng) -> list[Evidence]:
    matched = class_matched_weights(forget_labels, held_labels)
    keep = matched > 0
    held_lp, held_labels, matched = held_lp[keep], held_labels[keep], matched[keep]
    correct_f = (forget_lp.argmax(1) == forget_labels).astype(np.float64)
    correct_h = (held_lp.argmax(1) == held_labels).astype(np.float64)

    def accuracy_gap(wf, wh):
        wh = wh * matched
        return (wf @ correct_f) / wf.sum(1) - (wh @ correct_h) / wh.sum(1)

    scores = np.concatenate([logit_confidence(forget_lp, forget_labels), logit_confidence(held_lp, held_labels)])
    positive = np.r_[np.ones(len(forget_labels)), np.zeros(len(held_labels))]

    def auc(wf, wh):
        return weighted_auc(scores, positive, np.hstack([wf, wh * matched]))

    details = {
        "acc_forget": float(correct_f.mean()),
        "acc_heldout": float(np.average(correct_h, weights=matched)),
    }
    return [
        _decide("accuracy_gap", accuracy_gap, forget_labels, held_labels, 0.0, ACCURACY_MARGIN, tests, rng, details),
        _decide(
            "membership_auc",
            auc,
            forget_labels,
            held_labels,
            0.5,
            AUC_MARGIN,
            tests,
            rng,
            {"score": "logit-scaled confidence of the true label"},
        ),
    ]


def _class_tests(forget_lp, forget_labels, held_lp, held_labels, classes, tests, rng) -> list[Evidence]:
    predicted_f = np.isin(forget_lp.argmax(1), classes).astype(np.float64)
    predicted_h = np.isin(held_lp.argmax(1), classes).astype(np.float64)

    def train_rate(wf, wh):
        return (wf @ predicted_f) / wf.sum(1)

    def heldout_rate(wf, wh):
        return (wh @ predicted_h) / wh.sum(1)

    matched = class_matched_weights(forget_labels, held_labels)
    scores = np.concatenate([logit_confidence(forget_lp), logit_confidence(held_lp)])
    positive = np.r_[np.ones(len(forget_labels)), np.zeros(len(held_labels))]

    def auc(wf, wh):
        return weighted_auc(scores, positive, np.hstack([wf, wh * matched]))

    return [
        _decide(
            "class_predicted_train",
            train_rate,
            forget_labels,
            held_labels,
            0.0,
            CLASS_RATE_MAX,
            tests,
            rng,
            {"images": "the forgotten classes' training images (the forget set)"},
        ),
        _decide(
            "class_predicted_heldout",
            heldout_rate,
            forget_labels,
            held_labels,
            0.0,
            CLASS_RATE_MAX,
            tests,
            rng,
            {"images": "the forgotten classes' held-out images"},
        ),
        _decide(
            "train_heldout_auc",
            auc,
            forget_labels,
            held_labels,
            0.5,
            AUC_MARGIN,
            tests,
            rng,
            {"score": "logit-scaled confidence of the predicted class"},
        ),
    ]


def _over_forgetting_test(forget_lp, forget_labels, held_lp, held_labels, ref_forget, tests, rng) -> Evidence:
    """The other side: how much less the model knows the forget set than it should. With references, their accuracy
    on the forget samples minus the model's, paired on the same samples; without, the model's accuracy on held-out
    images of the same classes (class-matched) minus its forget accuracy, for a request that drew a typical sample.
    A model that knows the forget set clearly less than unseen data (over-forgetting: its forget accuracy pushed
    below what unseen samples get) gives its members away by that very gap, the Streisand effect: `not_forgotten`
    when the gap's lower end exceeds `ACCURACY_MARGIN`; otherwise the test passes (`forgotten`: no sign of
    over-forgetting), as the one-sided tests decide the rest."""
    model_correct = (forget_lp.argmax(1) == forget_labels).astype(np.float64)
    if ref_forget:
        reference_correct = np.mean([np.asarray(r).argmax(1) == forget_labels for r in ref_forget], axis=0)

        def gap(wf, wh):
            return (wf @ (reference_correct - model_correct)) / wf.sum(1)

        details = {"acc_forget_references": float(reference_correct.mean()), "references": len(ref_forget)}
    else:
        matched = class_matched_weights(forget_labels, held_labels)
        keep = matched > 0
        held_lp, held_labels, matched = held_lp[keep], held_labels[keep], matched[keep]
        held_correct = (held_lp.argmax(1) == held_labels).astype(np.float64)

        def gap(wf, wh):
            wh = wh * matched
            return (wh @ held_correct) / wh.sum(1) - (wf @ model_correct) / wf.sum(1)

        details = {"acc_heldout": float(np.average(held_correct, weights=matched))}
    evidence = _decide(
        "over_forgetting",
        gap,
        forget_labels,
        held_labels,
        0.0,
        ACCURACY_MARGIN,
        tests,
        rng,
        {"acc_forget": float(model_correct.mean()), **details},
    )
    evidence.outcome = "not_forgotten" if evidence.outcome == "not_forgotten" else "forgotten"
    evidence.heldout_needed, evidence.below = None, False
    return evidence


def _heldout_unseen_tests(
    held_lp, held_labels, cal_lp, cal_labels, forget_labels, label_free, tests, rng
) -> list[Evidence]:
    """Are the held-out images the verdict reads unseen by the model? Every other test takes them for data it never
    trained on; an owner who trained on them (the `trained_on_heldout` control) makes them members like the forget
    set, and those tests pass. The test split's other half (the one a run calibrates on) is drawn from the same
    images by a seeded, stratified split, so a model trained on neither half cannot tell them apart: the sample
    tests' two statistics, read between the halves (the held-out half in the forget set's place, both weighted to
    the forget set's classes), show 0 (`heldout_unseen_gap`: accuracy) and 0.5 (`heldout_unseen_auc`: the
    verdict's membership score, of the true label, or label-free for a class request), with no margin. Shown above
    that (the lower end of the adjusted 95% interval, as every `not_forgotten`), the held-out half is known better
    than its twin and cannot stand for unseen data: `inconclusive` (it withholds `forgotten`; being about the
    held-out data, it never says `not_forgotten`). Otherwise they pass (`forgotten`). An owner who trained on the
    whole test split passes them too: only an auditor's own held-out set (`--heldout`) catches that. No test when
    the other half lacks a class of the forget set."""
    classes = np.unique(forget_labels)
    rows = np.isin(cal_labels, classes)
    cal_lp, cal_labels = cal_lp[rows], cal_labels[rows]
    rows = np.isin(held_labels, classes)
    held_lp, held_labels = held_lp[rows], held_labels[rows]
    try:
        held_w = class_matched_weights(forget_labels, held_labels)
        cal_w = class_matched_weights(forget_labels, cal_labels)
    except DataError:
        return []
    correct_h = (held_lp.argmax(1) == held_labels).astype(np.float64)
    correct_c = (cal_lp.argmax(1) == cal_labels).astype(np.float64)

    def gap(wh, wc):
        wh, wc = wh * held_w, wc * cal_w
        return (wh @ correct_h) / wh.sum(1) - (wc @ correct_c) / wc.sum(1)

    scores = np.concatenate(
        [
            logit_confidence(held_lp, None if label_free else held_labels),
            logit_confidence(cal_lp, None if label_free else cal_labels),
        ]
    )
    positive = np.r_[np.ones(len(held_labels)), np.zeros(len(cal_labels))]

    def auc(wh, wc):
        return weighted_auc(scores, positive, np.hstack([wh * held_w, wc * cal_w]))

    compares = "the held-out images read (as `forget`) with the test split's other half (as `held-out`)"
    # No margin: the halves are exchangeable (a seeded random split of the same images), so for a model trained on
    # neither the statistics are 0 and 0.5 exactly in expectation, with no shift between distributions to allow for.
    found = [
        _decide("heldout_unseen_gap", gap, held_labels, cal_labels, 0.0, 0.0, tests, rng),
        _decide("heldout_unseen_auc", auc, held_labels, cal_labels, 0.5, 0.0, tests, rng),
    ]
    for evidence in found:
        evidence.outcome = "inconclusive" if evidence.outcome == "not_forgotten" else "forgotten"
        evidence.heldout_needed, evidence.below, evidence.details = None, False, {"compares": compares}
    return found


def _body_kept_test(change: float, n_forget: int, n_heldout: int) -> Evidence:
    """A weight-level check that outputs cannot fool: the share of the original's layers before the head that the
    model kept (1 - their relative change). Above `1 - BODY_CHANGE_MIN`, the forgetting is an edit of the head alone
    (a masked logit, a head retrained or rewritten): the representation that recognised the forget set is the
    original's, readable by any probe, so `not_forgotten`. An exact measurement, so its intervals are the value.

    >>> _body_kept_test(0.0, 10, 10).outcome, _body_kept_test(0.02, 10, 10).outcome
    ('not_forgotten', 'forgotten')
    """
    kept = max(0.0, 1.0 - change)
    threshold = 1.0 - BODY_CHANGE_MIN
    outcome = "not_forgotten" if kept > threshold else "forgotten"
    details = {"body_change": change, "measured": "the parameters outside the layer that produces the logits"}
    return Evidence(
        "body_kept", kept, [kept, kept], [kept, kept], 0.0, threshold, n_forget, n_heldout, outcome, details=details
    )


def _per_example_test(
    forget_lp, held_lp, forget_labels, held_labels, ref_forget, ref_held, score_labels, tests, rng
) -> Evidence:
    """RMIA-style: each sample's confidence under the model minus its mean under the reference models, for the
    forget samples against the same difference for held-out samples (the empirical null: no model trained on
    them); one-sided p-values (the model surer than the references), Benjamini-Hochberg at `FDR`."""
    f_labels, h_labels = score_labels

    def difference(target, references, labels):
        mean = np.mean([logit_confidence(r, labels) for r in references], axis=0)
        return logit_confidence(target, labels) - mean

    forget_d = difference(forget_lp, ref_forget, f_labels)
    null = np.sort(difference(held_lp, ref_held, h_labels))
    at_least = len(null) - np.searchsorted(null, forget_d, side="left")
    p_values = (1 + at_least) / (1 + len(null))
    flagged = benjamini_hochberg(p_values, FDR)

    def share(wf, wh):
        return (wf @ flagged.astype(np.float64)) / wf.sum(1)

    evidence = _decide(
        "per_example",
        share,
        forget_labels,
        held_labels,
        0.0,
        0.0,
        tests,
        rng,
        {
            "references": len(ref_forget),
            "fdr": FDR,
            "flagged": int(flagged.sum()),
            "p_values": [round(float(p), 6) for p in p_values],
        },
    )
    # Under the null (no forget sample remembered) BH flags none with probability >= 1 - FDR: any flag is the
    # evidence, and none is what a model that never saw them shows.
    evidence.outcome = "not_forgotten" if flagged.any() else "forgotten"
    evidence.heldout_needed = None
    return evidence


def advice(verdict: str, evidence: list[Evidence], method: str | None = None) -> str:
    """What the verdict means and what to try next, in one or two sentences."""
    below = [e.test for e in evidence if e.below]
    lower = (
        f" The model knows the forget set less than unseen data ({', '.join(below)}): expected of atypical samples "
        "(mislabelled, outliers), but for a typical sample of the classes a sign that it was steered away from them."
        if below
        else ""
    )
    if verdict == "forgotten":
        return (
            "The model knows no more of the forget set than of data it never trained on, within the stated margins."
            + lower
        )
    failing = [e.test for e in evidence if e.outcome == verdict]
    if verdict == "not_forgotten" and "body_kept" in failing:
        body = next(e for e in evidence if e.test == "body_kept")
        return (
            f"NOT FORGOTTEN, head edited only: the layers before the head moved by {body.details['body_change']:.2e} "
            f"of their size from the original's (less than {BODY_CHANGE_MIN:g}), so the representation that "
            "recognised the forget set is still there, readable by a probe, whatever the outputs show. Unlearn the "
            "whole model, not its head."
        )
    if failing == ["over_forgetting"]:
        over = next(e for e in evidence if e.test == "over_forgetting")
        others = (
            f"reference models that never trained on it get {over.details['acc_forget_references']:.3f}"
            if "acc_forget_references" in over.details
            else f"it gets {over.details['acc_heldout']:.3f} of held-out images of the same classes right"
        )
        return (
            f"NOT FORGOTTEN, over-forgotten: the model gets {over.details['acc_forget']:.3f} of the forget set "
            f"right where {others}"
            " (gap interval [{:.3f}, {:.3f}]): the deletion itself gives the samples away (the Streisand "
            "effect). Try again from the original with a gentler setting (a lower learning rate, or "
            "`--stop-when-verified`).".format(*over.interval)
        )
    unseen = [e for e in evidence if e.test.startswith("heldout_unseen") and e.outcome == "inconclusive"]
    if verdict == "inconclusive" and unseen:
        shown = "; ".join(
            "{}: {:.3f}, 90% interval [{:.3f}, {:.3f}]".format(e.test, e.statistic, *e.equivalence_interval)
            for e in unseen
        )
        return (
            "Not shown: the model knows the held-out images this verdict reads better than the test split's other "
            f"half ({shown}), as a model trained on them would; one that never saw either half shows this about once "
            "in a hundred verdicts, by the luck of the split. Either way they cannot stand for data it never saw "
            "here. Verify on held-out images its owner never had (`--heldout`)."
        )
    if verdict == "inconclusive":
        needs = [e for e in evidence if e.outcome == "inconclusive"]
        counts = [e.heldout_needed for e in needs]
        if any(c is None for c in counts):
            more = "the forget set is too small for these margins whatever the held-out data, so no verdict either way"
        else:
            # every held-out image the verdict may read is read already (the other half is the run's calibration):
            # more can only come from elsewhere
            more = (
                f"it would take about {max(counts):,} more held-out images of these classes than the verdict "
                "read, and it read all it may of this data set; an auditor's own held-out set of that size "
                "(`--heldout`) or reference models trained without the forget set (`--reference-models`) would "
                "settle it"
            )
        return f"Not enough data to decide ({', '.join(failing)}): {more}." + lower
    tips = {
        # more epochs at the same setting do not help LoTUS: its temperature falls back to 1 as the forget accuracy
        # nears the unseen one, and the accuracy climbs again (docs/method.md, "The bound stop")
        "lotus": "more epochs at this setting will not help, as LoTUS's temperature pulls the forget accuracy back "
        "near the bound; raise `alpha` or the learning rate under the bound stop, with `--stop-when-verified` and "
        "a `--budget`",
        "belief_relabel": "allow more epochs or a higher learning rate",
    }
    tip = tips.get(method or "", "train longer or with a higher learning rate, or try another method")
    return (
        f"NOT FORGOTTEN: the model still treats the forget set differently from unseen data ({', '.join(failing)}). "
        f"Try again from the original: {tip}, then verify again."
    )
