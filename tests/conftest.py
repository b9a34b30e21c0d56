"""Shared fixtures: real data (scikit-learn's 8x8 digits) and tiny ResNet / ViT classifiers."""

from __future__ import annotations

import os
import tempfile

# Offline and quiet before transformers / datasets are imported anywhere.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="lotus-hf-test-home-")  # evaluate.load writes here
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("HF_TOKEN", None)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

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
    from lotus_hf.pipeline import grey_image_processor

    return grey_image_processor(image_size=8, mean=0.3, std=0.4)


def tiny_model(kind: str, seed: int = 0):
    from transformers import AutoModelForImageClassification, ResNetConfig, ViTConfig

    labels = {"id2label": dict(enumerate(DIGIT_NAMES)), "label2id": {n: i for i, n in enumerate(DIGIT_NAMES)}}
    if kind == "resnet":
        config = ResNetConfig(
            num_channels=1,
            embedding_size=8,
            hidden_sizes=[8, 16],
            depths=[1, 1],
            layer_type="basic",
            **labels,
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


@pytest.fixture(scope="session")
def digits():
    return digits_dataset()


@pytest.fixture(scope="session")
def digits_data(digits):
    from lotus_hf.data import ForgetRequest, prepare_unlearning_data

    return prepare_unlearning_data(digits, ForgetRequest.first_percent(10), tiny_processor(), seed=3407)


@pytest.fixture(scope="session")
def trained_resnet(digits_data):
    """A tiny ResNet trained on the digits training split until it fits it (a real 'original')."""
    import copy

    from torch.utils.data import ConcatDataset

    from lotus_hf.pipeline import Recipe, train_classifier

    model = tiny_model("resnet")
    train = ConcatDataset([digits_data.forget, digits_data.retain])
    recipe = Recipe(model_config="resnet", epochs=15, learning_rate=1e-2, batch_size=64, seed=0)
    with tempfile.TemporaryDirectory() as work:
        model, _ = train_classifier(model, train, recipe, work)
    return copy.deepcopy(model).eval()


def save_tiny(model, path: Path) -> Path:
    model.save_pretrained(path)
    tiny_processor().save_pretrained(path)
    return path


def unlearning_config(tmp_path, **overrides):
    from lotus_hf import UnlearningConfig

    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=32,
        per_device_eval_batch_size=256,
        num_train_epochs=2,
        logging_steps=2,
        disable_tqdm=True,
        use_cpu=True,
        seed=3407,
    )
    defaults.update(overrides)
    return UnlearningConfig(**defaults)
