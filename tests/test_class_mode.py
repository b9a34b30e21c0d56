"""lotus-hf's class mode ("remaining"): a whole class is forgotten the way a model that never saw it behaves,
on a tiny ResNet trained on real digits; the paper's mode stays selectable."""

import copy

import pytest
import torch
from conftest import tiny_processor, unlearning_config

from lotus_hf import UnlearningConfig, UnlearningTrainer
from lotus_hf.data import ForgetRequest, prepare_unlearning_data
from lotus_hf.evaluation import accuracy, predict_logits

FORGOTTEN = 3


@pytest.fixture(scope="module")
def class_data(digits):
    return prepare_unlearning_data(
        digits, ForgetRequest.classes([f"digit-{FORGOTTEN}"]), tiny_processor(), seed=3407
    )


def _run(model, data, tmp_path, **fields):
    config = unlearning_config(
        tmp_path, **{"class_forgetting": True, "num_train_epochs": 10, "learning_rate": 1e-3, **fields}
    )
    trainer = UnlearningTrainer(copy.deepcopy(model), config, forget_dataset=data.forget, retain_dataset=data.retain,
                                unseen_dataset=data.unseen)  # fmt: skip
    trainer.train()
    return trainer


def test_class_mode_drives_the_forgotten_class_to_zero_and_keeps_the_rest(
    trained_resnet, class_data, tmp_path
):
    data = class_data
    assert UnlearningConfig(output_dir=str(tmp_path)).class_mode == "remaining"  # the default
    assert (
        accuracy(predict_logits(trained_resnet, data.forget), data.forget.labels) > 0.9
    )  # it knows the class
    retain_before = accuracy(predict_logits(trained_resnet, data.retain), data.retain.labels)

    trainer = _run(trained_resnet, data, tmp_path)
    model = trainer.model.eval()
    assert accuracy(predict_logits(model, data.forget), data.forget.labels) <= 0.02
    assert accuracy(predict_logits(model, data.retain), data.retain.labels) >= retain_before - 0.03
    # the model predicts the forgotten class for (almost) no held-out image either
    assert (predict_logits(model, data.test).argmax(-1) == FORGOTTEN).float().mean() <= 0.02

    # each forget sample was filed under one remaining class, drawn once from the original's belief
    stream, drawn = trainer.stream, trainer.stream.forget_targets
    assert len(drawn) == len(data.forget) and stream[len(stream) - 1]["forget_target"] == -1  # a retain row
    assert (drawn >= 0).all() and not (drawn == FORGOTTEN).any() and len(drawn.unique()) > 1
    assert torch.equal(
        drawn, _run(trained_resnet, data, tmp_path / "again", max_steps=1).stream.forget_targets
    )
    # the stop fired: forget accuracy 0 and the forget set as "member"-like as the original's unseen errors
    last = trainer.history[-1]
    assert trainer.stopped_at_epoch == last["epoch"] < 11
    assert last["forget_accuracy"] < 0.005 and last["forget_member_rate"] >= last["reference_member_rate"]
    assert 0 <= trainer.reference_member_rate <= 1 and trainer.member_threshold > 0
    assert all(not e["stop"] for e in trainer.history[:-1])


def test_the_papers_class_mode_stays_selectable(trained_resnet, class_data, tmp_path):
    trainer = _run(trained_resnet, class_data, tmp_path, class_mode="paper", num_train_epochs=2)
    assert trainer.stream.forget_targets is None and trainer.member_threshold is None
    assert len(trainer.history) == 2 and not any(e["stop"] for e in trainer.history)  # its stop cannot fire
    assert all("forget_member_rate" not in e for e in trainer.history)
    assert trainer.args.method_hyperparameters()["class_mode"] == "paper"
    assert (
        "alpha"
        not in _run(trained_resnet, class_data, tmp_path / "r", max_steps=1).args.method_hyperparameters()
    )


def test_class_mode_needs_whole_classes(trained_resnet, digits_data, tmp_path):
    config = unlearning_config(tmp_path, class_forgetting=True)
    with pytest.raises(ValueError, match="forget set holds all 10 classes"):
        UnlearningTrainer(copy.deepcopy(trained_resnet), config, forget_dataset=digits_data.forget,
                          retain_dataset=digits_data.retain, unseen_dataset=digits_data.unseen)  # fmt: skip
