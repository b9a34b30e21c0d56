"""The verifier's stop (lotus_hf.verified_stop): the verifier's own tests on the calibration half end a run of any
method as soon as they say `forgotten`, and never otherwise; the final verdict still reads the other half."""

import copy

import pytest
import torch
from conftest import tiny_model, tiny_processor

from lotus_hf.data import prepare_unlearning_data
from lotus_hf.errors import ArgumentError
from lotus_hf.methods import method_config
from lotus_hf.requests import ForgetRequest
from lotus_hf.run import unlearn


def _config(method, tmp_path, **fields):
    extra = {"stop_rule": "paper", "stop_margin": 0.99} if method == "lotus" else {}  # LoTUS's own stop: never
    return method_config(
        method,
        output_dir=str(tmp_path / "out"),
        num_train_epochs=3,
        use_cpu=True,
        disable_tqdm=True,
        per_device_train_batch_size=32,
        stop_when_verified=True,
        verify_check_share=0.3,
        **extra,
        **fields,
    )


@pytest.mark.parametrize("method", ["finetune", "lotus"])
def test_a_model_that_cannot_tell_inputs_apart_is_stopped_at_the_first_check(method, digits_data, tmp_path):
    """All weights 0: every feature is 0, so only the head's bias can learn and every image gets the same output.
    The forget set then looks exactly like the calibration half (same accuracy per class, tied confidences): the
    verifier says `forgotten` at the first check, and the run ends there."""
    model = tiny_model("resnet")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    result = unlearn(model, digits_data, _config(method, tmp_path))
    training, trainer = result.report.training, result.trainer
    checks = training["verified_checks"]
    assert [c["verdict"] for c in checks] == ["forgotten"] and training["stopped_by"] == "verified"
    assert checks[0]["step"] == trainer.state.global_step > 0  # the first check (after an update), then no step
    # the first step where the check fits 30% of the run's cost: it ran at the step where it fit, not before
    check = result.report.cost["parts"]["checks"]
    assert check <= 0.3 * result.report.cost["units"]
    assert result.report.verification["verdict"] == "forgotten"  # and so says the other half


def test_a_model_that_still_knows_the_class_runs_its_course(trained_resnet, digits, tmp_path):
    """Learning rate 0 on a class request: the original still predicts the class on its training images at every
    check, so the verifier never says `forgotten` and all epochs run; the checks, paced, take at most 30% of the
    run's cost."""
    data = prepare_unlearning_data(digits, ForgetRequest.classes(["digit-3"]), tiny_processor(), seed=3407)
    result = unlearn(copy.deepcopy(trained_resnet), data, _config("finetune", tmp_path, learning_rate=0.0))
    checks, trainer = result.report.training["verified_checks"], result.trainer
    assert len(checks) >= 3 and all(c["verdict"] == "not_forgotten" for c in checks)
    assert all(c["class_predicted_train"] > 0.5 for c in checks)
    assert trainer.state.epoch == 3 and result.report.training["stopped_by"] is None
    # the checks' forward passes count in the run's cost: each reads the forget set and the calibration half (both
    # under 1000 rows here), beside Finetune's 3 epochs over the retain set, forward and backward
    check_rows, units = len(data.forget) + len(data.unseen), result.report.cost["units"]
    assert units == 3 * 3 * len(data.retain) + len(checks) * check_rows
    assert result.report.cost["parts"] == {"checks": len(checks) * check_rows}  # and apart, for their share
    assert len(checks) * check_rows <= 0.3 * units < (len(checks) + 1) * check_rows + 0.3 * 3 * 32  # as many as fit


def test_the_check_settings_are_checked(tmp_path):
    with pytest.raises(ArgumentError, match="`verify_check_share` must be in \\(0, 1\\)"):
        method_config("finetune", output_dir=str(tmp_path), verify_check_share=0)
    with pytest.raises(ArgumentError, match="`verify_samples` must be >= 2"):
        method_config("finetune", output_dir=str(tmp_path), verify_samples=1)
