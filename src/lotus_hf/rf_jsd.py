"""RF-JSD, the retrain-free forgetting metric of LoTUS, and the retrain-based JSD (pure numpy).

Used by the evaluation report and the Space; the `evaluate` metric under metrics/rf_jsd/ carries its own copy
of the math (it must install on the Hub alone), kept equal to this one by tests/test_metric.py. Two variants
(docs/metric.md):
- `jsd` (default): mean over forget classes of the textbook Jensen-Shannon divergence, in [0, ln 2].
- `reference`: the form behind the paper's tables (which print it multiplied by 1e4).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

VARIANTS = ("jsd", "reference")
_CLAMP = 1e-8
_SUM_TOLERANCE = 1e-3


def _as_probabilities(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(
            f"`{name}` must be rows of numbers of one width (one probability per class); its rows differ "
            "in length or hold something else."
        ) from None
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of probability rows (samples x classes), got shape {array.shape}."
        )
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: pass at least one probability row.")
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` holds NaN or infinite values: pass softmax outputs, not raw logits.")
    if (array < 0).any():
        raise ValueError(f"`{name}` holds negative values: pass softmax outputs, not raw logits.")
    sums = array.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _SUM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"`{name}` row {int(bad[0])} sums to {sums[bad[0]]:.6f}, not 1: every row must be a probability "
            "distribution (apply softmax to the logits)."
        )
    return array


def _as_labels(values, name: str, length: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1 or labels.shape[0] != length:
        raise ValueError(
            f"`{name}` must hold one label per probability row ({length}), got shape {labels.shape}."
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.mod(labels, 1) == 0):
            raise ValueError(f"`{name}` must hold integer class ids, got {labels.dtype} values.")
        labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"`{name}` holds class ids outside [0, {num_classes}): got {labels.min()}..{labels.max()}."
        )
    return labels.astype(np.int64)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise KL(p || q) in nats, with 0 * log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def _textbook_jsd_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)
    return 0.5 * _kl(p, m) + 0.5 * _kl(q, m)


def _reference_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """The paper's form: clamp, normalise each whole matrix, reverse KL to the mixture, over K rows."""
    p = np.clip(p, _CLAMP, 1.0)
    q = np.clip(q, _CLAMP, 1.0)
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)
    rows = p.shape[0]
    t_p = (m * (np.log(m) - np.log(p))).sum() / rows
    t_q = (m * (np.log(m) - np.log(q))).sum() / rows
    return float(0.5 * (t_p + t_q))


def divergence(p: np.ndarray, q: np.ndarray, variant: str = "jsd") -> float:
    """Divergence between two stacks of probability rows, in the given variant.

    `jsd` is the mean of the row-wise Jensen-Shannon divergences; `reference` is the paper's matrix form.

    >>> divergence([[1.0, 0.0]], [[0.0, 1.0]])
    0.6931471805599453
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}.")
    p = _as_probabilities(p, "p")
    q = _as_probabilities(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"`p` and `q` must have the same shape, got {p.shape} and {q.shape}.")
    if variant == "jsd":
        return float(_textbook_jsd_rows(p, q).mean())
    return _reference_divergence(p, q)


def class_means(
    forget_probs: Sequence,
    forget_labels: Sequence,
    unseen_probs: Sequence,
    unseen_labels: Sequence,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated per-class mean distributions: `(classes, P, Q)`.

    `P[k]` is the mean of the forget rows of class `classes[k]` (unlearned model) and `Q[k]` the mean of the
    unseen rows of the same class (original model), each renormalised to sum to 1.
    """
    forget = _as_probabilities(forget_probs, "forget_probs")
    unseen = _as_probabilities(unseen_probs, "unseen_probs")
    if forget.shape[1] != unseen.shape[1]:
        raise ValueError(
            f"`forget_probs` has {forget.shape[1]} classes per row but `unseen_probs` has {unseen.shape[1]}: "
            "both must come from models with the same label set."
        )
    num_classes = forget.shape[1]
    f_labels = _as_labels(forget_labels, "forget_labels", forget.shape[0], num_classes)
    u_labels = _as_labels(unseen_labels, "unseen_labels", unseen.shape[0], num_classes)
    classes = np.unique(f_labels)
    missing = np.setdiff1d(classes, np.unique(u_labels))
    if missing.size:
        raise ValueError(
            f"forget class {int(missing[0])} has no unseen sample, so RF-JSD is undefined for it: add unseen "
            "samples of every class that occurs in the forget labels."
        )
    p = np.stack([forget[f_labels == c].mean(axis=0) for c in classes])
    q = np.stack([unseen[u_labels == c].mean(axis=0) for c in classes])
    return classes, p / p.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)


def rf_jsd(
    forget_probs: Sequence,
    forget_labels: Sequence,
    unseen_probs: Sequence,
    unseen_labels: Sequence,
    variant: str = "jsd",
) -> float:
    """RF-JSD between the unlearned model on the forget set and the original model on unseen data.

    Args:
        forget_probs: softmax outputs of the unlearned model on the forget samples, shape (n_f, C).
        forget_labels: ground-truth class ids of the forget samples, shape (n_f,).
        unseen_probs: softmax outputs of the original model on unseen (test) samples, shape (n_u, C).
        unseen_labels: ground-truth class ids of the unseen samples, shape (n_u,).
        variant: `"jsd"` (textbook, in [0, ln 2]) or `"reference"` (the paper's tables divided by 1e4).

    Example:
        >>> round(rf_jsd([[0.1, 0.8, 0.1]], [1], [[0.2, 0.7, 0.1]], [1]), 6)
        0.010163
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}.")
    _, p, q = class_means(forget_probs, forget_labels, unseen_probs, unseen_labels)
    return divergence(p, q, variant)  # the divergence between the K class rows


def rf_jsd_per_class(
    forget_probs: Sequence,
    forget_labels: Sequence,
    unseen_probs: Sequence,
    unseen_labels: Sequence,
) -> dict[int, float]:
    """Textbook JSD of each forget class: `{class_id: JSD(P_c, Q_c)}`; `rf_jsd` (`jsd`) is their mean."""
    classes, p, q = class_means(forget_probs, forget_labels, unseen_probs, unseen_labels)
    return {int(c): float(v) for c, v in zip(classes, _textbook_jsd_rows(p, q), strict=True)}


def rf_jsd_interval(
    forget_probs: Sequence,
    forget_labels: Sequence,
    unseen_probs: Sequence,
    unseen_labels: Sequence,
    variant: str = "jsd",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Seeded percentile-bootstrap confidence interval of `rf_jsd`: `(low, high)`.

    Each resample draws, within every forget class, the forget rows and the unseen rows of that class with
    replacement (a stratified bootstrap: every class keeps its sample count, so none goes missing). Same
    `seed`, same interval.

    Example:
        >>> low, high = rf_jsd_interval([[0.7, 0.3], [0.6, 0.4]], [0, 0], [[0.5, 0.5], [0.9, 0.1]], [0, 0])
        >>> bool(low <= rf_jsd([[0.7, 0.3], [0.6, 0.4]], [0, 0], [[0.5, 0.5], [0.9, 0.1]], [0, 0]) <= high)
        True
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}.")
    if not (isinstance(n_resamples, int) and n_resamples >= 10):
        raise ValueError(f"`n_resamples` must be an integer >= 10, got {n_resamples!r}: 1000 is usual.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}: 0.95 is usual.")
    class_means(forget_probs, forget_labels, unseen_probs, unseen_labels)  # validates every input
    forget, unseen = np.asarray(forget_probs, np.float64), np.asarray(unseen_probs, np.float64)
    f_labels, u_labels = (
        np.asarray(forget_labels).astype(np.int64),
        np.asarray(unseen_labels).astype(np.int64),
    )
    rng = np.random.default_rng(seed)
    classes = np.unique(f_labels)
    p = np.empty((n_resamples, len(classes), forget.shape[1]))
    q = np.empty_like(p)
    for k, c in enumerate(classes):
        for rows, out in ((forget[f_labels == c], p), (unseen[u_labels == c], q)):
            draws = rng.integers(0, len(rows), size=(n_resamples, len(rows)))
            chunk = max(1, 2**22 // max(1, rows.size))  # bound memory: about 4M gathered values at a time
            for start in range(0, n_resamples, chunk):
                out[start : start + chunk, k] = rows[draws[start : start + chunk]].mean(axis=1)
    p /= p.sum(axis=-1, keepdims=True)
    q /= q.sum(axis=-1, keepdims=True)
    if variant == "jsd":
        values = _textbook_jsd_rows(p, q).mean(axis=1)
    else:
        values = np.array([_reference_divergence(p[b], q[b]) for b in range(n_resamples)])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
