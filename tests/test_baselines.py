"""The baselines: each runs for real on a tiny trained ResNet, changes the student, leaves the original alone,
and does what its definition says (hand-checked pure parts: KL, SSD dampening, SalUn's mask)."""

import copy

import pytest
import torch
from conftest import tiny_model

from lotus_hf.baselines import BASELINES, distillation_kl
from lotus_hf.baselines.salun import saliency_mask, top_share_mask
from lotus_hf.baselines.ssd import dampen
from lotus_hf.evaluation import Evaluation, accuracy, predict_logits
from lotus_hf.methods import method_config
from lotus_hf.run import unlearn


def _config(tmp_path, method, **overrides):
    fields = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=32,
        num_train_epochs=2,
        disable_tqdm=True,
        logging_strategy="no",
        use_cpu=True,
        seed=3407,
    )
    fields.update(overrides)
    if method == "ssd":
        fields.pop("num_train_epochs", None)
    return method_config(method, **fields)


def _trainer(method, model, config, data):
    return BASELINES[method][1](model, config, data.forget, data.retain)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", BASELINES)
def test_each_baseline_runs_changes_the_student_and_not_the_original(method, trained_resnet, digits_data, tmp_path):
    original = copy.deepcopy(trained_resnet)
    original_state = _state(original)
    student = copy.deepcopy(trained_resnet)
    result = unlearn(student, digits_data, _config(tmp_path, method), evaluation=Evaluation(digits_data, original))

    changed = [k for k, v in result.model.state_dict().items() if not torch.equal(v, original_state[k])]
    assert changed, f"{method} did not change the student"
    assert all(torch.equal(v, original_state[k]) for k, v in original.state_dict().items()), "original changed"
    rows = result.report.rows
    assert rows["original"]["acc_forget"] == pytest.approx(
        accuracy(predict_logits(original, digits_data.forget), digits_data.forget.labels)
    )
    assert result.report.training["method"] == method
    assert result.report.training["hyperparameters"]["method"] == method
    assert result.report.unlearning_seconds > 0
    if method == "ssd":
        assert result.trainer is None and result.history[0]["dampened_parameters"] > 0


def test_retrain_starts_from_scratch_and_learns_the_retain_set(trained_resnet, digits_data, tmp_path):
    config = _config(tmp_path, "retrain", num_train_epochs=8, learning_rate=1e-2)
    trainer = _trainer("retrain", copy.deepcopy(trained_resnet), config, digits_data)
    fresh = _state(trainer.model)
    torch.manual_seed(3407)
    expected = tiny_model("resnet", seed=3407)  # same config, same seed -> same initial weights
    assert any(not torch.equal(v, trained_resnet.state_dict()[k]) for k, v in fresh.items())
    assert all(torch.equal(v, fresh[k]) for k, v in expected.state_dict().items() if "num_batches" not in k)
    trainer.train()
    assert accuracy(predict_logits(trainer.model, digits_data.retain), digits_data.retain.labels) > 0.8


def test_method_defaults_follow_the_spec_and_explicit_values_win(tmp_path):
    finetune = method_config("finetune", output_dir=str(tmp_path))
    assert (finetune.optim, finetune.learning_rate, finetune.weight_decay, finetune.num_train_epochs) == (
        "sgd",
        1e-3,
        5e-4,
        5,
    )
    assert finetune.optim_args == "momentum=0.9"
    scrub = method_config("scrub", output_dir=str(tmp_path))
    assert (scrub.optim, scrub.learning_rate, scrub.scrub_temperature) == ("adamw_torch", 5e-4, 4.0)
    bad = method_config("bad_teacher", output_dir=str(tmp_path), learning_rate=3e-5)
    assert (bad.learning_rate, bad.bad_teacher_temperature, bad.retain_fraction) == (3e-5, 1.0, 0.3)
    assert set(_config(tmp_path, "ssd").method_hyperparameters()) >= {"ssd_alpha", "ssd_lambda"}


@pytest.mark.parametrize(
    "method, field, value",
    [
        ("neggrad_plus", "neggrad_beta", 0.0),
        ("salun", "salun_sparsity", 1.5),
        ("ssd", "ssd_alpha", -1),
        ("scrub", "scrub_temperature", 0),
        ("bad_teacher", "retain_fraction", 2.0),
    ],
)
def test_bad_fields_name_themselves(method, field, value, tmp_path):
    with pytest.raises(ValueError, match=f"`{field}` must be"):
        _config(tmp_path, method, **{field: value})


def test_unknown_methods_and_fields_are_named(tmp_path):
    with pytest.raises(ValueError, match="`method` must be one of"):
        method_config("magic")
    with pytest.raises(ValueError, match=r"\['alpha'\] are not fields of `ScrubConfig`"):
        method_config("scrub", alpha=2.0)


def test_each_method_declares_only_its_own_hyperparameters(tmp_path):
    own = {name: set(method_config(name, output_dir=str(tmp_path)).own_fields()) for name in BASELINES}
    assert own["neggrad_plus"] == {"neggrad_beta"} and own["salun"] == {"salun_sparsity"}
    assert own["ssd"] == {"ssd_alpha", "ssd_lambda"} and own["finetune"] == set()
    assert own["retrain"] == {"pretrained"}  # the weights a pretrained-regime retrain starts from
    assert own["scrub"] == {"scrub_temperature", "scrub_max_epochs", "scrub_ce_weight", "scrub_kl_weight"}
    for name, (config_class, run) in BASELINES.items():
        assert config_class.method == name
        assert not isinstance(run, type) or run.config_class is config_class
    ssd_fields = method_config("ssd", output_dir=str(tmp_path)).method_hyperparameters()
    assert "learning_rate" not in ssd_fields and ssd_fields["method"] == "ssd"


def test_scrub_max_pass_raises_the_forget_kl_and_returns_the_student(trained_resnet, digits_data, tmp_path):
    # Only max steps (no min pass would undo them): the KL to the original on the forget set must grow.
    config = _config(tmp_path, "scrub", num_train_epochs=1, scrub_max_epochs=1, max_steps=1, learning_rate=1e-3)
    trainer = _trainer("scrub", copy.deepcopy(trained_resnet), config, digits_data)
    trainer.train()
    before = predict_logits(trained_resnet, digits_data.forget)
    after = predict_logits(trainer.model, digits_data.forget)
    assert distillation_kl(after, before, 4.0) > 1e-3


def test_bad_teacher_targets_are_a_random_model_on_forget_rows_and_the_original_on_retain(
    trained_resnet, digits_data, tmp_path
):
    config = _config(tmp_path, "bad_teacher", max_steps=1)
    trainer = _trainer("bad_teacher", copy.deepcopy(trained_resnet), config, digits_data)
    trainer.train()
    stream, n_forget = trainer.train_dataset, len(digits_data.forget)
    assert len(stream) == n_forget + int(0.3 * len(digits_data.retain))
    retain_rows = torch.utils.data.Subset(stream, range(n_forget, len(stream)))
    assert torch.allclose(stream.teacher_logits[n_forget:], predict_logits(trained_resnet, retain_rows), atol=1e-5)
    forget_targets = stream.teacher_logits[:n_forget]
    assert accuracy(forget_targets, digits_data.forget.labels) < 0.5  # incompetent
    assert not torch.allclose(forget_targets, predict_logits(trained_resnet, digits_data.forget), atol=1e-2)


def test_distillation_kl_by_hand():
    teacher = torch.tensor([[0.0, 0.0]])
    student = torch.tensor([[2.0, 0.0]])
    # T = 2: p = (1/2, 1/2), q = softmax(1, 0); KL = sum p log(p/q), times T^2
    q = torch.softmax(torch.tensor([1.0, 0.0]), 0)
    expected = float((0.5 * torch.log(0.5 / q)).sum()) * 4
    assert float(distillation_kl(student, teacher, 2.0)) == pytest.approx(expected, rel=1e-6)


def test_ssd_dampening_by_hand():
    param = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    forget_importance = [torch.tensor([100.0, 1.0, 50.0])]
    all_importance = [torch.tensor([2.0, 1.0, 10.0])]
    # alpha 10: only the first is selected (100 > 20; 1 !> 10; 50 !> 100); factor min(1 * 2 / 100, 1) = 0.02
    assert dampen([param], forget_importance, all_importance, alpha=10.0, lam=1.0) == 1
    assert torch.allclose(param.detach(), torch.tensor([0.02, 2.0, 3.0]))


def test_salun_mask_keeps_the_requested_share_of_weights(trained_resnet, digits_data):
    masks = saliency_mask(copy.deepcopy(trained_resnet), digits_data.forget, sparsity=0.1)
    kept = sum(float(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    assert kept / total == pytest.approx(0.1, abs=0.01)


def test_salun_mask_never_holds_weights_of_zero_saliency():
    """By hand: half of the entries have a zero gradient; half the weights asked for. The threshold is 0 then,
    and the mask used to be all ones (SalUn at sparsity 0.5 ran as Random Labels in the tuning)."""
    grads = [torch.tensor([0.0, 3.0, 0.0]), torch.tensor([[0.0, -1.0], [0.0, 0.0]]), torch.tensor([2.0])]
    masks = top_share_mask(grads, 0.5)  # 8 entries: keep 4, of which 3 are non-zero
    assert [m.tolist() for m in masks] == [[0.0, 1.0, 0.0], [[0.0, 1.0], [0.0, 0.0]], [1.0]]
    assert [m.tolist() for m in top_share_mask(grads, 0.25)] == [
        [0.0, 1.0, 0.0],
        [[0.0, 0.0], [0.0, 0.0]],
        [1.0],
    ]


def test_salun_updates_only_salient_weights(trained_resnet, digits_data, tmp_path):
    config = _config(tmp_path, "salun", max_steps=2, weight_decay=0.0, salun_sparsity=0.05)
    trainer = _trainer("salun", copy.deepcopy(trained_resnet), config, digits_data)
    before = {n: p.detach().clone() for n, p in trained_resnet.named_parameters()}
    trainer.train()
    for (name, param), mask in zip(trainer.model.named_parameters(), trainer.saliency_mask, strict=True):
        moved = param.detach() != before[name]
        assert not (moved & (mask == 0)).any(), f"{name}: a weight outside the mask moved"
