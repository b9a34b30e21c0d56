"""The training stream of an unlearning run: the forget set and a seeded share of the retain set in one flat,
shuffleable data set (`UnlearningStream`), its batches (`collate`), and data sets read as streams held in memory."""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import ArgumentError


def is_streamed(dataset) -> bool:
    """True for data read as a stream (a `torch` `IterableDataset` or a `datasets.IterableDataset`)."""
    import datasets

    return isinstance(dataset, (torch.utils.data.IterableDataset, datasets.IterableDataset))


def reservoir_sample(items, size: int, seed: int) -> list:
    """A uniform sample of `size` items from an iterable read once, holding only `size` items (Algorithm R,
    seeded). Fewer items than `size` are all kept, in order.

    >>> reservoir_sample(range(5), 10, seed=0)
    [0, 1, 2, 3, 4]
    >>> len(reservoir_sample(range(1000), 3, seed=0))
    3
    """
    rng = np.random.default_rng(seed)
    reservoir: list = []
    for seen, item in enumerate(items):
        if seen < size:
            reservoir.append(item)
        else:
            slot = int(rng.integers(0, seen + 1))
            if slot < size:
                reservoir[slot] = item
    return reservoir


class ItemList(torch.utils.data.Dataset):
    """Items held in a list (the forget set or retain reservoir read from a stream)."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack a list of item dicts into a batch (keys: `pixel_values`, `labels`, optional `is_forget`...)."""
    return {key: torch.stack([torch.as_tensor(example[key]) for example in examples]) for key in examples[0]}


class UnlearningStream(torch.utils.data.Dataset):
    """The training stream of an unlearning run: forget items (`is_forget` 1), then the chosen retain items
    (`is_forget` 0), each with its cached teacher logits once `teacher_logits` is set, and a `forget_target`
    class (-1 on retain items) once `forget_targets` is (Belief Relabel). Trainer's sampler shuffles it.

    >>> from lotus_hf.images import PixelDataset
    >>> forget = PixelDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]))
    >>> retain = PixelDataset(torch.ones(3, 1, 2, 2), torch.tensor([0, 1, 1]))
    >>> stream = UnlearningStream(forget, retain, torch.tensor([2]))
    >>> len(stream), int(stream[2]["is_forget"]), int(stream[2]["labels"])
    (3, 0, 1)
    """

    def __init__(self, forget, retain, retain_indices: torch.Tensor):
        self.forget, self.retain, self.retain_indices = forget, retain, retain_indices
        self.teacher_logits: torch.Tensor | None = None
        self.forget_targets: torch.Tensor | None = None
        self._is_forget = (torch.tensor(0), torch.tensor(1))

    def __len__(self) -> int:
        return len(self.forget) + len(self.retain_indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        in_forget = index < len(self.forget)
        source = self.forget[index] if in_forget else self.retain[int(self.retain_indices[index - len(self.forget)])]
        item = {
            "pixel_values": source["pixel_values"],
            "labels": source["labels"],
            "is_forget": self._is_forget[in_forget],
        }
        if self.teacher_logits is not None:
            item["teacher_logits"] = self.teacher_logits[index]
        if self.forget_targets is not None:
            item["forget_target"] = self.forget_targets[index] if in_forget else torch.tensor(-1)
        return item


def seeded_subset(size: int, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of `floor(fraction * size)` items of `range(size)`, drawn once with `seed`: the retain
    subset S_r of LoTUS (and Bad Teacher's share of the retain set).

    >>> seeded_subset(10, 0.3, seed=0).tolist()
    [1, 4, 7]
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=generator)[: math.floor(fraction * size)].sort().values


def seeded_rows(dataset, size: int | None, seed: int):
    """`dataset`, or a seeded subset of `size` of its rows (in their order) when it holds more: what probes and
    in-run checks read when a set is large.

    >>> seeded_rows(list(range(10)), 3, seed=0).indices
    [1, 4, 7]
    """
    n = len(dataset)
    if size is None or size >= n:
        return dataset
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return torch.utils.data.Subset(dataset, chosen.tolist())


def in_memory(forget, retain, unseen, args) -> tuple:
    """The forget set, the retain set and the indices of its seeded share `args.retain_fraction` (S_r, drawn once
    per run), checked, with data sets read as streams held in memory: a forget set whole (it is small), a
    retain set as a seeded reservoir of `args.retain_samples` items. An unseen set stays a stream."""
    if is_streamed(forget):
        forget = ItemList(list(forget))
    for name, dataset in (("forget_dataset", forget), ("unseen_dataset", unseen)):
        if dataset is None or (not is_streamed(dataset) and len(dataset) == 0):
            raise ArgumentError(f"`{name}` must be a non-empty data set of `pixel_values`/`labels` items.")
    if retain is None:
        raise ArgumentError("`retain_dataset` must be given: the retain subset keeps the model's behaviour.")
    if is_streamed(retain):
        retain = ItemList(reservoir_sample(retain, _reservoir_size(retain, args), args.seed))
        return forget, retain, torch.arange(len(retain))
    return forget, retain, seeded_subset(len(retain), args.retain_fraction, args.seed)


def _reservoir_size(retain, args) -> int:
    if args.retain_samples is not None:
        return args.retain_samples
    try:
        return int(args.retain_fraction * len(retain))
    except TypeError:
        raise ArgumentError(
            "the streamed `retain_dataset` has no length: set `retain_samples` (how many retain samples to draw)."
        ) from None
