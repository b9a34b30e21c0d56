"""RF-JSD, the retrain-free forgetting metric of LoTUS (docs/metric.md), and the retrain-based JSD, in plain numpy.

One file, shipped twice: as `lotus_hf.rf_jsd` in the package, and as metrics/rf_jsd/rf_jsd_math.py in the
`evaluate` metric's folder, which is pushed to the Hub on its own and so cannot import lotus-hf.
tests/test_metric.py keeps the two byte for byte identical. Errors name the metric's arguments (`predictions`,
`references`, `unseen_predictions`, `unseen_references`, `n_bootstrap`), which lotus-hf uses too.

>>> round(rf_jsd([[0.1, 0.8, 0.1]], [1], [[0.2, 0.7, 0.1]], [1]), 6)
0.010163
>>> round(rf_jsd([[0.1, 0.8, 0.1]], [1], [[0.2, 0.7, 0.1]], [1], "reference"), 6)
0.010504
>>> divergence([[1.0, 0.0]], [[0.0, 1.0]])
0.6931471805599453
"""

import numpy as np

VARIANTS = ("jsd", "reference")
CLAMP = 1e-8  # the reference variant clamps probabilities to [CLAMP, 1]
SUM_TOLERANCE = 1e-3  # how far from 1 a probability row may sum
SOFTMAX = "pass softmax outputs, not raw logits."


def _flaw(rows):
    """What is wrong with a float array meant as probability rows, or None."""
    if rows.ndim != 2:
        return f"must be a 2-D array of probability rows (samples x classes), got shape {rows.shape}."
    if len(rows) == 0:
        return "is empty: pass at least one probability row."
    if not np.isfinite(rows).all():
        return "holds NaN or infinite values: " + SOFTMAX
    if rows.min() < 0:
        return "holds negative values: " + SOFTMAX
    totals = rows.sum(axis=1)
    off = np.flatnonzero(abs(totals - 1.0) > SUM_TOLERANCE)
    if off.size == 0:
        return None
    return (
        f"row {off[0]} sums to {totals[off[0]]:.6f}, not 1: every row must be a probability distribution "
        "(apply softmax to the logits)."
    )


def probabilities(values, name):
    """`values` as a float64 (samples x classes) array of probability rows; a ValueError names `name`."""
    try:
        rows = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        rows, flaw = (
            None,
            (
                "must be rows of numbers of one width (one probability per class); its rows differ in length "
                "or hold something else."
            ),
        )
    else:
        flaw = _flaw(rows)
    if flaw:
        raise ValueError(f"`{name}` {flaw}")
    return rows


def class_ids(values, name, count, num_classes):
    """`values` as `count` int64 class ids in [0, num_classes); a ValueError names `name`."""
    ids = np.asarray(values)
    if ids.shape != (count,):
        raise ValueError(f"`{name}` must hold one label per probability row ({count}), got shape {ids.shape}.")
    whole = ids.dtype.kind in "iu" or not ids.size or bool((np.mod(ids, 1) == 0).all())
    if not whole:
        raise ValueError(f"`{name}` must hold integer class ids, got {ids.dtype} values.")
    ids = ids.astype(np.int64)
    if ids.size and not 0 <= ids.min() <= ids.max() < num_classes:
        span = f"[0, {num_classes}): got {ids.min()}..{ids.max()}."
        raise ValueError(f"`{name}` holds class ids outside {span}")
    return ids


def _check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}.")


def _check_interval(n_bootstrap, confidence):
    if not (isinstance(n_bootstrap, int) and n_bootstrap >= 10):
        raise ValueError(f"`n_bootstrap` must be an integer >= 10, got {n_bootstrap!r}: 1000 is usual.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}: 0.95 is usual.")


def _inputs(predictions, references, unseen_predictions, unseen_references):
    """Validated `(classes, (forget, forget_ids), (unseen, unseen_ids))`; `classes`: the forget classes."""
    forget = probabilities(predictions, "predictions")
    unseen = probabilities(unseen_predictions, "unseen_predictions")
    width = forget.shape[1]
    if unseen.shape[1] != width:
        raise ValueError(
            f"`predictions` has {width} classes per row but `unseen_predictions` has {unseen.shape[1]}: "
            "both must come from models with the same label set."
        )
    forget_ids = class_ids(references, "references", len(forget), width)
    unseen_ids = class_ids(unseen_references, "unseen_references", len(unseen), width)
    classes = np.unique(forget_ids)
    lacking = classes[~np.isin(classes, unseen_ids)]
    if lacking.size:
        raise ValueError(
            f"forget class {lacking[0]} has no unseen sample, so RF-JSD is undefined for it: add unseen "
            "samples of every class that occurs in the forget labels."
        )
    return classes, (forget, forget_ids), (unseen, unseen_ids)


def _normalised(x, axes=-1):
    return x / x.sum(axis=axes, keepdims=True)


def _class_distributions(rows, ids, classes):
    """Per-class mean of `rows` over the samples of each class in `classes`, renormalised to sum to 1."""
    keep = np.isin(ids, classes)
    order = np.argsort(ids[keep], kind="stable")
    starts = np.searchsorted(ids[keep][order], classes)
    return _normalised(np.add.reduceat(rows[keep][order], starts, axis=0))  # the mean's 1/n cancels out


def _x_log_x(x):
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def jsd_rows(p, q):
    """Textbook Jensen-Shannon divergence along the last axis, in nats: H(M) - (H(P) + H(Q)) / 2."""
    p, q = _normalised(p), _normalised(q)
    return (_x_log_x(p) + _x_log_x(q) - 2.0 * _x_log_x((p + q) / 2.0)).sum(axis=-1) / 2.0


def reference_form(p, q):
    """The paper's form of each trailing (K x C) matrix pair: clamped, each matrix scaled to total 1, then
    the mean over the K rows of ½ [KL(M‖P) + KL(M‖Q)] with M = (P + Q) / 2."""
    p, q = (_normalised(np.clip(x, CLAMP, 1.0), axes=(-2, -1)) for x in (p, q))
    m = (p + q) / 2.0
    log_ratios = 2.0 * np.log(m) - np.log(p) - np.log(q)
    return (m * log_ratios).sum(axis=(-2, -1)) / (2.0 * p.shape[-2])


def _value(p, q, variant):
    return jsd_rows(p, q).mean(axis=-1) if variant == "jsd" else reference_form(p, q)


def divergence(p, q, variant="jsd"):
    """Mean row-wise JSD (`jsd`) or the paper's matrix form (`reference`) of two stacks of probability rows."""
    _check_variant(variant)
    p, q = probabilities(p, "p"), probabilities(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"`p` and `q` must have the same shape, got {p.shape} and {q.shape}.")
    return float(_value(p, q, variant))


def class_means(predictions, references, unseen_predictions, unseen_references):
    """`(classes, P, Q)`: the forget classes, the unlearned model's mean forget row of each (P) and the
    original model's mean unseen row of each (Q), renormalised."""
    classes, forget, unseen = _inputs(predictions, references, unseen_predictions, unseen_references)
    return classes, _class_distributions(*forget, classes), _class_distributions(*unseen, classes)


def _bootstrap(classes, forget, unseen, variant, n_bootstrap, confidence, seed):
    """Stratified percentile bootstrap. The draws go class by class, forget rows then unseen rows, in the
    same order on every call, so one seed gives one interval."""
    rng = np.random.default_rng(seed)
    groups = [rows[ids == c] for c in classes for rows, ids in (forget, unseen)]
    means = []
    for group in groups:
        n = len(group)
        picks = rng.integers(0, n, size=(n_bootstrap, n))
        flat = (picks + n * np.arange(n_bootstrap)[:, None]).ravel()
        counts = np.bincount(flat, minlength=n_bootstrap * n).reshape(n_bootstrap, n)
        means.append(counts @ group / n)  # row b: the mean of resample b
    stacked = _normalised(np.stack(means, axis=1))  # (n_bootstrap, 2K, C), forget and unseen interleaved
    values = _value(stacked[:, 0::2], stacked[:, 1::2], variant)
    low, high = np.percentile(values, [50.0 * (1.0 - confidence), 50.0 * (1.0 + confidence)])
    return float(low), float(high)


def results(
    predictions,
    references,
    unseen_predictions,
    unseen_references,
    variant="jsd",
    per_class=False,
    n_bootstrap=0,
    confidence=0.95,
    seed=0,
):
    """The metric's result dict: `rf_jsd`, with `per_class` and `rf_jsd_low`/`rf_jsd_high` when asked.

    The inputs are checked once; `n_bootstrap` and `confidence` only when `n_bootstrap` is set.
    """
    _check_variant(variant)
    classes, forget, unseen = _inputs(predictions, references, unseen_predictions, unseen_references)
    p = _class_distributions(*forget, classes)
    q = _class_distributions(*unseen, classes)
    out = {"rf_jsd": float(_value(p, q, variant))}
    if per_class:
        out["per_class"] = dict(zip(classes.tolist(), jsd_rows(p, q).tolist(), strict=True))
    if n_bootstrap:
        _check_interval(n_bootstrap, confidence)
        interval = _bootstrap(classes, forget, unseen, variant, n_bootstrap, confidence, seed)
        out["rf_jsd_low"], out["rf_jsd_high"] = interval
    return out


def rf_jsd(predictions, references, unseen_predictions, unseen_references, variant="jsd"):
    """RF-JSD of the unlearned model's forget rows against the original model's unseen rows."""
    return results(predictions, references, unseen_predictions, unseen_references, variant)["rf_jsd"]


def rf_jsd_per_class(predictions, references, unseen_predictions, unseen_references):
    """`{class_id: textbook JSD}` of each forget class; for `jsd`, `rf_jsd` is their mean."""
    inputs = (predictions, references, unseen_predictions, unseen_references)
    return results(*inputs, per_class=True)["per_class"]


def rf_jsd_interval(
    predictions,
    references,
    unseen_predictions,
    unseen_references,
    variant="jsd",
    n_bootstrap=1000,
    confidence=0.95,
    seed=0,
):
    """Seeded, class-stratified percentile bootstrap interval of `rf_jsd`: `(low, high)`.

    >>> low, high = rf_jsd_interval([[0.7, 0.3], [0.6, 0.4]], [0, 0], [[0.5, 0.5], [0.9, 0.1]], [0, 0])
    >>> bool(low <= rf_jsd([[0.7, 0.3], [0.6, 0.4]], [0, 0], [[0.5, 0.5], [0.9, 0.1]], [0, 0]) <= high)
    True
    """
    _check_variant(variant)
    _check_interval(n_bootstrap, confidence)
    inputs = (predictions, references, unseen_predictions, unseen_references)
    out = results(*inputs, variant, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    return out["rf_jsd_low"], out["rf_jsd_high"]
