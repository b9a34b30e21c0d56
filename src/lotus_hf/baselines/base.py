"""What every baseline shares: `BaselineConfig` (the common fields) and `BaselineTrainer` (data, saving, card).

A baseline is a `BaselineConfig` subclass that declares its own fields and defaults, and a `BaselineTrainer`
subclass that picks its training stream (`build_stream`) and its loss (`compute_loss`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from transformers import AutoModelForImageClassification

from .._compat import training_loader
from ..base_trainer import UnlearningTrainerBase
from ..config import MethodConfig
from ..errors import ArgumentError
from ..images import PixelDataset
from ..stream import UnlearningStream, collate


@dataclass
class BaselineConfig(MethodConfig):
    """Configuration of a baseline: every `TrainingArguments` field, the method's own fields and its training
    defaults (optimizer, learning rate, weight decay, epochs), each declared by the method's subclass. Each
    subclass names its method in `method`."""

    method: ClassVar[str] = ""
    # The training fields that define a run besides the method's own (SSD, which does not train, has none).
    training_fields: ClassVar[tuple[str, ...]] = (
        "optim",
        "learning_rate",
        "weight_decay",
        "num_train_epochs",
    )

    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=3, metadata={"help": "Epochs.", "aliases": ["--epochs"]})

    def __post_init__(self):
        if self.optim == "sgd" and not self.optim_args:
            self.optim_args = "momentum=0.9"
        super().__post_init__()

    def card_description(self) -> str:
        return (
            f"with the `{self.method}` baseline of lotus-hf (see `lotus_hf.baselines`), not with LoTUS: a comparison\n"
            "method of the LoTUS paper (Spartalis et al., CVPR 2025)."
        )

    def own_fields(self) -> tuple[str, ...]:
        """The method's own hyper-parameters: the fields its config declares beyond `BaselineConfig`."""
        common = {f.name for f in dataclasses.fields(BaselineConfig)}
        return tuple(f.name for f in dataclasses.fields(self) if f.name not in common)

    def method_hyperparameters(self) -> dict:
        names = (*self.own_fields(), *self.training_fields, "per_device_train_batch_size", "seed")
        values = {name: getattr(self, name) for name in names}
        return {"method": self.method, **{k: getattr(v, "value", v) for k, v in values.items()}}


class BaselineTrainer(UnlearningTrainerBase):
    """The `Trainer` of a baseline: it takes the forget and retain sets, trains on the stream its subclass
    builds, and saves, describes and pushes the result like `UnlearningTrainer` (`UnlearningTrainerBase`).

    Args:
        model: the original model; it becomes the unlearned model.
        args: the method's config (a `BaselineConfig` subclass).
        forget_dataset, retain_dataset: `{"pixel_values", "labels"}` items (e.g. `UnlearningData.forget`).
        callbacks, processing_class: as for `Trainer`.
    """

    config_class: ClassVar[type[BaselineConfig]] = BaselineConfig

    def __init__(
        self,
        model,
        args: BaselineConfig,
        forget_dataset=None,
        retain_dataset=None,
        callbacks=None,
        processing_class=None,
    ):
        for name, dataset in (("forget_dataset", forget_dataset), ("retain_dataset", retain_dataset)):
            if dataset is None or len(dataset) == 0:
                raise ArgumentError(f"`{name}` must be a non-empty data set of `pixel_values`/`labels` items.")
        super().__init__(
            model, args, forget_dataset, retain_dataset, callbacks=callbacks, processing_class=processing_class
        )

    # Hooks for the subclasses.
    def build_stream(self, args: BaselineConfig) -> UnlearningStream:
        """The training stream; by default the whole retain set."""
        return UnlearningStream([], self.retain_dataset, torch.arange(len(self.retain_dataset)))

    def begin_epoch(self) -> bool:
        """Before each epoch: one history entry (epoch, cost so far); no baseline has a stop rule."""
        super().begin_epoch()
        self.history.append({"epoch": len(self.history) + 1, "cost": self.cost.meter.total()})
        return False

    def forget_batches(self):
        """Endless shuffled batches of the forget set, through a data loader accelerate prepares like the
        training one (each process gets its share)."""
        loader = training_loader(self, self.forget_dataset, "forget")
        while True:  # accelerate's seedable sampler draws a new order on every pass
            yield from loader


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Batch-mean KL(softmax(teacher / T) || softmax(student / T)) * T^2 (Hinton et al.).

    >>> round(float(distillation_kl(torch.zeros(1, 2), torch.zeros(1, 2), 4.0)), 6)
    0.0
    """
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


def fresh_model(config, seed: int) -> torch.nn.Module:
    """A randomly initialised model of `config`, seeded: what `retrain` (and the benchmark's originals and
    gold standards) start from."""
    torch.manual_seed(seed)
    return AutoModelForImageClassification.from_config(copy.deepcopy(config))


def batches(datasets, batch_size: int, seed: int | None = None):
    """Batches of `(pixel_values, labels)` over `datasets` joined; shuffled (seeded) when `seed` is given, so
    that batches mix rows of every data set as a shuffled training loader does."""
    if len(datasets) == 1:
        joined = datasets[0]
    elif all(isinstance(d, PixelDataset) for d in datasets):  # one tensor: batches are slices, not items
        joined = PixelDataset(torch.cat([d.pixel_values for d in datasets]), torch.cat([d.labels for d in datasets]))
    else:
        joined = torch.utils.data.ConcatDataset(datasets)
    order = torch.arange(len(joined))
    if seed is not None:
        order = torch.randperm(len(joined), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        if hasattr(joined, "pixel_values"):
            yield joined.pixel_values[rows], joined.labels[rows]
        else:
            batch = collate([joined[int(i)] for i in rows])
            yield batch["pixel_values"], batch["labels"]
