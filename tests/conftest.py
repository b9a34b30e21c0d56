"""Shared fixtures: real data (scikit-learn's 8x8 digits) and tiny ResNet / ViT classifiers."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Offline and quiet before transformers / datasets are imported anywhere.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="lotus-hf-test-home-")  # evaluate.load writes here
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)  # and it goes with the run
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("HF_TOKEN", None)


import pytest  # noqa: E402
from tiny import DIGIT_NAMES, digits_dataset, save_tiny, tiny_model, tiny_processor  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _deterministic_kernels(request):
    """Tests marked `deterministic` compare two training runs' weights bit for bit (a resumed run against one never
    interrupted). On CPU one machine picks the same kernels for both; on a GPU (atomics, autotuned convolutions)
    that needs deterministic algorithms, which the marker turns on for the test. Outputs compared across reloads,
    processes or machines never rest on this: they compare with `torch.testing.assert_close`."""
    if request.node.get_closest_marker("deterministic") is None:
        yield
        return
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="session")
def digits():
    return digits_dataset()


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory):
    """scikit-learn digits written as PNGs into an imagefolder (train/ and test/ by class)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:400], digits.target[:400], strict=True)):
        split = "train" if i < 300 else "test"
        folder = root / split / DIGIT_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image * 16, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def digits_parquet(digits, tmp_path_factory):
    """The digits as a data set folder (`train` and `test` parquet files), as a user's data set on disk."""
    folder = tmp_path_factory.mktemp("digits-parquet")
    for split in ("train", "test"):
        digits[split].to_parquet(str(folder / f"{split}.parquet"))
    return folder


@pytest.fixture(scope="session")
def digits_data(digits):
    from lotus_hf.data import prepare_unlearning_data
    from lotus_hf.requests import ForgetRequest

    return prepare_unlearning_data(digits, ForgetRequest.first_percent(10), tiny_processor(), seed=3407)


@pytest.fixture(scope="session")
def trained_resnet(digits_data):
    """A tiny ResNet trained on the digits training split until it fits it (a real 'original')."""
    import copy

    from torch.utils.data import ConcatDataset

    from lotus_hf.recipe import Recipe

    model = tiny_model("resnet")
    train = ConcatDataset([digits_data.forget, digits_data.retain])
    recipe = Recipe(model_config="resnet", epochs=15, learning_rate=1e-2, batch_size=64, seed=0)
    with tempfile.TemporaryDirectory() as work:
        model, _ = recipe.train(model, train, work)
    return copy.deepcopy(model).eval()


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
        stop_rule="paper",  # the paper's per-epoch probe: tests of the bound rule ask for it
    )
    defaults.update(overrides)
    return UnlearningConfig(**defaults)
