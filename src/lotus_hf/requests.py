"""What a forget request is (`ForgetRequest`), which training samples it selects, its fingerprint, and how the test
split is halved into the data an unlearning run calibrates on and the data it is judged on. Plain numpy: nothing
here reads images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .errors import DataError

PAPER_SEEDS = (3407, 13, 12)
DEFAULT_SEED = PAPER_SEEDS[0]  # the seed of every run, split and request unless one is given


FORGET_KINDS = ("indices", "classes", "fraction", "first_percent", "percent_range")


@dataclass(frozen=True)
class ForgetRequest:
    """What to forget from the training split.

    Build one with a constructor: `ForgetRequest.first_percent(10)` (the paper's protocol: the first 10% of
    each class's training indices), `ForgetRequest.classes(["Sandal"])` (names or ids),
    `ForgetRequest.fraction(0.1, seed=3407)` (seeded, stratified by class) or `ForgetRequest.indices([...])`.
    """

    kind: str
    value: tuple = ()
    seed: int = 0

    @classmethod
    def first_percent(cls, percent: float) -> ForgetRequest:
        return cls("first_percent", (float(percent),))

    @classmethod
    def percent_range(cls, start: float, stop: float) -> ForgetRequest:
        """Each class's training samples from `start`% to `stop`% of its indices (`first_percent(p)` is 0 to p):
        another slice of every class, for tuning on a forget set other than the one reported."""
        return cls("percent_range", (float(start), float(stop)))

    @classmethod
    def classes(cls, classes) -> ForgetRequest:
        values = [classes] if isinstance(classes, (str, int)) else list(classes)
        return cls("classes", tuple(values))

    @classmethod
    def fraction(cls, fraction: float, seed: int = 0) -> ForgetRequest:
        return cls("fraction", (float(fraction),), seed)

    @classmethod
    def indices(cls, indices) -> ForgetRequest:
        return cls("indices", tuple(int(i) for i in indices))

    def resolve(self, labels: np.ndarray, class_names: list[str]) -> np.ndarray:
        """Sorted training indices to forget; raises `DataError` for a request that cannot be met."""
        labels = np.asarray(labels)
        n = len(labels)
        if self.kind == "indices":
            indices = np.unique(np.asarray(self.value, dtype=np.int64))
            if indices.size and (indices.min() < 0 or indices.max() >= n):
                bad = int(indices.min() if indices.min() < 0 else indices.max())
                raise DataError(f"`forget_indices` holds {bad}, outside the training split's range [0, {n}).")
        elif self.kind == "classes":
            ids = [_class_id(value, class_names) for value in self.value]
            indices = np.flatnonzero(np.isin(labels, ids))
        elif self.kind in ("fraction", "first_percent"):
            share = self.value[0] if self.kind == "fraction" else self.value[0] / 100.0
            flag = "forget_fraction" if self.kind == "fraction" else "forget_first_percent"
            upper = 1 if self.kind == "fraction" else 100
            if not 0.0 < share < 1.0:
                raise DataError(f"`{flag}` must be in (0, {upper}), got {self.value[0]}.")
            rng = np.random.default_rng(self.seed)
            chosen = []
            for c in np.unique(labels):
                members = np.flatnonzero(labels == c)
                if self.kind == "fraction":
                    members = rng.permutation(members)
                chosen.append(members[: int(len(members) * share)])
            indices = np.sort(np.concatenate(chosen))
        elif self.kind == "percent_range":
            start, stop = self.value
            if not 0.0 <= start < stop <= 100.0:
                raise DataError(f"`forget_percent_range` must be A,B with 0 <= A < B <= 100, got {start},{stop}.")
            chosen = []
            for c in np.unique(labels):
                members = np.flatnonzero(labels == c)
                chosen.append(members[int(len(members) * start / 100) : int(len(members) * stop / 100)])
            indices = np.sort(np.concatenate(chosen))
        else:
            raise DataError(f"forget request kind must be one of {FORGET_KINDS}, got {self.kind!r}.")
        if indices.size == 0:
            raise DataError(f"the forget request {self.describe()} selects no training sample: ask for more.")
        if indices.size >= n:
            raise DataError(
                f"the forget request {self.describe()} covers the whole training split ({n} samples), leaving "
                "nothing to retain: forget a part of it (or train a new model)."
            )
        return indices

    def to_dict(self) -> dict:
        """The request as JSON values; `ForgetRequest.from_dict` reads it back."""
        return {"kind": self.kind, "value": list(self.value), "seed": self.seed}

    @classmethod
    def from_dict(cls, values: dict) -> ForgetRequest:
        if values.get("kind") not in FORGET_KINDS:
            raise DataError(f"a forget request's kind must be one of {FORGET_KINDS}, got {values.get('kind')!r}.")
        return cls(values["kind"], tuple(values.get("value", ())), int(values.get("seed", 0)))

    def flags(self) -> list[str]:
        """The `lotus-hf` flags that make this request (a fraction's seed is the run's `--seed`).

        >>> ForgetRequest.classes(["Bag", "Coat"]).flags()
        ['--forget-classes', 'Bag,Coat']
        """
        return [f"--forget-{self.kind.replace('_', '-')}", ",".join(str(v) for v in self.value)]

    def describe(self) -> str:
        if self.kind == "indices":
            return f"indices ({len(self.value)} given)"
        return f"{self.kind}={','.join(str(v) for v in self.value)}"


def _class_id(value, class_names: list[str]) -> int:
    if isinstance(value, str) and value in class_names:
        return class_names.index(value)
    lowered = [name.lower() for name in class_names]
    if isinstance(value, str) and value.lower() in lowered:
        return lowered.index(value.lower())
    if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.isdigit()):
        class_id = int(value)
        if 0 <= class_id < len(class_names):
            return class_id
    raise DataError(f"`forget_classes` names {value!r}, which the data set lacks: its classes are {class_names}.")


def forget_fingerprint(request: ForgetRequest, indices: np.ndarray, labels: np.ndarray, class_names) -> dict:
    """What was forgotten, without the samples: kind, size, per-class counts and a SHA-256 of the sorted ids."""
    counts = np.bincount(np.asarray(labels)[indices], minlength=len(class_names))
    digest = hashlib.sha256(",".join(str(int(i)) for i in np.sort(indices)).encode()).hexdigest()
    return {
        "kind": request.kind,
        "request": request.describe(),
        "size": int(indices.size),
        "per_class": {name: int(count) for name, count in zip(class_names, counts, strict=True) if count},
        "sha256": digest,
    }


def stratified_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices 50/50 per class (seeded): `(unseen, test)`, as the evaluation protocol splits the test set."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        half = len(members) // 2
        first.append(members[:half])
        second.append(members[half:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` indices with each class in its share of `labels` (seeded), sorted.

    >>> stratified_subset(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 4).tolist()
    [2, 3, 4, 5]
    """
    rng = np.random.default_rng(seed)
    chosen = []
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts / len(labels) * size).astype(int)
    quotas[np.argsort(-(counts / len(labels) * size - quotas))[: size - quotas.sum()]] += 1
    for label, quota in zip(classes, quotas, strict=True):
        members = np.flatnonzero(labels == label)
        chosen.append(np.sort(rng.choice(members, size=min(quota, len(members)), replace=False)))
    return np.sort(np.concatenate(chosen))
