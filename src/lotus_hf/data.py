"""Data for unlearning: load an image-classification data set, and turn a forget request into the four splits of
a run (forget / retain from the training split; unseen / test, the halves of the test split), preprocessed once
with the model's image processor.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .images import PixelDataset, preprocess
from .names import FASHION_MNIST_HUB_ID, FASHION_MNIST_IDS, split_revision
from .requests import DEFAULT_SEED, ForgetRequest, forget_fingerprint, stratified_halves

FASHION_MNIST_DIR = Path(os.environ.get("LOTUS_HF_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


FASHION_MNIST_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


_IMAGE_COLUMNS = ("image", "img", "pixel_values", "picture", "photo")


_LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "target")


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


def _find_column(names: list[str], requested: str | None, candidates: tuple[str, ...], what: str, flag: str) -> str:
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

    if revision is None:
        name_or_path, revision = split_revision(name_or_path)  # ORG/NAME@REVISION, as for models
    if name_or_path in FASHION_MNIST_IDS and (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        return _fashion_mnist_from_files(FASHION_MNIST_DIR)
    hub_id = FASHION_MNIST_HUB_ID if name_or_path in FASHION_MNIST_IDS else name_or_path
    empty = _empty_split(Path(hub_id)) if Path(hub_id).is_dir() else None
    if empty is not None:
        raise DataError(
            f"`dataset` {name_or_path!r} has a split with no data ({empty}): give every split images (train and "
            "test), or pass another data set."
        )
    try:
        if Path(hub_id).is_dir():
            # `datasets` infers the builder from the files: imagefolder for images, csv/parquet/json too.
            dataset = datasets.load_dataset(hub_id)
        else:
            dataset = datasets.load_dataset(hub_id, revision=revision)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as error:
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


def _empty_split(folder: Path) -> str | None:
    """The part of a local data set folder that holds no rows: a parquet file of none, or a split's sub-folder
    without files; None when each has some."""
    import pyarrow.parquet as pq

    for file in sorted(folder.rglob("*.parquet")):
        if pq.ParquetFile(file).metadata.num_rows == 0:
            return f"{file.name} has no rows"
    for split in (d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")):
        if not any(f.is_file() for f in split.rglob("*")):
            return f"{split.name}/ holds no file"
    return None


def class_names_of(dataset) -> list[str]:
    """Class names of a data set loaded by `load_image_dataset`."""
    split = next(iter(dataset.values())) if hasattr(dataset, "values") else dataset
    return list(split.features["label"].names)


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
    # the seed the test split was halved with (unseen / test); `verify(data=...)` reads it
    seed: int | None = None


def prepare_unlearning_data(
    dataset,
    request: ForgetRequest,
    image_processor,
    *,
    seed: int = DEFAULT_SEED,
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
        seed=seed,
    )


def auditor_heldout(name_or_path: str, class_names: list[str], image_processor) -> tuple[PixelDataset, dict]:
    """An auditor's own held-out images (a Hub id or folder with the same classes, none of them ever given to the
    model's owner): all of them, preprocessed, and their fingerprint (`heldout_examples`)."""
    loaded, fingerprint = heldout_examples(name_or_path)
    if loaded.features["label"].names != list(class_names):
        raise DataError(
            f"`heldout` {name_or_path!r} has the classes {loaded.features['label'].names}, the data set "
            f"{list(class_names)}: held-out images must be of the same classes, in the same order."
        )
    return preprocess(loaded, image_processor), fingerprint


def heldout_examples(name_or_path: str):
    """Every split of a held-out set joined, and its fingerprint: name, size and the SHA-256 of its examples (each
    image's stored bytes and label, in order; not of a path), which a receipt records and a re-check asks for."""
    import datasets

    loaded = load_image_dataset(name_or_path)
    split = datasets.concatenate_datasets(list(loaded.values())) if len(loaded) > 1 else next(iter(loaded.values()))
    return split, {"name": name_or_path, "size": len(split), "sha256": examples_sha256(split)}


def examples_sha256(split) -> str:
    """SHA-256 of a data set's examples: each image's stored bytes (as encoded, or as an array) and its label."""
    import datasets

    digest = hashlib.sha256()
    if isinstance(split.features["image"], datasets.Image):
        split = split.cast_column("image", datasets.Image(decode=False))
    for row in split:
        image = row["image"]
        if isinstance(image, dict):  # encoded: its bytes, or the file they are stored in
            data = image.get("bytes") or Path(image["path"]).read_bytes()
        else:
            data = np.asarray(image).tobytes()
        digest.update(hashlib.sha256(data).digest() + int(row["label"]).to_bytes(8, "little"))
    return digest.hexdigest()


def verification_splits(
    dataset,
    request: ForgetRequest,
    image_processor,
    *,
    seed: int = DEFAULT_SEED,
    train_split: str = "train",
    test_split: str = "test",
) -> tuple[PixelDataset, PixelDataset, PixelDataset, dict]:
    """What `lotus-hf verify` reads: the forget set (only those rows of the training split are preprocessed), the
    held-out half of the test split that an unlearning run with this `seed` never calibrated on (its `test`,
    not its `unseen`), the other half (its `unseen`, which the `heldout_unseen_*` tests compare the first with), and
    the request's fingerprint."""
    for split in (train_split, test_split):
        if split not in dataset:
            raise DataError(f"the data set has no {split!r} split (it has {list(dataset)}).")
    class_names = class_names_of(dataset)
    labels = np.asarray(dataset[train_split]["label"])
    indices = request.resolve(labels, class_names)
    unseen_indices, test_indices = stratified_halves(np.asarray(dataset[test_split]["label"]), seed)
    forget = preprocess(dataset[train_split].select(indices), image_processor)
    heldout = preprocess(dataset[test_split].select(test_indices), image_processor)
    other = preprocess(dataset[test_split].select(unseen_indices), image_processor)
    return forget, heldout, other, forget_fingerprint(request, indices, labels, class_names)
