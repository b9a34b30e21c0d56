"""Model cards: rendered with huggingface_hub from templates/model_card.md, parsed back by `ModelCard`."""

import pytest
from huggingface_hub import ModelCard

from lotus_hf.cards import unlearning_card
from lotus_hf.methods import method_config
from lotus_hf.provenance import history_step

FORGET = {
    "kind": "classes",
    "request": "classes=Sandal",
    "size": 6000,
    "per_class": {"Sandal": 6000},
    "sha256": "ab" * 32,
}
REPORT = {
    "rows": {
        "original": {"acc_forget": 1.0, "acc_retain": 1.0, "acc_test": 0.91, "mia": 0.98, "rf_jsd": 0.03, "jsd": None},
        "unlearned": {
            "acc_forget": 0.125,
            "acc_retain": 0.99,
            "acc_test": 0.85,
            "mia": 0.25,
            "rf_jsd": 0.2,
            "jsd": None,
        },
    },
    "unlearning_seconds": 12.345,
}
PROBES = [
    {"epoch": 1, "forget_accuracy": 1.0, "unseen_accuracy": 0.0, "delta": 1.0, "tau": 2.7183, "stop": False},
    {"epoch": 2, "forget_accuracy": 0.004, "unseen_accuracy": 0.0, "delta": 0.0, "tau": 1.0, "stop": False},
    {"epoch": 3, "forget_accuracy": 0.0, "unseen_accuracy": 0.0, "delta": -0.01, "tau": 0.99, "stop": True},
]


def _card(tmp_path, method="lotus", report=REPORT, history=PROBES, **fields):
    config = method_config(method, output_dir=str(tmp_path), **fields)
    previous = history_step(
        {**FORGET, "request": "classes=Bag", "sha256": "cd" * 32},
        method="lotus",
        settings={},
        base_model="me/original",
        before="1" * 64,
        after="2" * 64,
        seed=3407,
        dataset="me/data",
    )
    this = history_step(
        FORGET,
        method=method,
        settings={},
        base_model="me/step-1@v2",
        before="2" * 64,
        after="3" * 64,
        seed=3407,
        dataset="fashion_mnist",
    )
    lineage = [previous, this]
    card = unlearning_card(
        model_name="step-2",
        base_model="me/step-1@v2",
        config=config,
        forget=FORGET,
        report=report,
        lineage=lineage,
        dataset="fashion_mnist",
        history=history,
    )
    path = tmp_path / "README.md"
    card.save(path)
    return ModelCard.load(path)


def test_a_lotus_card_parses_and_says_what_was_done(tmp_path):
    card = _card(tmp_path, alpha=32.0)
    data = card.data
    assert data.base_model == "me/step-1" and data.base_model_relation == "finetune"
    assert data.datasets == ["me/data", "zalando-datasets/fashion_mnist"]  # every step's data set, on the Hub
    assert set(data.tags) == {"lotus-hf", "machine-unlearning", "image-classification"}
    assert data.library_name == "transformers" and data.pipeline_tag == "image-classification"
    # model-index: the unlearned model's finite metrics, as EvalResults
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"acc_forget": 0.125, "acc_retain": 0.99, "acc_test": 0.85, "mia": 0.25, "rf_jsd": 0.2}
    assert {r.dataset_type for r in data.eval_results} == {"zalando-datasets/fashion_mnist"}
    text = card.text
    assert "**me/step-1@v2** after *machine unlearning* with [LoTUS]" in text
    assert "Here the stop rule ended training at the probe before epoch 3." in text
    assert (
        "| 1 | me/original | lotus | classes=Bag | 6000 | `" + "cd" * 32 + "` | `111111111111` | `222222222222` |"
        in text
    )  # the history, oldest first, with the weights' hashes
    assert "| 2 | me/step-1@v2 | lotus | classes=Sandal | 6000 | `" + "ab" * 32 + "` | `222222222222` |" in text
    assert "| per class | Sandal: 6000 |" in text
    assert "| `alpha` | 32.0 |" in text and "| `method` | lotus |" in text
    assert "| 3 | - | 0.0000 | 0.0000 | -0.01 | 0.9900 | stop |" in text  # the probes
    assert "Unlearning took 12.3 s" in text
    assert "| unlearned | 0.1250 | 0.9900 | 0.8500 | 0.2500 | 0.2000 | - |" in text  # no retrained model: no JSD
    assert "- transformers " in text and "- torch " in text and "@inproceedings{spartalis2025lotus" in text


def test_the_outcome_when_the_stop_rule_does_not_fire_or_fires_inside_an_epoch(tmp_path):
    card = _card(tmp_path, history=PROBES[:2])
    assert "Here its 2 probes never fired the stop rule: the run ended at its epochs or its budget." in card.text
    inside = [PROBES[0], {**PROBES[2], "epoch": 1, "probe": 1, "step": 7}]  # the bound rule's, after a step
    card = _card(tmp_path / "inside", history=inside)
    assert "Here the stop rule ended training in epoch 1, at the probe after step 7." in card.text


def test_a_baseline_card_says_it_is_a_baseline_and_has_no_probes(tmp_path):
    card = _card(tmp_path, method="scrub", history=[{"epoch": 1}, {"epoch": 2}])
    assert "with the `scrub` baseline of lotus-hf" in card.text and "not with LoTUS" in card.text
    assert "Per-epoch probe" not in card.text and "stop rule" not in card.text
    assert "| `scrub_temperature` | 4.0 |" in card.text


def test_an_unevaluated_run_has_no_model_index(tmp_path):
    card = _card(tmp_path, report={}, history=[])
    assert card.data.eval_results is None and "model-index" not in card.content
    assert "Not evaluated." in card.text and "Unlearning took - s" in card.text


@pytest.mark.parametrize("base, expected", [("fashion-mnist-resnet", None), ("me/model@abc", "me/model")])
def test_the_base_model_field_only_names_hub_repos(tmp_path, base, expected):
    config = method_config("lotus", output_dir=str(tmp_path))
    card = unlearning_card(
        model_name="m",
        base_model=base,
        config=config,
        forget=FORGET,
        report=REPORT,
        lineage=[
            history_step(
                FORGET, method="lotus", settings={}, base_model=base, before="1" * 64, after="2" * 64, seed=3407
            )
        ],
        history=[],
    )
    assert card.data.base_model == expected
