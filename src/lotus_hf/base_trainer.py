"""`UnlearningTrainerBase`: what every unlearning trainer of lotus-hf is, whatever its method (LoTUS, Belief Relabel,
the baselines), in the spirit of TRL's trainers: one `__init__`, the same callbacks (`RunHooks`, the progress bar,
the cost and its budget), the same save, card and push, and the run's strategy (several processes, FSDP2 on CPU,
channels-last) handled once.

A method is a subclass that builds its training stream (`build_stream`) and its loss (`compute_loss`), and may act
when training starts (`prepare`), before each epoch (`begin_epoch`) and after each optimizer step (`after_step`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from transformers import Trainer, TrainerCallback

from . import _compat
from .cards import TAGS
from .cost import track_cost
from .distributed import real_rows, to_channels_last, whole_model
from .errors import HubError
from .hooks import RunHooks, stop_epoch, use_run_progress
from .provenance import model_history
from .push import Lineage, push_folder
from .saving import save_model_folder
from .stream import collate


class UnlearningTrainerBase(_compat.StopBeforeEpoch, Trainer):
    """The `Trainer` every unlearning method of lotus-hf subclasses.

    Args:
        model: the original model (any `AutoModelForImageClassification`); it becomes the unlearned model.
        args: the method's config (an instance of the subclass's `config_class`).
        forget_dataset: items `{"pixel_values", "labels"}` to forget (e.g. `UnlearningData.forget`).
        retain_dataset: the rest of the training data.
        The other arguments are `Trainer`'s.

    After `__init__`: `history` (what the method records as it trains: its probes, or one entry per epoch),
    `cost` (`lotus_hf.cost.track_cost`: what the run costs, and its budget) and `lineage` (`lotus_hf.push.Lineage`,
    taken from the model before any update: what its unlearning history and card record).
    """

    config_class: ClassVar[type] = object  # each method's config class
    _tag_names = TAGS

    def __init__(
        self,
        model: torch.nn.Module,
        args,
        forget_dataset=None,
        retain_dataset=None,
        *,
        data_collator=None,
        eval_dataset=None,
        processing_class=None,
        compute_metrics=None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers=(None, None),
    ):
        if not isinstance(args, self.config_class):
            raise TypeError(
                f"`args` must be an instance of `{self.config_class.__name__}`, got {type(args).__name__}."
            )
        # what a retraining would train on, for the run's cost as a share of one
        retain_size = len(retain_dataset) if hasattr(retain_dataset, "__len__") else None
        self.forget_dataset, self.retain_dataset = forget_dataset, retain_dataset
        train_dataset = self.build_stream(args)  # may check and replace the two data sets
        super().__init__(
            model=model,
            args=_compat.without_unsupported_checkpointing(args, model),
            data_collator=data_collator or collate,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self.cost = track_cost(self, retain_size)
        self.add_callback(RunHooks(self))
        use_run_progress(self)
        if self.is_fsdp_enabled and self.accelerator.is_fsdp2:  # Trainer shards it when training starts
            _compat.fsdp2_compatible(self.model, self.accelerator.state.fsdp_plugin.cpu_ram_efficient_loading)
        if self.args.channels_last and _compat.channels_last_allowed(self):
            to_channels_last(self.model, self.args.device)
        self.model_accepts_loss_kwargs = False  # losses are per-row means: Trainer scales them for accumulation
        self.history: list[dict] = []
        self.epoch_rows = 0  # rows this process has trained on in the current epoch, padding included
        self.lineage = Lineage.of(model)

    # ------------------------------------------------------------------------------ what a method defines
    def build_stream(self, args) -> torch.utils.data.Dataset:
        """The training stream, built from `self.forget_dataset` and `self.retain_dataset` (before `Trainer`'s
        `__init__`: `self.args` is not set yet)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """When training starts, after accelerate has prepared the model (still the original)."""

    def begin_epoch(self) -> bool:
        """Before each epoch (call `super()` first: it starts the epoch's row count); True stops training."""
        self.epoch_rows = 0
        return False

    def after_step(self) -> bool:
        """After each optimizer step; True stops training at once."""
        return False

    def save_run_state(self, checkpoint: Path) -> None:
        """Write what a resumed run needs beyond Trainer's checkpoint into `checkpoint` (resumable methods)."""

    @property
    def stopped_at_epoch(self) -> int | None:
        """The epoch whose probe stopped training (1-based), or None if no stop rule did."""
        return stop_epoch(self.history)

    # ------------------------------------------------------------------------------ several processes
    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if _compat.honour_fsdp_on_cpu(self.accelerator, self.args.fsdp_plugin_args):
            self.is_fsdp_enabled = True

    def get_train_dataloader(self):
        # A last batch of one row per process cannot train a BatchNorm layer ("Expected more than 1 value per
        # channel when training"): such a batch is dropped, one row per epoch, another one each epoch (shuffled).
        rows, world = len(self.train_dataset), self.accelerator.num_processes
        lone_rows = 0 < rows % (self.args.train_batch_size * world) <= world
        if self.args.dataloader_drop_last or not lone_rows or not _has_batch_norm(self.model):
            return super().get_train_dataloader()
        with _compat.overridden(self, dataloader_drop_last=True):
            return super().get_train_dataloader()

    def real_rows(self, rows: int) -> torch.Tensor:
        """Which of the `rows` rows of this process's next batch are not accelerate's padding of an epoch's last
        batch (`lotus_hf.distributed.real_rows`); counts them into the epoch."""
        accelerator, world = self.accelerator, self.accelerator.num_processes
        if world == 1 or not accelerator.even_batches or accelerator.split_batches:
            mask = torch.ones(rows, dtype=torch.bool)
        else:
            mask = real_rows(
                len(self.train_dataset),
                self.args.per_device_train_batch_size,
                world,
                accelerator.process_index,
                self.epoch_rows,
                rows,
            )
        self.epoch_rows += rows
        return mask.to(self.args.device)

    # ------------------------------------------------------------------------------ save, card, push
    def unlearning_lineage(self, model=None) -> list[dict]:
        """The model's unlearning history: the steps it came with, plus this run, with the SHA-256 of `model`'s
        weights (default: the trainer's, gathered when sharded; every process must call it then)."""
        return self.lineage.steps(self.args, model if model is not None else whole_model(self))

    def model_card(self, model_name: str | None = None, lineage: list[dict] | None = None):
        """This run's `huggingface_hub.ModelCard`."""
        name = model_name or Path(self.args.output_dir).name
        return self.lineage.card(name, self.args, self.history, lineage or self.unlearning_lineage())

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save as `Trainer` does, with the unlearning history in the config (`lotus_hf_unlearning`) and without
        `training_args.bin` (a pickle: lotus-hf writes none)."""
        self.model.config.lotus_hf_unlearning = self.unlearning_lineage()  # every process: it may gather
        super().save_model(output_dir, _internal_call)
        pickled = Path(output_dir or self.args.output_dir) / "training_args.bin"
        if self.args.should_save and pickled.exists():
            pickled.unlink()

    def create_model_card(self, model_name: str | None = None, **kwargs) -> None:
        """Write README.md, the model card (templates/model_card.md), into `args.output_dir`."""
        if self.is_world_process_zero():
            # `save_model` has put this run's step into the config (gathering a sharded model on every process)
            history = model_history(self.model)
            saved = len(history) == len(self.lineage.previous) + 1
            lineage = history if saved else self.unlearning_lineage(self.model)
            Path(self.args.output_dir).mkdir(parents=True, exist_ok=True)
            self.model_card(model_name, lineage).save(Path(self.args.output_dir) / "README.md")

    def push_to_hub(
        self,
        commit_message: str | None = None,
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs,
    ) -> str | None:
        """Push the unlearned model to `args.hub_model_id` in one commit, as the CLI and the Space do: the whole
        model (gathered when sharded) with its unlearning history, image processor, card and report.json are
        written into a new folder (`save_model_folder`) and pushed with `push_folder`. Returns the commit URL.
        The push is always blocking; `revision` names the branch to push to."""
        import tempfile

        repo_id = self.args.hub_model_id
        if not repo_id:
            raise HubError("`hub_model_id` must be set in the config to push: the repo to push to, as ORG/NAME.")
        model = whole_model(self)  # every process takes part in gathering a sharded model
        if not self.is_world_process_zero():
            return None
        lineage = self.unlearning_lineage(model)
        model.config.lotus_hf_unlearning = lineage
        name = kwargs.get("model_name") or repo_id.split("/")[-1]
        private = self.args.hub_private_repo if private is None else private
        with tempfile.TemporaryDirectory(prefix="lotus-hf-push-") as scratch:
            folder = save_model_folder(
                Path(scratch) / name,
                model,
                self.processing_class,
                self.model_card(name, lineage),
                self.lineage.report_dict() or None,
            )
            return push_folder(
                folder,
                repo_id,
                private=bool(private),
                token=token or self.args.hub_token,
                message=commit_message,
                revision=revision,
            )


def _has_batch_norm(model: torch.nn.Module) -> bool:
    return any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())
