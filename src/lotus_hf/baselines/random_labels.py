"""Random Labels: train on the forget set with a fresh random wrong label for each sample at every step, and
on the whole retain set with its true labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..stream import UnlearningStream
from .finetune import FinetuneConfig, FinetuneTrainer


@dataclass
class RandomLabelsConfig(FinetuneConfig):
    """Finetune's defaults."""

    method = "random_labels"


class RandomLabelsTrainer(FinetuneTrainer):
    """Stream: the forget set and the whole retain set; forget rows get random wrong labels."""

    config_class = RandomLabelsConfig

    def build_stream(self, args) -> UnlearningStream:
        return UnlearningStream(self.forget_dataset, self.retain_dataset, torch.arange(len(self.retain_dataset)))

    def prepare(self) -> None:
        self._wrong_labels = torch.Generator().manual_seed(self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(pixel_values=inputs["pixel_values"])
        labels, classes = inputs["labels"], outputs.logits.shape[-1]
        shift = torch.randint(1, classes, labels.shape, generator=self._wrong_labels).to(labels)
        labels = torch.where(inputs["is_forget"].bool(), (labels + shift) % classes, labels)
        loss = F.cross_entropy(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss
