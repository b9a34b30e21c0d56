"""What a run costs (lotus_hf.cost), counted the same way for every method, and the budget that stops it: hand-counted
passes of real runs on the tiny digits ResNet, a retraining counted as `retraining_cost` says, every method stopped
within its budget, checkpoints on the way, and the errors a budget without a retraining to measure it by gets."""

import copy

import pytest
import torch
from conftest import tiny_model, unlearning_config

from lotus_hf import UnlearningTrainer
from lotus_hf.cost import FORWARD, FORWARD_BACKWARD, CostMeter, retraining_cost
from lotus_hf.errors import ArgumentError
from lotus_hf.methods import METHODS, method_config
from lotus_hf.run import unlearn

TRAINED = [m for m in METHODS if m != "ssd"]  # SSD takes no step: one pass, counted whole, never stopped


def test_a_model_counts_once_per_example_whatever_its_layers_do():
    model = tiny_model("vit")  # a model whose own layers are modules with forward calls of their own
    # recomputation in the backward pass is not another example (transformers 5.24 renamed the method)
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    model.train()
    pixels = torch.zeros(6, 1, 8, 8)
    with CostMeter(model) as meter:
        model(pixel_values=pixels).logits.sum().backward()
        with torch.no_grad():
            model(pixel_values=pixels[:4])
    assert meter.units == 6 * FORWARD_BACKWARD + 4 * FORWARD
    model(pixel_values=pixels)  # outside the block: not counted
    assert meter.units == 6 * FORWARD_BACKWARD + 4 * FORWARD


@pytest.mark.parametrize("rule", ["paper", "bound"])
def test_lotus_costs_its_passes_and_its_training_rows(rule, trained_resnet, digits_data, tmp_path):
    """A run, pass by pass: the unseen set once (A_u), the stream once (cached teacher logits), the forget set at each
    probe (the bound rule: 60 of its samples, paced to at most 20% of the cost), and every row trained on, forward and
    backward.
    At learning rate 0 neither rule stops (paper: margin 0.99 below; bound: margin 0 with the forget accuracy above
    the unseen one, as the original's is), so every probe runs."""
    margin = 0.99 if rule == "paper" else 0.0
    config = unlearning_config(
        tmp_path,
        num_train_epochs=2,
        stop_margin=margin,
        retrain_epochs=15,
        stop_rule=rule,
        probe_share=0.2,
        probe_samples=60,
        learning_rate=0.0,
    )
    trainer = UnlearningTrainer(
        copy.deepcopy(trained_resnet),
        config,
        forget_dataset=digits_data.forget,
        retain_dataset=digits_data.retain,
        unseen_dataset=digits_data.unseen,
    )
    trainer.train()
    seen = sum(trainer.samples_seen().values())
    probes, probe_rows = len(trainer.history), len(trainer.probe_set())
    if rule == "paper":
        assert (probes, probe_rows) == (2, len(digits_data.forget))
    else:
        assert probe_rows == 60 and probes > 2  # inside epochs too
    assert seen == 2 * len(trainer.stream)
    expected = (len(digits_data.unseen) + len(trainer.stream) + probes * probe_rows) * FORWARD + (
        seen * FORWARD_BACKWARD
    )
    summary = trainer.cost.summary()
    assert summary["units"] == expected
    assert summary["parts"] == {"probes": probes * probe_rows}  # what the probes cost, apart
    if rule == "bound":  # paced: never more than their share of the run
        assert summary["parts"]["probes"] <= 0.2 * summary["units"]
    assert summary["retrain_units"] == retraining_cost(15, len(digits_data.retain)) == 3 * 15 * len(digits_data.retain)
    assert summary["share_of_retrain"] == pytest.approx(expected / summary["retrain_units"])
    # each probe records what the run had cost when it ran
    first_probe = len(digits_data.unseen) + len(trainer.stream) + probe_rows
    assert [e["cost"] for e in trainer.history][0] == first_probe


def test_a_retraining_costs_what_retraining_cost_says(trained_resnet, digits_data, tmp_path):
    config = method_config(
        "retrain",
        output_dir=str(tmp_path / "out"),
        num_train_epochs=2,
        use_cpu=True,
        disable_tqdm=True,
        retrain_epochs=2,
        per_device_train_batch_size=64,
    )
    result = unlearn(copy.deepcopy(trained_resnet), digits_data, config)
    cost = result.report.cost
    assert cost["units"] == cost["retrain_units"] == retraining_cost(2, len(digits_data.retain))
    assert cost["share_of_retrain"] == 1.0


@pytest.fixture(scope="module")
def class_data(digits):
    from conftest import tiny_processor

    from lotus_hf.data import prepare_unlearning_data
    from lotus_hf.requests import ForgetRequest

    return prepare_unlearning_data(digits, ForgetRequest.classes(["digit-3"]), tiny_processor(), seed=3407)


@pytest.mark.parametrize("method", TRAINED)
def test_every_method_stops_within_its_budget(method, trained_resnet, digits_data, class_data, tmp_path):
    """A budget of 4% of a 15-epoch retraining: a few steps of any method (each would run 10 epochs without it)."""
    budget = 0.04
    data = class_data if method == "belief_relabel" else digits_data
    config = method_config(
        method,
        output_dir=str(tmp_path / "out"),
        num_train_epochs=10,
        use_cpu=True,
        disable_tqdm=True,
        per_device_train_batch_size=32,
        retrain_epochs=15,
        budget=budget,
        **({"stop_margin": 0.99, "stop_rule": "paper"} if method == "lotus" else {}),
    )
    result = unlearn(copy.deepcopy(trained_resnet), data, config)
    cost, trainer = result.report.cost, result.trainer
    assert cost["stopped_by_budget"] and cost["within_budget"], cost  # the budget stopped it, within itself
    assert cost["units"] <= budget * cost["retrain_units"]
    assert trainer.state.global_step > 0 and trainer.state.epoch < 10  # it trained, and stopped early
    assert result.report.to_dict()["cost"] == cost  # in report.json as it is


def test_ssd_is_counted_and_told_when_over_budget(trained_resnet, digits_data, tmp_path):
    config = method_config("ssd", output_dir=str(tmp_path / "out"), use_cpu=True, retrain_epochs=15, budget=0.01)
    result = unlearn(copy.deepcopy(trained_resnet), digits_data, config)
    expected = FORWARD_BACKWARD * (2 * len(digits_data.forget) + len(digits_data.retain))  # I_forget, then I_all
    assert result.report.cost["units"] == expected
    assert result.report.cost["within_budget"] is False  # SSD's one pass cannot stop: the record says it ran over


def test_checkpoints_on_the_way_to_the_budget(trained_resnet, digits_data, tmp_path):
    config = method_config(
        "finetune",
        output_dir=str(tmp_path / "out"),
        num_train_epochs=10,
        use_cpu=True,
        disable_tqdm=True,
        per_device_train_batch_size=32,
        retrain_epochs=15,
        budget=0.06,
        budget_checkpoints=[0.02, 0.04],
    )
    result = unlearn(copy.deepcopy(trained_resnet), digits_data, config)
    taken = result.report.cost["checkpoints"]
    assert list(taken) == ["0.02", "0.04"]
    retrain = result.report.cost["retrain_units"]
    for share, at in taken.items():
        assert at["units"] <= float(share) * retrain
        assert (tmp_path / "out" / f"checkpoint-{at['step']}" / "model.safetensors").is_file()
    assert taken["0.02"]["step"] < taken["0.04"]["step"] < result.trainer.state.global_step


def test_a_checkpoint_keeps_room_for_the_probe_after_its_last_step(trained_resnet, digits_data, tmp_path):
    """LoTUS's paced probes run after a step, past the budget's look-ahead: the first one, a probe larger than a
    step, could carry a run over a mark (the ResNet tuning runs' 5% checkpoints landed at 5.05%). A first run says
    where the first paced probe lands; a mark placed right there must still be reached within itself."""

    def run(folder, **budget):
        config = unlearning_config(
            folder,
            num_train_epochs=4,
            stop_rule="bound",
            stop_margin=0.0,
            probe_share=0.05,  # the first probe after a step comes in the third epoch
            probe_samples=100,  # a probe of 100 forward rows costs more than a step (32 rows, forward and backward)
            learning_rate=0.0,  # never stops: the forget accuracy stays above the unseen one
            retrain_epochs=15,
            per_device_train_batch_size=32,
            **budget,
        )
        trainer = UnlearningTrainer(
            copy.deepcopy(trained_resnet),
            config,
            forget_dataset=digits_data.forget,
            retain_dataset=digits_data.retain,
            unseen_dataset=digits_data.unseen,
        )
        trainer.train()
        return trainer

    first = next(e for e in run(tmp_path / "free").history if e["probe"] > 0)  # the first probe after a step
    retrain = retraining_cost(15, len(digits_data.retain))
    share = (first["cost"] + 0.5) / retrain  # a mark at the units the run had spent once that probe ran
    trainer = run(tmp_path / "marked", budget=0.9, budget_checkpoints=[share])
    at = trainer.cost.summary()["checkpoints"][str(share)]
    assert at["units"] <= first["cost"], (at, first)
    assert first["cost"] - at["units"] < 2 * (100 + 3 * 32)  # at most one step and one probe earlier


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"budget": 0.1}, "`budget` needs `retrain_epochs`"),
        ({"budget": 0.0, "retrain_epochs": 30}, "`budget` must be > 0"),
        (
            {"budget": 0.1, "retrain_epochs": 30, "budget_checkpoints": [0.2]},
            "`budget_checkpoints` must be shares",
        ),
        ({"retrain_epochs": -1}, "`retrain_epochs` must be > 0"),
    ],
)
def test_a_budget_needs_a_retraining_to_measure_it_by(fields, message, tmp_path):
    with pytest.raises(ArgumentError, match=message):
        method_config("lotus", output_dir=str(tmp_path), **fields)


def test_the_progress_bar_counts_the_steps_the_budget_allows(trained_resnet, digits_data, tmp_path, capfd):
    """The bar's total follows the budget (about the steps it allows at the run's rate), not the epochs' step count
    the budget stops long before: it ends full, at the step the budget stopped."""
    config = method_config(
        "finetune",
        output_dir=str(tmp_path / "out"),
        num_train_epochs=10,
        use_cpu=True,
        per_device_train_batch_size=32,
        retrain_epochs=15,
        budget=0.04,
    )
    result = unlearn(copy.deepcopy(trained_resnet), digits_data, config)
    steps, epochs_steps = result.trainer.state.global_step, result.trainer.state.max_steps
    assert result.report.cost["stopped_by_budget"] and steps < epochs_steps
    bars = capfd.readouterr().err.replace("\r", "\n")
    assert f"{steps}/{steps} [" in bars and f"{steps}/{epochs_steps} [" not in bars
