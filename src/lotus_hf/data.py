"""Data for unlearning: load an image-classification data set, turn a forget request into
forget / retain / unseen / test splits, and preprocess images once with the model's image processor.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

FASHION_MNIST_IDS = ("fashion_mnist", "fashion-mnist", "zalando-datasets/fashion_mnist")
FASHION_MNIST_HUB_ID = "zalando-datasets/fashion_mnist"
FASHION_MNIST_DIR = Path(os.environ.get("LOTUS_HF_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
PAPER_SEEDS = (3407, 13, 12)
_IMAGE_COLUMNS = ("image", "img", "pixel_values", "picture", "photo")
_LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "target")


class DataError(ValueError):
    """A data set or forget request the user must fix; the message says how."""


# --------------------------------------------------------------------------------------------- loading
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist_from_files(directory: Path):
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Array2D((28, 28), "uint8"),
            "label": datasets.ClassLabel(names=list(FASHION_MNIST_LABELS)),
        }
    )
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(directory / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(directory / f"{prefix}-labels-idx1-ubyte.gz")
        # Arrays, not PNG-encoded `Image` features: encoding 70k images costs ~9 s here, and the image
        # processors take uint8 arrays as readily as PIL images.
        splits[split] = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    return datasets.DatasetDict(splits)


def _find_column(
    names: list[str], requested: str | None, candidates: tuple[str, ...], what: str, flag: str
) -> str:
    if requested is not None:
        if requested not in names:
            raise DataError(f"`{flag}` is {requested!r}, but the data set has only the columns {names}.")
        return requested
    for candidate in candidates:
        if candidate in names:
            return candidate
    raise DataError(
        f"the data set has no {what} column among {names}: name it with `{flag}` "
        f"(`--{flag.replace('_', '-')}` on the command line)"
        + (", or put each class's images in a sub-folder named after the class." if what == "label" else ".")
    )


def load_image_dataset(
    name_or_path: str,
    *,
    revision: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
):
    """Load an image-classification data set as a `datasets.DatasetDict` with columns `image` and `label`.

    `name_or_path` is `fashion_mnist` (read from the Debian package `dataset-fashion-mnist` when installed,
    else from the Hub), a local image folder (`root/<class>/<image>`), or a Hub data set id. The label
    column must be a `ClassLabel`, whose names become the class names.

    Example:
        >>> data = load_image_dataset("fashion_mnist")  # doctest: +SKIP
        >>> data["train"].features["label"].names[:2]  # doctest: +SKIP
        ['T-shirt/top', 'Trouser']
    """
    import datasets

    if revision is None and "@" in name_or_path and not Path(name_or_path).exists():
        name_or_path, revision = name_or_path.rsplit("@", 1)  # ORG/NAME@REVISION, as for models
    if name_or_path in FASHION_MNIST_IDS and (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        return _fashion_mnist_from_files(FASHION_MNIST_DIR)
    hub_id = FASHION_MNIST_HUB_ID if name_or_path in FASHION_MNIST_IDS else name_or_path
    try:
        if Path(hub_id).is_dir():
            # `datasets` infers the builder from the files: imagefolder for images, csv/parquet/json too.
            dataset = datasets.load_dataset(hub_id)
        else:
            dataset = datasets.load_dataset(hub_id, revision=revision)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as error:
        if "corresponds to no data" in str(error):  # datasets' words for a split without rows
            raise DataError(
                f"`dataset` {name_or_path!r} has a split with no data ({str(error).splitlines()[0][:200]}): give "
                "every split images (train and test), or pass another data set."
            ) from None
        hint = (
            " (Fashion-MNIST: `apt-get install dataset-fashion-mnist` makes it available offline)"
            if name_or_path in FASHION_MNIST_IDS
            else ""
        )
        raise DataError(
            f"`dataset` {name_or_path!r} could not be loaded{hint}: pass a local image folder or a Hub data set "
            f"id that exists. ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    if not isinstance(dataset, datasets.DatasetDict):
        dataset = datasets.DatasetDict({"train": dataset})
    first = next(iter(dataset.values()))
    image = _find_column(first.column_names, image_column, _IMAGE_COLUMNS, "image", "image_column")
    label = _find_column(first.column_names, label_column, _LABEL_COLUMNS, "label", "label_column")
    if not isinstance(first.features[label], datasets.ClassLabel):
        raise DataError(
            f"the label column {label!r} is {first.features[label]}, not a `ClassLabel`: cast it with "
            "`dataset.class_encode_column(...)` or name another column with `label_column`."
        )
    dataset = dataset.select_columns([image, label])
    if image != "image":
        dataset = dataset.rename_column(image, "image")
    if label != "label":
        dataset = dataset.rename_column(label, "label")
    return dataset


def class_names_of(dataset) -> list[str]:
    """Class names of a data set loaded by `load_image_dataset`."""
    split = next(iter(dataset.values())) if hasattr(dataset, "values") else dataset
    return list(split.features["label"].names)


# ------------------------------------------------------------------------------------- forget requests
FORGET_KINDS = ("indices", "classes", "fraction", "first_percent")


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
            raise DataError(
                f"a forget request's kind must be one of {FORGET_KINDS}, got {values.get('kind')!r}."
            )
        return cls(values["kind"], tuple(values.get("value", ())), int(values.get("seed", 0)))

    def flags(self) -> list[str]:
        """The `lotus-hf` flags that make this request (a fraction's seed is the run's `--seed`).

        >>> ForgetRequest.classes(["Bag", "Coat"]).flags()
        ['--forget-classes', 'Bag,Coat']
        """
        flag = {"classes": "--forget-classes", "fraction": "--forget-fraction", "indices": "--forget-indices",
                "first_percent": "--forget-first-percent"}[self.kind]  # fmt: skip
        return [flag, ",".join(str(v) for v in self.value)]

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
    raise DataError(
        f"`forget_classes` names {value!r}, which the data set lacks: its classes are {class_names}."
    )


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


# --------------------------------------------------------------------------------- tensors and batches
class PixelDataset(torch.utils.data.Dataset):
    """Preprocessed images held as one tensor, so no image is decoded or transformed twice.

    Items are dicts with `pixel_values` and `labels`, the batch contract of the trainer and evaluation.
    """

    def __init__(self, pixel_values: torch.Tensor, labels: torch.Tensor, converted: str | None = None):
        if len(pixel_values) != len(labels):
            raise ValueError(f"`pixel_values` has {len(pixel_values)} rows but `labels` has {len(labels)}.")
        self.pixel_values = pixel_values
        self.labels = labels.long()
        self.converted = converted  # what `preprocess` did to fit the images to the processor, if anything

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}

    def select(self, indices) -> PixelDataset:
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return PixelDataset(self.pixel_values[index], self.labels[index], self.converted)


def processor_channels(image_processor) -> int | None:
    """How many colour channels `image_processor` normalises (1 or 3), read off its mean; None if it does not say."""
    mean = getattr(image_processor, "image_mean", None)
    if mean is None:  # transformers' wrapper of timm models keeps timm's data config
        mean = (getattr(image_processor, "data_config", None) or {}).get("mean")
    if isinstance(mean, (list, tuple)) and len(mean) in (1, 3):
        return len(mean)
    return None


_MODES = {1: "L", 3: "RGB"}
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit, 32-bit and float grey images


def _pil_to(image, mode: str):
    """A PIL image in `mode` ("L" or "RGB"): 16-bit and float grey images rescaled to 8 bits first (PIL clips
    them), transparency composited onto white (as transformers' `convert_to_rgb` does)."""
    from PIL import Image

    if image.mode in _DEEP_MODES:
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        top = (
            65535.0
            if image.mode.startswith("I;16") or peak > 255
            else 1.0
            if image.mode == "F" and peak <= 1
            else 255.0
        )
        image = Image.fromarray(np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8), "L")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(mode)


def _to_channels(images: list, channels: int | None) -> tuple[list, set[str]]:
    """Images converted to `channels` colour channels where they have another number (grey images for an RGB
    model, say), and the modes they came in, for the report. PIL images of any mode, and uint8 arrays (H, W, C)
    or channel-first (C, H, W)."""
    from PIL import Image

    if channels is None:
        return images, set()
    mode, converted, found = _MODES[channels], [], set()
    for image in images:
        if isinstance(image, np.ndarray):
            if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
                image = np.moveaxis(image, 0, -1)  # channel-first -> channel-last
            if image.shape[-1] != channels:
                found.add({1: "L", 3: "RGB", 4: "RGBA"}.get(image.shape[-1], f"{image.shape[-1]}-channel"))
                if image.shape[-1] == 1:  # grey -> RGB: the same value in each channel
                    image = np.repeat(image, channels, axis=-1)
                elif image.shape[-1] in (3, 4):
                    image = np.asarray(_pil_to(Image.fromarray(image), mode))
                    image = image[..., None] if image.ndim == 2 else image
        elif image.mode != mode:
            found.add(image.mode)
            image = _pil_to(image, mode)
        converted.append(image)
    return converted, found


def preprocess(dataset, image_processor, batch_size: int = 2048) -> PixelDataset:
    """Run `image_processor` over a `datasets.Dataset` (columns `image`, `label`) once, in batches.

    Images whose number of colour channels differs from the processor's (grey images for a model of RGB images,
    or the other way round) are converted to it first; the result's `converted` then says so."""
    import datasets
    from PIL import UnidentifiedImageError

    if len(dataset) == 0:
        raise DataError(
            "a split of the data set is empty: pass a data set with images in its train and test splits."
        )
    is_array = not isinstance(dataset.features["image"], datasets.Image)
    source = dataset.with_format("numpy", columns=["image"]) if is_array else dataset
    chunks, modes, channels = [], set(), processor_channels(image_processor)
    for start in range(0, len(dataset), batch_size):
        try:
            images = source[start : start + batch_size]["image"]
        except (UnidentifiedImageError, OSError, SyntaxError) as error:  # PIL's errors for unreadable files
            raise DataError(
                _unreadable(dataset, range(start, min(start + batch_size, len(dataset))), error)
            ) from None
        if is_array:  # (B, H, W) or (B, H, W, C) uint8: give grey images an explicit channel axis
            images = images[..., None] if images.ndim == 3 else images
            images = list(images.astype(np.uint8, copy=False))
        images, found = _to_channels(list(images), channels)
        modes |= found
        chunks.append(image_processor(images, return_tensors="pt")["pixel_values"])
    labels = torch.as_tensor(np.asarray(dataset["label"]), dtype=torch.long)
    converted = None
    if modes:
        converted = (f"images of mode {', '.join(sorted(modes))} were converted to {_MODES[channels]}, the "
                     f"{channels} channel{'s' if channels > 1 else ''} the model's image processor takes")  # fmt: skip
    return PixelDataset(torch.cat(chunks), labels, converted)


def _unreadable(dataset, rows: range, error: Exception) -> str:
    """Which image of `rows` cannot be read, and what to do: the file's name when the data set has one."""
    import datasets
    from PIL import Image

    raw = dataset.cast_column("image", datasets.Image(decode=False))
    for row in rows:
        cell = raw[row]["image"]
        try:
            with Image.open(
                cell["path"] if cell.get("bytes") is None else io.BytesIO(cell["bytes"])
            ) as image:
                image.load()
        except Exception as reason:  # noqa: BLE001  (PIL raises many kinds; each names the broken file here)
            where = cell.get("path") or f"row {row}"
            return (
                f"the image {where!r} cannot be read ({type(reason).__name__}: {reason}): remove it from the "
                "data set or replace it with a valid image."
            )
    return f"an image in rows {rows.start}-{rows.stop - 1} cannot be read ({type(error).__name__}: {error})."


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
    class (-1 on retain items) once `forget_targets` is (class mode). Trainer's sampler shuffles it.

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
        source = (
            self.forget[index]
            if in_forget
            else self.retain[int(self.retain_indices[index - len(self.forget)])]
        )
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


@dataclass
class UnlearningData:
    """The four splits of an unlearning run, preprocessed, plus what identifies the forget request."""

    forget: PixelDataset
    retain: PixelDataset
    unseen: PixelDataset
    test: PixelDataset
    class_names: list[str]
    forget_indices: np.ndarray
    fingerprint: dict = field(default_factory=dict)
    # what was done to the data to fit the model (grey images made RGB, say), for the report
    notes: list[str] = field(default_factory=list)


def prepare_unlearning_data(
    dataset,
    request: ForgetRequest,
    image_processor,
    *,
    seed: int = PAPER_SEEDS[0],
    train_split: str = "train",
    test_split: str = "test",
) -> UnlearningData:
    """Forget request -> forget / retain (training split) and unseen / test (50/50 of the test split).

    Example:
        >>> data = prepare_unlearning_data(load_image_dataset("fashion_mnist"),
        ...                                ForgetRequest.first_percent(10), processor)  # doctest: +SKIP
        >>> len(data.forget), len(data.retain), len(data.unseen), len(data.test)  # doctest: +SKIP
        (6000, 54000, 5000, 5000)
    """
    for split in (train_split, test_split):
        if split not in dataset:
            raise DataError(
                f"the data set has no {split!r} split (it has {list(dataset)}): name the splits with "
                "`train_split` / `test_split`."
            )
    train = preprocess(dataset[train_split], image_processor)
    held_out = preprocess(dataset[test_split], image_processor)
    return split_unlearning_data(train, held_out, class_names_of(dataset), request, seed=seed)


def split_unlearning_data(
    train: PixelDataset, held_out: PixelDataset, class_names: list[str], request: ForgetRequest, *, seed: int
) -> UnlearningData:
    """`prepare_unlearning_data` on splits already preprocessed (reuse them across several requests)."""
    train_labels = train.labels.numpy()
    forget_indices = request.resolve(train_labels, class_names)
    keep = np.ones(len(train), dtype=bool)
    keep[forget_indices] = False
    unseen_indices, test_indices = stratified_halves(held_out.labels.numpy(), seed)
    return UnlearningData(
        forget=train.select(forget_indices),
        retain=train.select(np.flatnonzero(keep)),
        unseen=held_out.select(unseen_indices),
        test=held_out.select(test_indices),
        class_names=class_names,
        forget_indices=forget_indices,
        fingerprint=forget_fingerprint(request, forget_indices, train_labels, class_names),
        notes=sorted({f"The data set's {x}." for x in (train.converted, held_out.converted) if x}),
    )


def verification_splits(
    dataset,
    request: ForgetRequest,
    image_processor,
    *,
    seed: int = PAPER_SEEDS[0],
    train_split: str = "train",
    test_split: str = "test",
) -> tuple[PixelDataset, PixelDataset, dict]:
    """What `lotus-hf verify` reads: the forget set (only those rows of the training split are preprocessed), the
    held-out half of the test split that an unlearning run with this `seed` never calibrated on (its `test`,
    not its `unseen`), and the request's fingerprint."""
    for split in (train_split, test_split):
        if split not in dataset:
            raise DataError(f"the data set has no {split!r} split (it has {list(dataset)}).")
    class_names = class_names_of(dataset)
    labels = np.asarray(dataset[train_split]["label"])
    indices = request.resolve(labels, class_names)
    _, test_indices = stratified_halves(np.asarray(dataset[test_split]["label"]), seed)
    forget = preprocess(dataset[train_split].select(indices), image_processor)
    heldout = preprocess(dataset[test_split].select(test_indices), image_processor)
    return forget, heldout, forget_fingerprint(request, indices, labels, class_names)
