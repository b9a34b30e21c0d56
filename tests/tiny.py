"""Tiny real models and data for tests, importable without side effects (subprocesses use them too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

DIGIT_NAMES = [f"digit-{i}" for i in range(10)]


def digits_dataset(n_train: int = 1297):
    """scikit-learn's digits as a DatasetDict (uint8 8x8 arrays, ClassLabel), train = first n_train rows."""
    import datasets
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    features = datasets.Features(
        {"image": datasets.Array2D((8, 8), "uint8"), "label": datasets.ClassLabel(names=DIGIT_NAMES)}
    )
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"image": images[:n_train], "label": digits.target[:n_train]}, features=features
            ),
            "test": datasets.Dataset.from_dict(
                {"image": images[n_train:], "label": digits.target[n_train:]}, features=features
            ),
        }
    )


def tiny_processor():
    from lotus_hf.research.training import grey_image_processor

    return grey_image_processor(image_size=8, mean=0.3, std=0.4)


def tiny_model(kind: str, seed: int = 0):
    from transformers import AutoModelForImageClassification, ResNetConfig, ViTConfig

    labels = {"id2label": dict(enumerate(DIGIT_NAMES)), "label2id": {n: i for i, n in enumerate(DIGIT_NAMES)}}
    if kind == "resnet":
        config = ResNetConfig(
            num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", **labels
        )
    else:
        config = ViTConfig(
            image_size=8,
            patch_size=4,
            num_channels=1,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            **labels,
        )
    torch.manual_seed(seed)
    return AutoModelForImageClassification.from_config(config)


def save_tiny(model, path: Path) -> Path:
    model.save_pretrained(path)
    tiny_processor().save_pretrained(path)
    return path


def digits_image_dataset(n_train: int = 300, n_test: int = 150):
    """The digits as a DatasetDict with a real `Image` feature (PNG-encoded), like image data sets on the Hub."""
    import datasets
    from PIL import Image

    arrays = digits_dataset(n_train)
    features = datasets.Features({"image": datasets.Image(), "label": arrays["train"].features["label"]})

    def to_images(split, n):
        rows = split.select(range(min(n, len(split))))
        return datasets.Dataset.from_dict(
            {
                "image": [Image.fromarray(np.asarray(x, dtype=np.uint8)) for x in rows["image"]],
                "label": rows["label"],
            },
            features=features,
        )

    return datasets.DatasetDict(
        {"train": to_images(arrays["train"], n_train), "test": to_images(arrays["test"], n_test)}
    )
