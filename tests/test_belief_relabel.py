"""Belief Relabel, lotus-hf's own method for whole classes: a class is forgotten the way a model that never saw it
behaves, on a tiny ResNet trained on real digits; LoTUS keeps the paper's class forgetting."""

import copy

import pytest
import torch
from conftest import tiny_processor, unlearning_config

from lotus_hf import UnlearningTrainer
from lotus_hf.belief_relabel import BeliefRelabelConfig, BeliefRelabelTrainer, membership_threshold
from lotus_hf.data import prepare_unlearning_data
from lotus_hf.evaluation import accuracy, predict_logits
from lotus_hf.methods import default_method, method_config
from lotus_hf.requests import ForgetRequest

FORGOTTEN = 3
COMMON = dict(per_device_train_batch_size=32, per_device_eval_batch_size=256, disable_tqdm=True, use_cpu=True)


@pytest.fixture(scope="module")
def class_data(digits):
    return prepare_unlearning_data(digits, ForgetRequest.classes([f"digit-{FORGOTTEN}"]), tiny_processor(), seed=3407)


def _run(model, data, tmp_path, **fields):
    config = BeliefRelabelConfig(
        output_dir=str(tmp_path), **{**COMMON, "num_train_epochs": 10, "learning_rate": 1e-3, **fields}
    )
    trainer = BeliefRelabelTrainer(
        copy.deepcopy(model),
        config,
        forget_dataset=data.forget,
        retain_dataset=data.retain,
        unseen_dataset=data.unseen,
    )
    trainer.train()
    return trainer


def test_belief_relabel_drives_the_forgotten_class_to_zero_and_keeps_the_rest(trained_resnet, class_data, tmp_path):
    data = class_data
    assert default_method(ForgetRequest.classes(["x"])) == "belief_relabel" == BeliefRelabelConfig.method
    assert default_method(ForgetRequest.first_percent(10)) == "lotus"
    assert accuracy(predict_logits(trained_resnet, data.forget), data.forget.labels) > 0.9  # it knows the class
    retain_before = accuracy(predict_logits(trained_resnet, data.retain), data.retain.labels)

    # 132 forget images: probes get a quarter of the run (default 5%), so that the stop gets a few chances
    trainer = _run(trained_resnet, data, tmp_path, probe_share=0.25)
    model = trainer.model.eval()
    assert accuracy(predict_logits(model, data.forget), data.forget.labels) <= 0.02
    assert accuracy(predict_logits(model, data.retain), data.retain.labels) >= retain_before - 0.03
    # the model predicts the forgotten class for (almost) no held-out image either
    assert (predict_logits(model, data.test).argmax(-1) == FORGOTTEN).float().mean() <= 0.02

    # each forget sample was filed under one remaining class, drawn once from the original's belief
    stream, drawn = trainer.stream, trainer.stream.forget_targets
    assert len(drawn) == len(data.forget) and stream[len(stream) - 1]["forget_target"] == -1  # a retain row
    assert (drawn >= 0).all() and not (drawn == FORGOTTEN).any() and len(drawn.unique()) > 1
    assert torch.equal(drawn, _run(trained_resnet, data, tmp_path / "again", max_steps=1).stream.forget_targets)
    # the stop fired: forget accuracy 0 and the forget set as "member"-like as the original's unseen errors
    last = trainer.history[-1]
    assert trainer.stopped_at_epoch == last["epoch"] < 11
    assert last["forget_accuracy"] < 0.005 and last["forget_member_rate"] >= last["reference_member_rate"]
    assert 0 <= trainer.reference_member_rate <= 1 and trainer.member_threshold > 0
    assert all(not e["stop"] for e in trainer.history[:-1])
    # its probes are paced by cost, never before the first update, and stay within their share of the run
    assert trainer.history[0]["step"] > 0
    assert trainer.cost.meter.parts["probes"] <= trainer.args.probe_share * trainer.cost.meter.total()
    assert all("tau" not in e and "alpha" not in trainer.args.method_hyperparameters() for e in trainer.history)


def test_lotus_keeps_the_papers_class_forgetting(trained_resnet, class_data, tmp_path):
    config = method_config(
        "lotus",
        None,
        ForgetRequest.classes(["digit-3"]),
        output_dir=str(tmp_path),
        **{**COMMON, "num_train_epochs": 2},
    )
    assert (config.class_forgetting, config.alpha, config.learning_rate) == (
        True,
        32.0,
        1e-4,
    )  # the paper's row
    trainer = UnlearningTrainer(
        copy.deepcopy(trained_resnet),
        config,
        forget_dataset=class_data.forget,
        retain_dataset=class_data.retain,
        unseen_dataset=class_data.unseen,
    )
    trainer.train()
    assert trainer.stream.forget_targets is None and trainer.unseen_accuracy == 0.0
    assert len(trainer.history) == 2 and not any(e["stop"] for e in trainer.history)  # its stop cannot fire
    assert all("forget_member_rate" not in e and e["tau"] > 1 for e in trainer.history)


def test_belief_relabel_needs_whole_classes(trained_resnet, digits_data, tmp_path):
    config = BeliefRelabelConfig(output_dir=str(tmp_path), **COMMON)
    with pytest.raises(ValueError, match="forget set holds all 10 classes"):
        BeliefRelabelTrainer(
            copy.deepcopy(trained_resnet),
            config,
            forget_dataset=digits_data.forget,
            retain_dataset=digits_data.retain,
            unseen_dataset=digits_data.unseen,
        )
    with pytest.raises(TypeError, match="`args` must be an instance of `BeliefRelabelConfig`"):
        BeliefRelabelTrainer(
            copy.deepcopy(trained_resnet),
            unlearning_config(tmp_path),
            forget_dataset=digits_data.forget,
            retain_dataset=digits_data.retain,
            unseen_dataset=digits_data.unseen,
        )


def test_the_stops_membership_threshold_by_hand():
    # members 0.0, 0.1, 0.5; non-members 0.4, 0.9, 1.0: at 0.1, 2/3 members below and 3/3 non-members above
    assert round(membership_threshold(torch.tensor([0.0, 0.1, 0.5]), torch.tensor([0.4, 0.9, 1.0])), 6) == 0.1
