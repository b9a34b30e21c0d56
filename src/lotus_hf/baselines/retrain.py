"""Retrain: the same architecture re-initialised (seeded) and trained on the retain set. The gold standard
every other method is measured against, and what unlearning exists to avoid."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..loading import model_file
from ..provenance import RECIPE_FILE
from ..requests import ForgetRequest
from .base import BaselineConfig, fresh_model
from .finetune import FinetuneTrainer


@dataclass
class RetrainConfig(BaselineConfig):
    """Retraining's defaults: the recipe of `lotus-hf train` (AdamW lr 1e-3, weight decay 5e-4, cosine, 30
    epochs). `from_pretrained` reads a model's own recipe from its `training_recipe.json`."""

    method = "retrain"
    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=5e-4, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=30, metadata={"help": "Epochs.", "aliases": ["--epochs"]})

    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | None = None, *, request: ForgetRequest | None = None, **kwargs
    ) -> RetrainConfig:
        """Retrain as the model was trained: its `training_recipe.json` (written by `lotus-hf train`) when it
        has one, then `kwargs`."""
        path = model_file(model_name_or_path, RECIPE_FILE) if model_name_or_path else None
        recipe = json.loads(path.read_text())["recipe"] if path else {}
        names = {"epochs": "num_train_epochs", "learning_rate": "learning_rate", "weight_decay": "weight_decay",
                 "batch_size": "per_device_train_batch_size", "lr_scheduler_type": "lr_scheduler_type",
                 "warmup_ratio": "warmup_steps"}  # fmt: skip
        fields = {names[key]: value for key, value in recipe.items() if key in names}
        return cls(**{**fields, **kwargs})


class RetrainTrainer(FinetuneTrainer):
    """Cross-entropy on the retain set from freshly initialised weights (seeded by `args.seed`)."""

    config_class = RetrainConfig

    def __init__(self, model, args: RetrainConfig, *more, **kwargs):
        if isinstance(args, RetrainConfig):  # otherwise the base class says what `args` must be
            model.load_state_dict(fresh_model(model.config, args.seed).state_dict())
        super().__init__(model, args, *more, **kwargs)
