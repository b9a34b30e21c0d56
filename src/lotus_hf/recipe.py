"""How a classifier is trained with the ordinary `Trainer`: a `Recipe` (the one description of a training run,
for an original, its retrained gold standard, reference models and `--fit-head`), its `TrainingArguments`, the
cross-entropy every classifier here is trained with, and fitting a new head on a data set."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields

import torch
from transformers import Trainer, TrainingArguments

from .distributed import to_channels_last
from .errors import ModelError
from .evaluation import check_model_outputs
from .images import preprocess
from .loading import model_file
from .provenance import RECIPE_FILE
from .requests import DEFAULT_SEED
from .stream import collate


@dataclass
class Recipe:
    """How an original (and its retrained gold standard) is trained: the architecture (a preset of
    `lotus_hf.research.training` or a config.json), epochs, AdamW learning rate and weight decay, batch size,
    schedule and seed. `lotus-hf train` records it in the model's training_recipe.json."""

    model_config: str | None = field(
        default="resnet-small", metadata={"help": "resnet-small, vit-small or a config.json."}
    )
    epochs: int = field(default=30, metadata={"help": "Epochs."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=5e-4, metadata={"help": "AdamW weight decay."})
    batch_size: int = field(default=128, metadata={"help": "Batch size."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_ratio: float = field(default=0.0, metadata={"help": "Share of the steps that warm the learning rate up."})
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "Seed of the run (paper: 3407, 13, 12)."})
    pretrained: str | None = field(
        default=None,
        metadata={
            "help": "Fine-tune this pretrained classifier (folder or Hub id) with a new head for the data set's "
            "classes, instead of training `model_config` from scratch."
        },
    )

    @classmethod
    def of_model(cls, name: str) -> Recipe | None:
        """The recipe a model trained by `lotus-hf train` was trained with (its training_recipe.json), or None."""
        path = model_file(name, RECIPE_FILE)
        if path is None:
            return None
        recorded = json.loads(path.read_text())["recipe"]
        return cls(**{k: v for k, v in recorded.items() if k in {f.name for f in fields(cls)}})

    @staticmethod
    def seconds_per_example(name: str) -> float | None:
        """How long the model's own training took per training example and epoch, as its training_recipe.json
        recorded it (None when it does not): what puts a wall-time beside a retraining's count."""
        path = model_file(name, RECIPE_FILE)
        if path is None:
            return None
        recorded = json.loads(path.read_text())
        seconds, samples = recorded.get("training_seconds"), recorded.get("train_samples")
        epochs = recorded.get("recipe", {}).get("epochs")
        return seconds / (samples * epochs) if seconds and samples and epochs else None

    @classmethod
    def from_model(cls, name: str) -> Recipe:
        """`of_model`, or a `ModelError` saying what to pass."""
        recipe = cls.of_model(name)
        if recipe is None:
            raise ModelError(f"`like` {name!r} has no {RECIPE_FILE}: pass a model trained by `lotus-hf train`.")
        return recipe

    def training_fields(self) -> dict:
        """The recipe as `TrainingArguments` fields, its seed left out (a retraining takes its run's)."""
        return {
            "num_train_epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "per_device_train_batch_size": self.batch_size,
            "lr_scheduler_type": self.lr_scheduler_type,
            "warmup_steps": self.warmup_ratio,
        }  # transformers 5 reads a value below 1 as a ratio

    def arguments(self, output_dir) -> TrainingArguments:
        """The `TrainingArguments` of a plain cross-entropy run of this recipe (no checkpoints, no trackers)."""
        return TrainingArguments(
            output_dir=str(output_dir),
            **self.training_fields(),
            seed=self.seed,
            per_device_eval_batch_size=512,
            save_strategy="no",
            logging_strategy="epoch",
            report_to="none",
            remove_unused_columns=False,
            dataloader_pin_memory=torch.cuda.is_available(),
        )

    def pretrained_model(self, class_names: list[str]) -> torch.nn.Module:
        """`pretrained` with a new head for `class_names`, the head's weights drawn with this recipe's seed: where a
        fine-tuning starts, for an original and for its gold standard alike."""
        from .loading import load_model

        torch.manual_seed(self.seed)
        return load_model(self.pretrained, new_head=class_names)[0]

    def train(self, model, train_dataset, work_dir) -> tuple[torch.nn.Module, float]:
        """Train `model` on `train_dataset` as this recipe says; `(model in eval mode, seconds)`."""
        return train_classifier(model, train_dataset, self.arguments(work_dir))

    def to_dict(self) -> dict:
        """The recipe as recorded; `model_config` is left out (None) when the model was fine-tuned from `pretrained`
        weights, whose architecture it is not."""
        return {**asdict(self), **({"model_config": None} if self.pretrained else {})}


def classifier_loss(outputs, labels, num_items_in_batch=None) -> torch.Tensor:
    """The loss of every image classifier here, from its logits: some heads compute none themselves (DeiT with
    its distillation head is for inference only in transformers). With `num_items_in_batch` (the rows of the
    whole step, every process's), the sum over them: `Trainer` then scales it by the number of processes, and
    DDP's mean of the gradients makes it the mean over all rows."""
    logits = outputs.logits.float()
    if num_items_in_batch is None:
        return torch.nn.functional.cross_entropy(logits, labels)
    return torch.nn.functional.cross_entropy(logits, labels, reduction="sum") / num_items_in_batch


def train_classifier(model, train_dataset, args: TrainingArguments) -> tuple[torch.nn.Module, float]:
    """Train `model` on `{"pixel_values", "labels"}` items with cross-entropy through the ordinary
    `Trainer`; returns `(model in eval mode, seconds)`."""
    trainer = Trainer(
        model=to_channels_last(model, args.device),
        args=args,
        train_dataset=train_dataset,
        data_collator=collate,
        compute_loss_func=classifier_loss,
    )
    start = time.perf_counter()
    trainer.train()
    return trainer.model.eval(), time.perf_counter() - start


def fit_head(
    model, dataset, image_processor, epochs: int = 3, seed: int = DEFAULT_SEED, learning_rate: float = 1e-3
) -> float:
    """Fine-tune `model` (with a new head for the data set's classes: `load_model(..., new_head=classes)`)
    on `dataset["train"]`, in place; it then serves as the original to unlearn from. Returns the seconds it
    took."""
    import tempfile

    from accelerate import PartialState

    train = preprocess(dataset["train"], image_processor)
    check_model_outputs(model, train)  # before any training, as for unlearning
    # at least ten steps an epoch on a few hundred images, whatever the number of processes
    batch_size = min(128, max(8, len(train) // (10 * PartialState().num_processes)))
    with tempfile.TemporaryDirectory(prefix="lotus-hf-fit-head-") as work:
        recipe = Recipe(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed)
        _, seconds = train_classifier(model, train, recipe.arguments(work))
    return seconds
