"""Scale features on CPU: streamed forget / retain / unseen sets (read once, retain never held whole), the
seeded reservoir, gradient checkpointing pass-through, the teacher placement helper and FSDP2 readiness."""

import copy

import numpy as np
import pytest
import torch
from conftest import tiny_model, unlearning_config

from lotus_hf import UnlearningTrainer
from lotus_hf.images import PixelDataset
from lotus_hf.stream import ItemList, reservoir_sample


def _lazy(dataset: PixelDataset, reads: list):
    """A `datasets.IterableDataset` that yields `dataset`'s items one by one, counting every item read."""
    import datasets

    def items():
        for i in range(len(dataset)):
            reads.append(i)
            yield {"pixel_values": dataset.pixel_values[i].numpy(), "labels": int(dataset.labels[i])}

    return datasets.IterableDataset.from_generator(items).with_format("torch")


@pytest.mark.deterministic  # two runs compared to the same decisions
def test_streamed_sets_are_read_once_and_train_like_the_same_samples_in_memory(trained_resnet, digits_data, tmp_path):
    reads = {"forget": [], "retain": [], "unseen": []}
    streams = {name: _lazy(getattr(digits_data, name), reads[name]) for name in reads}
    k = 200
    config = unlearning_config(tmp_path, num_train_epochs=2, retain_samples=k, alpha=8.0)
    trainer = UnlearningTrainer(
        copy.deepcopy(trained_resnet),
        config,
        forget_dataset=streams["forget"],
        retain_dataset=streams["retain"],
        unseen_dataset=streams["unseen"],
    )
    trainer.train()
    # every stream read exactly once, in full; only k retain items were ever kept
    for name in reads:
        assert reads[name] == list(range(len(getattr(digits_data, name)))), name
    assert isinstance(trainer.retain_dataset, ItemList) and len(trainer.retain_dataset) == k
    assert trainer.samples_seen() == {"forget": 2 * len(digits_data.forget), "retain": 2 * k}

    # The same k retain samples held in memory (retain_fraction 1): the same run, to the same decisions.
    chosen = reservoir_sample(range(len(digits_data.retain)), k, seed=config.seed)
    in_memory = unlearning_config(tmp_path, num_train_epochs=2, retain_fraction=1.0, alpha=8.0)
    reference = UnlearningTrainer(
        copy.deepcopy(trained_resnet),
        in_memory,
        forget_dataset=digits_data.forget,
        retain_dataset=digits_data.retain.select(chosen),
        unseen_dataset=digits_data.unseen,
    )
    reference.train()
    assert trainer.history == reference.history
    for a, b in zip(trainer.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_a_streamed_retain_set_without_length_needs_retain_samples(trained_resnet, digits_data, tmp_path):
    stream = _lazy(digits_data.retain, [])
    with pytest.raises(ValueError, match="`retain_samples`"):
        UnlearningTrainer(
            copy.deepcopy(trained_resnet),
            unlearning_config(tmp_path),
            forget_dataset=digits_data.forget,
            retain_dataset=stream,
            unseen_dataset=digits_data.unseen,
        )


def test_reservoir_is_seeded_and_uniform():
    assert reservoir_sample(range(100), 5, seed=1) == reservoir_sample(iter(range(100)), 5, seed=1)
    assert reservoir_sample(range(100), 5, seed=1) != reservoir_sample(range(100), 5, seed=2)
    n, k, trials = 20, 5, 4000
    hits = np.zeros(n)
    for seed in range(trials):
        hits[reservoir_sample(range(n), k, seed=seed)] += 1
    assert np.allclose(hits / trials, k / n, atol=0.03)  # each item kept with probability k/n


def test_gradient_checkpointing_passes_through_for_vit_and_is_skipped_for_resnet(digits_data, tmp_path):
    losses = []
    for checkpointing in (False, True):
        config = unlearning_config(
            tmp_path, max_steps=2, logging_steps=1, activation_checkpointing=checkpointing, class_forgetting=True
        )
        trainer = UnlearningTrainer(
            tiny_model("vit"),
            config,
            forget_dataset=digits_data.forget,
            retain_dataset=digits_data.retain,
            unseen_dataset=digits_data.unseen,
        )
        trainer.train()
        assert trainer.model.is_activation_checkpointing == checkpointing
        losses.append([e["loss"] for e in trainer.state.log_history if "loss" in e])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)  # recomputation changes memory, not results

    config = unlearning_config(tmp_path, max_steps=1, activation_checkpointing=True, class_forgetting=True)
    trainer = UnlearningTrainer(
        tiny_model("resnet"),
        config,
        forget_dataset=digits_data.forget,
        retain_dataset=digits_data.retain,
        unseen_dataset=digits_data.unseen,
    )
    assert not trainer.args.activation_checkpointing and not trainer.args.gradient_checkpointing
    trainer.train()


def test_live_teacher_on_one_process_is_on_the_device_frozen_and_unwrapped(trained_resnet, digits_data, tmp_path):
    config = unlearning_config(tmp_path, cache_teacher_logits=False, max_steps=1)
    trainer = UnlearningTrainer(
        copy.deepcopy(trained_resnet),
        config,
        forget_dataset=digits_data.forget,
        retain_dataset=digits_data.retain,
        unseen_dataset=digits_data.unseen,
    )
    assert type(trainer.teacher) is type(trained_resnet)
    assert not trainer.teacher.training and not any(p.requires_grad for p in trainer.teacher.parameters())


def test_fsdp2_preparation_gets_vision_models_ready_or_names_the_setting_that_cannot_work():
    from lotus_hf._compat import fsdp2_compatible

    resnet, vit = tiny_model("resnet"), tiny_model("vit")
    with pytest.raises(NotImplementedError):
        resnet.get_input_embeddings()  # what accelerate 1.15's FSDP2 preparation calls
    assert fsdp2_compatible(resnet).get_input_embeddings() is None
    patches = vit.get_input_embeddings()
    assert fsdp2_compatible(vit).get_input_embeddings() is patches  # models with embeddings keep them
    with pytest.raises(ValueError, match="fsdp_cpu_ram_efficient_loading: false"):
        fsdp2_compatible(tiny_model("resnet"), cpu_ram_efficient_loading=True)  # BatchNorm buffers
    vit = tiny_model("vit")  # parameters only: RAM-efficient loading works for it
    assert fsdp2_compatible(vit, cpu_ram_efficient_loading=True) is vit
