"""The upstream behaviours lotus_hf._compat works around are still there in the installed versions (when one
of these tests fails after an upgrade, its workaround can go), and each workaround does its job."""

import pytest
import torch
from conftest import tiny_model
from transformers import Trainer, TrainerCallback, TrainingArguments

from lotus_hf import _compat
from lotus_hf.images import PixelDataset
from lotus_hf.stream import collate


def test_version_ranges():
    from importlib.metadata import version

    major = int(version("transformers").split(".")[0])
    assert _compat._affected("transformers", f"{major}.0", f"{major + 1}.0")
    assert not _compat._affected("transformers", "0.1", "0.2")
    assert not _compat._affected("no-such-package-anywhere", "0", "99")


class _StopAtFirstEpoch(TrainerCallback):
    def on_epoch_begin(self, args, state, control, **kwargs):
        control.should_training_stop = True


class _Loss(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return torch.nn.functional.cross_entropy(model(pixel_values=inputs["pixel_values"]).logits, inputs["labels"])


class _Stopping(_compat.StopBeforeEpoch, _Loss):
    pass


@pytest.mark.parametrize("trainer_class, steps", [(_Loss, 1), (_Stopping, 0)])
def test_a_stop_asked_for_at_epoch_begin(trainer_class, steps, tmp_path):
    """transformers runs one step of an epoch whose opening callback says stop; `StopBeforeEpoch` runs none."""
    data = PixelDataset(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_train_epochs=2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
    )
    trainer = trainer_class(
        model=tiny_model("resnet"),
        args=args,
        train_dataset=data,
        data_collator=collate,
        callbacks=[_StopAtFirstEpoch()],
    )
    trainer.train()
    assert trainer.state.global_step == steps


def test_vision_models_raise_on_get_input_embeddings_and_fsdp2_compatible_answers_none():
    resnet = tiny_model("resnet")
    with pytest.raises(NotImplementedError):
        resnet.get_input_embeddings()  # what accelerate 1.15's FSDP2 preparation calls
    assert _compat.fsdp2_compatible(resnet).get_input_embeddings() is None


def test_launched_on_cpu_reads_the_launchers_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert _compat.launched_on_cpu() is (not torch.cuda.is_available())
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert _compat.launched_on_cpu() is False


def test_checkpointing_is_turned_off_for_models_that_cannot_and_kept_for_others(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), activation_checkpointing=True, report_to="none", use_cpu=True)
    off = _compat.without_unsupported_checkpointing(args, tiny_model("resnet"))
    assert not off.activation_checkpointing and args.activation_checkpointing  # a copy: the caller's args stay
    assert _compat.without_unsupported_checkpointing(args, tiny_model("vit")) is args


def test_a_training_loader_over_any_data_set_and_args_overridden_for_a_call(tmp_path):
    """transformers' private `_get_dataloader` still builds a training loader over any data set (SCRUB and the
    baselines need one over the forget set): the trainer's batch size, every row once per pass, a new order per
    pass; `overridden` changes `args` (and `compute_metrics`) for one call and restores them."""
    data = PixelDataset(torch.arange(10.0).repeat_interleave(64).view(10, 1, 8, 8), torch.arange(10))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, report_to="none", use_cpu=True)
    trainer = _Loss(model=tiny_model("resnet"), args=args, train_dataset=data, data_collator=collate)
    loader = _compat.training_loader(trainer, data, "forget")
    passes = [[int(label) for batch in loader for label in batch["labels"]] for _ in range(2)]
    assert [len(batch["labels"]) for batch in loader] == [4, 4, 2]
    assert sorted(passes[0]) == sorted(passes[1]) == list(range(10)) and passes[0] != passes[1]

    metric = object()
    trainer.compute_metrics = metric
    with _compat.overridden(trainer, dataloader_drop_last=True, compute_metrics=None):
        assert trainer.args.dataloader_drop_last and trainer.compute_metrics is None
    assert not trainer.args.dataloader_drop_last and trainer.compute_metrics is metric
