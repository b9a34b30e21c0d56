"""End-to-end runs the CLI (and the Space) call: train an original or retrained classifier, and unlearn.

Each function composes the library's parts (data, trainer, evaluation, hub) in the order a user would.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np
import torch
from transformers import AutoModelForImageClassification, Trainer, TrainingArguments

from .baselines import BaselineConfig, BaselineTrainer
from .config import UnlearningConfig
from .data import ForgetRequest, PixelDataset, UnlearningData, collate, forget_fingerprint, preprocess
from .evaluation import UnlearningReport, accuracy, evaluate_unlearning, predict_logits
from .hub import atomic_output_dir, save_pretrained_bundle
from .trainer import UnlearningTrainer, render_model_card, to_channels_last

RECIPE_FILE = "training_recipe.json"
_ORIGINAL_TEMPLATE = Path(__file__).parent / "templates" / "original_card.md"
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
    raise ValueError(
        f"`model_config` must be 'resnet-small', 'vit-small' or a config.json path, got {preset!r}."
    )


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


def grey_image_processor(
    image_size: int = 28, mean: float = FASHION_MNIST_MEAN, std: float = FASHION_MNIST_STD
):
    """The image processor of the bundled models: resize to `image_size`, scale to [0, 1], normalise (1 channel)."""
    return _vit_processor(image_size, [mean], [std])


def image_processor_for(split, image_size: int | None = None, sample: int = 1000, seed: int = 0):
    """An image processor fitted to a data set split (column `image`): grey or RGB after the images, resized
    to `image_size` (default: the first image's height), normalised with the per-channel mean and std of
    a seeded sample of `sample` images. Fashion-MNIST gives the bundled models' processor."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(split), size=min(sample, len(split)), replace=False)
    pixels = [
        np.asarray(_grey_or_rgb(split[int(i)]["image"]), dtype=np.float64) / 255.0 for i in sorted(rows)
    ]
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
@dataclass
class Recipe:
    """How an original (and its retrained gold standard) is trained with the ordinary Trainer."""

    model_config: str = "resnet-small"
    epochs: int = 30
    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 128
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    seed: int = 3407

    @classmethod
    def from_dir(cls, directory: str | Path) -> Recipe:
        path = Path(directory) / RECIPE_FILE
        if not path.is_file():
            raise ValueError(
                f"`like` {str(directory)!r} has no {RECIPE_FILE}: pass a model trained by `lotus-hf train`."
            )
        return cls(**json.loads(path.read_text())["recipe"])


def train_classifier(
    model,
    train: PixelDataset,
    recipe: Recipe,
    work_dir: str | Path,
    eval_data: PixelDataset | None = None,
) -> tuple[torch.nn.Module, float]:
    """Train `model` on `train` with cross-entropy through `transformers.Trainer`; returns (model, seconds)."""
    args = TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=recipe.epochs,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=512,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_steps=recipe.warmup_ratio,  # transformers 5 reads a value below 1 as a ratio
        seed=recipe.seed,
        save_strategy="no",
        eval_strategy="epoch" if eval_data is not None else "no",
        logging_strategy="epoch",
        report_to="none",
        remove_unused_columns=False,
        dataloader_drop_last=False,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning without an accelerator only warns
    )
    trainer = Trainer(
        model=to_channels_last(model),
        args=args,
        train_dataset=train,
        eval_dataset=eval_data,
        data_collator=collate,
        compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())},
    )
    start = time.perf_counter()
    trainer.train()
    return trainer.model.eval(), time.perf_counter() - start


def fit_head(
    model, dataset, image_processor, epochs: int = 3, seed: int = 3407, learning_rate: float = 1e-3
) -> float:
    """Fine-tune `model` (with a new head for the data set's classes) on `dataset["train"]` with the ordinary
    Trainer, in place; it then serves as the original to unlearn from. Returns the seconds it took."""
    import tempfile

    train = preprocess(dataset["train"], image_processor)
    recipe = Recipe(model_config="fit-head", epochs=epochs, learning_rate=learning_rate, seed=seed)
    with tempfile.TemporaryDirectory(prefix="lotus-hf-fit-head-") as work:
        _, seconds = train_classifier(model, train, recipe, work)
    return seconds


def train_original(
    dataset,
    image_processor,
    recipe: Recipe,
    output_dir: str | Path,
    *,
    request: ForgetRequest | None = None,
    dataset_name: str = "fashion_mnist",
) -> dict:
    """Train a classifier on `dataset["train"]` (or on the retain set of `request`: the retrained gold
    standard) and save it with its image processor, recipe and card into `output_dir`, atomically.
    Returns the training summary (accuracies, seconds)."""
    from .data import class_names_of

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
        model = build_model(recipe.model_config, class_names, recipe.seed, image_processor)
        model, seconds = train_classifier(model, train, recipe, staging / "trainer", eval_data=None)
        summary = {
            "recipe": recipe.__dict__,
            "dataset": dataset_name,
            "trained_on": "retain set" if request is not None else "full training split",
            "forget": fingerprint,
            "train_samples": len(train),
            "train_accuracy": accuracy(predict_logits(model, train), train.labels),
            "test_accuracy": accuracy(predict_logits(model, test), test.labels),
            "parameters": sum(p.numel() for p in model.parameters()),
            "training_seconds": seconds,
        }
        shutil.rmtree(staging / "trainer", ignore_errors=True)
        card = Template(_ORIGINAL_TEMPLATE.read_text()).substitute(
            name=Path(output_dir).name,
            dataset=dataset_name,
            architecture=model.config.model_type,
            parameters=f"{summary['parameters']:,}",
            trained_on=summary["trained_on"],
            train_samples=summary["train_samples"],
            recipe="\n".join(f"| `{k}` | {v} |" for k, v in recipe.__dict__.items()),
            train_accuracy=f"{summary['train_accuracy']:.4f}",
            test_accuracy=f"{summary['test_accuracy']:.4f}",
            seconds=f"{seconds:.0f}",
            forget=json.dumps(fingerprint) if fingerprint else "none",
        )
        save_pretrained_bundle(staging, model, image_processor, card)
        (staging / RECIPE_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# -------------------------------------------------------------------------------------- unlearning
@dataclass
class UnlearningResult:
    """The trainer, the unlearned model (all its weights on every process) and its report."""

    trainer: UnlearningTrainer | BaselineTrainer
    report: UnlearningReport
    model: torch.nn.Module


def _whole_model(trainer, original: torch.nn.Module) -> torch.nn.Module:
    """`trainer.model`, or where each process holds only a shard of it (FSDP, DeepSpeed ZeRO-3) a copy of
    `original` with the trained weights gathered from every process. Every process must call it."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if trainer.is_fsdp_enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True))
    elif trainer.is_deepspeed_enabled and is_deepspeed_zero3_enabled():
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(trainer.model.parameters())):
            weights = {name: value.detach().clone() for name, value in trainer.model.state_dict().items()}
    else:
        return trainer.model
    whole = copy.deepcopy(original)
    whole.load_state_dict(weights)
    return whole.eval()


def retrain_config(recipe: Recipe, **fields) -> BaselineConfig:
    """The `BaselineConfig` of `method="retrain"` that trains as `recipe` did (the original's recipe)."""
    return BaselineConfig(
        method="retrain",
        num_train_epochs=recipe.epochs,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        per_device_train_batch_size=recipe.batch_size,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_steps=recipe.warmup_ratio,
        **fields,
    )


def unlearn(
    model,
    data: UnlearningData,
    config: UnlearningConfig | BaselineConfig,
    *,
    retrained=None,
    retrain_seconds: float | None = None,
    callbacks: list | None = None,
    original=None,
    probs_out: dict | None = None,
    logits_cache: dict | None = None,
) -> UnlearningResult:
    """Run LoTUS (an `UnlearningConfig`) or a baseline (a `BaselineConfig`) on `model` (modified in place,
    it becomes the unlearned model) and evaluate it.

    The original is kept as a frozen copy for the report (pass `original` to share one across runs, and
    `logits_cache` to evaluate it and `retrained` once; see `evaluate_unlearning`).
    `unlearning_seconds` covers the trainer's set-up (the retain subset), the passes it makes before
    training (unseen accuracy, teacher logits, importances), every probe and every update.
    """
    original = original if original is not None else copy.deepcopy(model).eval()
    start = time.perf_counter()
    if isinstance(config, BaselineConfig):
        trainer = BaselineTrainer(
            model, config, forget_dataset=data.forget, retain_dataset=data.retain, callbacks=callbacks
        )
    else:
        trainer = UnlearningTrainer(
            model=model,
            args=config,
            forget_dataset=data.forget,
            retain_dataset=data.retain,
            unseen_dataset=data.unseen,
            callbacks=callbacks,
        )
    trainer.train()
    seconds = time.perf_counter() - start
    unlearned = _whole_model(trainer, original)
    report = evaluate_unlearning(
        original,
        unlearned,
        data,
        retrained=retrained,
        unlearning_seconds=seconds,
        retrain_seconds=retrain_seconds,
        seed=config.seed,
        probs_out=probs_out,
        logits_cache=logits_cache,
    )
    report.training = {
        "method": config.method_hyperparameters()["method"],
        "hyperparameters": config.method_hyperparameters(),
        "history": trainer.history,
        "stopped_at_epoch": trainer.stopped_at_epoch,
    }
    trainer.forget_fingerprint, trainer.report = dict(data.fingerprint), report.to_dict()
    return UnlearningResult(trainer=trainer, report=report, model=unlearned)


def save_unlearned(
    result: UnlearningResult,
    image_processor,
    output_dir: str | Path,
    base_model: str,
    dataset: str | None = None,
) -> Path:
    """Write the unlearned model, image processor, model card and report.json into `output_dir` atomically.

    The model's config keeps the chain of unlearning steps (`lotus_hf_unlearning`): a model unlearned
    again keeps its earlier base models and forget fingerprints, and its card lists them all."""
    report = result.report.to_dict()
    trainer = result.trainer
    trainer.base_model, trainer.dataset_name = base_model, dataset
    lineage = trainer.unlearning_lineage()
    result.model.config.lotus_hf_unlearning = lineage
    card = render_model_card(
        model_name=Path(output_dir).name,
        base_model=base_model,
        config=result.trainer.args,
        history=result.trainer.history,
        forget=result.report.forget,
        report=report,
        lineage=lineage,
        dataset=dataset,
    )
    with atomic_output_dir(output_dir) as staging:
        save_pretrained_bundle(staging, result.model, image_processor, card, report)
    return Path(output_dir)
