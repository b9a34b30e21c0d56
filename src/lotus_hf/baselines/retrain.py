"""Retrain: the same architecture re-initialised (seeded) and trained on the retain set. The gold standard
every other method is measured against, and what unlearning exists to avoid."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..recipe import Recipe
from .base import BaselineConfig, fresh_model
from .finetune import FinetuneTrainer

RECIPE = Recipe()  # where retraining's defaults come from: one description of how a classifier is trained


@dataclass
class RetrainConfig(BaselineConfig):
    """Retraining's defaults are those of `Recipe`, the recipe of `lotus-hf train` (AdamW, its learning rate,
    weight decay, schedule, epochs and batch size). `lotus_hf.methods.method_config` reads a model's own recipe from
    its `training_recipe.json`."""

    method = "retrain"
    recommended_by = "training recipe"
    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=RECIPE.learning_rate, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=RECIPE.weight_decay, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=RECIPE.epochs, metadata={"help": "Epochs.", "aliases": ["--epochs"]})
    per_device_train_batch_size: int = field(
        default=RECIPE.batch_size, metadata={"help": "Batch size per device.", "aliases": ["--batch-size"]}
    )
    lr_scheduler_type: str = field(default=RECIPE.lr_scheduler_type, metadata={"help": "Learning-rate schedule."})
    pretrained: str | None = field(
        default=RECIPE.pretrained,
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
