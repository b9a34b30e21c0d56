"""Retrain: the same architecture re-initialised (seeded) and trained on the retain set. The gold standard
every other method is measured against, and what unlearning exists to avoid."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..recipe import Recipe
from .base import BaselineConfig, fresh_model
from .finetune import FinetuneTrainer


@dataclass
class RetrainConfig(BaselineConfig):
    """Retraining's defaults: the recipe of `lotus-hf train` (AdamW lr 1e-3, weight decay 5e-4, cosine, 30
    epochs). `lotus_hf.methods.method_config` reads a model's own recipe from its `training_recipe.json`."""

    method = "retrain"
    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=5e-4, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=30, metadata={"help": "Epochs.", "aliases": ["--epochs"]})

    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    pretrained: str | None = field(
        default=None,
        metadata={"help": "Retrain by fine-tuning this pretrained classifier again (the recipe's)."},
    )


class RetrainTrainer(FinetuneTrainer):
    """Cross-entropy on the retain set from freshly initialised weights (seeded by `args.seed`), or, for a model
    fine-tuned from a pretrained one (`args.pretrained`), from those pretrained weights with a new head again."""

    config_class = RetrainConfig

    def __init__(self, model, args: RetrainConfig, *more, **kwargs):
        if isinstance(args, RetrainConfig):  # otherwise the base class says what `args` must be
            if args.pretrained:
                names = [model.config.id2label[i] for i in range(model.config.num_labels)]
                start = Recipe(pretrained=args.pretrained, seed=args.seed).pretrained_model(names)
            else:
                start = fresh_model(model.config, args.seed)
            model.load_state_dict(start.state_dict())
        super().__init__(model, args, *more, **kwargs)
