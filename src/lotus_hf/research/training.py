"""Training the models unlearning starts from and is measured against: small architectures for 28x28 data
(presets), image processors fitted to a data set, and the recipe that trains an original and, without a
forget set, its retrained gold standard (`lotus-hf train`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import ModelCard, ModelCardData
from transformers import AutoModelForImageClassification

from ..data import class_names_of
from ..errors import ArgumentError
from ..evaluation import accuracy, predict_logits
from ..images import preprocess
from ..names import dataset_id, hub_id
from ..provenance import RECIPE_FILE
from ..recipe import Recipe
from ..requests import ForgetRequest, forget_fingerprint
from ..saving import atomic_output_dir, write_model_folder

_ORIGINAL_TEMPLATE = Path(__file__).parent / "original_card.md"
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530


# ---------------------------------------------------------------------------------------- presets
def preset_config(preset: str, class_names: list[str], image_size: int = 28, num_channels: int = 1):
    """Small architectures for 28x28 data: `resnet-small` (~1.2M parameters) and `vit-small` (~0.5M)."""
    from transformers import ResNetConfig, ViTConfig

    labels = {"id2label": dict(enumerate(class_names)), "label2id": {n: i for i, n in enumerate(class_names)}}
    if preset == "resnet-small":
        return ResNetConfig(
            num_channels=num_channels,
            embedding_size=32,
            hidden_sizes=[32, 64, 128, 256],
            depths=[1, 1, 1, 1],
            layer_type="basic",
            downsample_in_first_stage=False,
            **labels,
        )
    if preset == "vit-small":
        return ViTConfig(
            image_size=image_size,
            patch_size=7,
            num_channels=num_channels,
            hidden_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=256,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            **labels,
        )
    raise ArgumentError(f"`model_config` must be 'resnet-small', 'vit-small' or a config.json path, got {preset!r}.")


def build_model(model_config: str, class_names: list[str], seed: int, image_processor=None):
    """A randomly initialised classifier from a preset name or a config.json path (seeded); a preset takes
    its input size and channel count from `image_processor` (default: 28x28 grey)."""
    from transformers import AutoConfig

    torch.manual_seed(seed)
    if Path(model_config).is_file():
        config = AutoConfig.from_pretrained(model_config)
        config.id2label = dict(enumerate(class_names))
        config.label2id = {n: i for i, n in enumerate(class_names)}
    else:
        size, channels = 28, 1
        if image_processor is not None:
            size, channels = image_processor.size["height"], len(image_processor.image_mean)
        config = preset_config(model_config, class_names, image_size=size, num_channels=channels)
    return AutoModelForImageClassification.from_config(config)


def grey_image_processor(image_size: int = 28, mean: float = FASHION_MNIST_MEAN, std: float = FASHION_MNIST_STD):
    """The image processor of the bundled models: resize to `image_size`, scale to [0, 1], normalise (1 channel)."""
    return _vit_processor(image_size, [mean], [std])


def image_processor_for(split, image_size: int | None = None, sample: int = 1000, seed: int = 0):
    """An image processor fitted to a data set split (column `image`): grey or RGB after the images, resized
    to `image_size` (default: the first image's height), normalised with the per-channel mean and std of
    a seeded sample of `sample` images. Fashion-MNIST gives the bundled models' processor."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(split), size=min(sample, len(split)), replace=False)
    pixels = [np.asarray(_grey_or_rgb(split[int(i)]["image"]), dtype=np.float64) / 255.0 for i in sorted(rows)]
    grey = all(p.ndim == 2 or p.shape[-1] == 1 for p in pixels)
    if image_size is None:
        image_size = int(pixels[0].shape[0])
    if grey:
        values = np.concatenate([p.reshape(-1) for p in pixels])[None, :]
    else:
        rgb = [p[..., :3] if p.ndim == 3 else np.repeat(p[..., None], 3, axis=-1) for p in pixels]
        values = np.concatenate([p.reshape(-1, 3) for p in rgb]).T
    mean, std = values.mean(axis=1), values.std(axis=1)
    std[std < 1e-3] = 1.0  # a constant channel: centre it, do not divide by ~0
    return _vit_processor(image_size, [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std])


def pretrained_processor(name: str, image_size: int | None = None):
    """The image processor of a fine-tuning from the pretrained classifier `name`: its normalisation (mean and std,
    and so its colour channels), at `image_size` pixels (default: its own input size), the whole image resized to
    it (no crop). For a timm model it is a `TimmWrapperImageProcessor`, whose settings live in the model's
    config.json (`pretrained_cfg`): `train_original` writes them there, so that the fine-tuned folder loads with
    the processor it was trained with."""
    from transformers import AutoConfig, AutoImageProcessor

    from ..loading import resolve_model

    path = resolve_model(name)
    processor = AutoImageProcessor.from_pretrained(path)
    config = getattr(processor, "data_config", None) or {}
    mean = list(getattr(processor, "image_mean", None) or config["mean"])
    std = list(getattr(processor, "image_std", None) or config["std"])
    size = int(image_size or (config.get("input_size") or [0, 224, 224])[-1])
    pretrained_cfg = getattr(AutoConfig.from_pretrained(path), "pretrained_cfg", None)
    if pretrained_cfg is not None:  # transformers 5.25 loads a timm model's processor from config.json only
        from transformers import TimmWrapperImageProcessor

        return TimmWrapperImageProcessor(pretrained_cfg={**pretrained_cfg, **fine_tuning_cfg(size, mean, std)})
    return _vit_processor(size, [float(m) for m in mean], [float(s) for s in std])


def fine_tuning_cfg(size: int, mean: list[float], std: list[float]) -> dict:
    """timm's data config of a fine-tuning at `size` pixels: the whole image resized (bilinear, no crop)."""
    return {
        "input_size": [3, size, size],
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
    }


def like_subset(name: str | None) -> int | None:
    """The training subset a `lotus-hf train` model was trained on (its training_recipe.json), or None."""
    from ..loading import model_file

    path = model_file(name, RECIPE_FILE) if name else None
    return json.loads(path.read_text()).get("train_subset") if path else None


def _grey_or_rgb(image):
    if hasattr(image, "convert"):  # PIL: palette, RGBA, CMYK... become RGB; 1-bit and 16-bit grey become L
        return image.convert("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB")
    return image


def _vit_processor(image_size: int, mean: list[float], std: list[float]):
    try:  # transformers >= 5 without torchvision: the PIL backend, named explicitly to skip a warning
        from transformers import ViTImageProcessorPil as Processor
    except ImportError:
        from transformers import ViTImageProcessor as Processor
    return Processor(size={"height": image_size, "width": image_size}, image_mean=mean, image_std=std)


# --------------------------------------------------------------------------------------- training
def train_original(
    dataset,
    image_processor,
    recipe: Recipe,
    output_dir: str | Path,
    *,
    request: ForgetRequest | None = None,
    dataset_name: str = "fashion_mnist",
    train_subset: int | None = None,
) -> dict:
    """Train a classifier on `dataset["train"]` (or on the retain set of `request`: the retrained gold
    standard) and save it with its image processor, recipe and card into `output_dir`, atomically.
    Returns the training summary (accuracies, seconds)."""
    class_names = class_names_of(dataset)
    train = preprocess(dataset["train"], image_processor)
    test = preprocess(dataset["test"], image_processor)
    fingerprint = None
    if request is not None:
        forget_indices = request.resolve(train.labels.numpy(), class_names)
        fingerprint = forget_fingerprint(request, forget_indices, train.labels.numpy(), class_names)
        keep = np.ones(len(train), dtype=bool)
        keep[forget_indices] = False
        train = train.select(np.flatnonzero(keep))
    with atomic_output_dir(output_dir) as staging:
        if recipe.pretrained:
            model = recipe.pretrained_model(class_names)
            data_config = getattr(image_processor, "data_config", None)
            if data_config is not None:  # a timm model: its processor is read back from config.json
                cfg = fine_tuning_cfg(int(data_config["input_size"][-1]), data_config["mean"], data_config["std"])
                model.config.pretrained_cfg = {**model.config.pretrained_cfg, **cfg}
        else:
            model = build_model(recipe.model_config, class_names, recipe.seed, image_processor)
        with tempfile.TemporaryDirectory(prefix="lotus-hf-train-") as work:
            model, seconds = recipe.train(model, train, work)
        summary = {
            "recipe": recipe.to_dict(),
            "dataset": dataset_name,
            "trained_on": "retain set" if request is not None else "full training split",
            "forget": fingerprint,
            "train_samples": len(train),
            "train_subset": train_subset,
            "train_accuracy": accuracy(predict_logits(model, train), train.labels),
            "test_accuracy": accuracy(predict_logits(model, test), test.labels),
            "parameters": sum(p.numel() for p in model.parameters()),
            "training_seconds": seconds,
        }
        write_model_folder(staging, model, image_processor, original_card(Path(output_dir).name, model, summary))
        (staging / RECIPE_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def original_card(name: str, model, summary: dict) -> ModelCard:
    """The card of a model trained by `lotus-hf train` (research/original_card.md)."""
    data = dataset_id(summary["dataset"])
    base = hub_id(summary["recipe"].get("pretrained"))
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        datasets=[hub_id(data)] if hub_id(data) else None,
        base_model=base,
        base_model_relation="finetune" if base else None,
        tags=["lotus-hf", "image-classification"],
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(_ORIGINAL_TEMPLATE),
        name=name,
        architecture=model.config.model_type,
        summary=summary,
        forget=json.dumps(summary["forget"]) if summary["forget"] else "none",
    )
