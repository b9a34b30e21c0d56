"""`lotus-hf verify`: a verdict from the model's behaviour, a history its weights are checked against, receipts.

The controls of docs/verification.md on tiny ResNets trained on real digits: a model retrained without the forget
set is never called `not_forgotten`; the original, a learning-rate-0 run, a hand-edited history and weights
swapped back are (exit 1). A fraction request is found with the run's own flags; a receipt re-checks."""

import json
import shutil
import tempfile

import numpy as np
import pytest
from conftest import save_tiny
from tiny import DIGIT_NAMES, tiny_model, tiny_processor

import lotus_hf
from lotus_hf.cli import main
from lotus_hf.evidence import measurements_agree
from lotus_hf.images import preprocess
from lotus_hf.recipe import Recipe
from lotus_hf.requests import DEFAULT_SEED, ForgetRequest, stratified_halves
from lotus_hf.research.training import train_original

FORGOTTEN = "digit-7"


def _recipe(seed: int, config: str) -> Recipe:
    return Recipe(model_config=config, epochs=15, learning_rate=1e-2, batch_size=64, seed=seed)


@pytest.fixture(scope="module")
def models(digits, tmp_path_factory):
    """The original (trained on every digit) and models retrained without the digit 7 with the same recipe."""
    root = tmp_path_factory.mktemp("verify-models")
    config = root / "tiny-resnet.json"
    tiny_model("resnet").config.to_json_file(config)
    folders = {
        "original": root / "original",
        "retrained": root / "retrained",
        "reference": root / "reference",
    }
    train_original(digits, tiny_processor(), _recipe(0, str(config)), folders["original"], dataset_name="digits")
    for name, seed in (("retrained", 1), ("reference", 2)):
        train_original(
            digits,
            tiny_processor(),
            _recipe(seed, str(config)),
            folders[name],
            request=ForgetRequest.classes([FORGOTTEN]),
            dataset_name="digits",
        )
    return folders


def _verify(capsys, model, dataset, *flags) -> tuple[int, dict]:
    code = main(["verify", "--model", str(model), "--dataset", str(dataset), *flags, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the one JSON line, last


def _unlearn(model, dataset, out, *flags) -> None:
    code = main(
        [
            "unlearn",
            "--model",
            str(model),
            "--dataset",
            str(dataset),
            "--batch-size",
            "32",
            *flags,
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0


def test_a_model_retrained_without_the_class_is_not_called_not_forgotten(models, digits_parquet, capsys):
    code, result = _verify(capsys, models["retrained"], digits_parquet, "--forget-classes", FORGOTTEN)
    assert code in (0, 3) and result["verdict"] in ("forgotten", "inconclusive")
    assert result["step"] is None and result["weights_match"] is None  # no history: behaviour alone decides
    by_test = {e["test"]: e for e in result["evidence"]}
    assert by_test["class_predicted_train"]["statistic"] == 0 == by_test["class_predicted_heldout"]["statistic"]
    assert by_test["class_predicted_train"]["outcome"] == "forgotten"
    assert "body_kept" not in by_test  # no original to compare its weights with
    # against the original, its layers before the head share nothing with the original's
    code, result = _verify(
        capsys,
        models["retrained"],
        digits_parquet,
        "--forget-classes",
        FORGOTTEN,
        "--original",
        str(models["original"]),
    )
    body = next(e for e in result["evidence"] if e["test"] == "body_kept")
    assert (
        body["outcome"] == "forgotten"
        and body["details"]["body_change"] > 0.5
        and result["verdict"] != "not_forgotten"
    )


def test_the_original_and_every_forgery_of_an_unlearned_one_are_called_not_forgotten(
    models, digits_parquet, tmp_path, capsys
):
    request = ["--forget-classes", FORGOTTEN]
    code, result = _verify(capsys, models["original"], digits_parquet, *request)
    assert code == 1 and result["verdict"] == "not_forgotten"
    assert {e["test"]: e["outcome"] for e in result["evidence"]}["class_predicted_train"] == "not_forgotten"
    assert "NOT FORGOTTEN" in result["advice"]

    # a real unlearning run: its history holds the request and the hashes of the weights it produced
    unlearned = tmp_path / "unlearned"
    _unlearn(models["original"], digits_parquet, unlearned, *request, "--epochs", "10", "--learning-rate", "1e-3")
    code, result = _verify(capsys, unlearned, digits_parquet, *request)
    assert result["step"] == 1 and result["weights_match"] is True
    assert result["history"]["base_match"] is True  # the step started from the original's weights

    # the original with the unlearned model's history pasted into its config
    edited = tmp_path / "edited"
    shutil.copytree(models["original"], edited)
    config = json.loads((edited / "config.json").read_text())
    config["lotus_hf_unlearning"] = json.loads((unlearned / "config.json").read_text())["lotus_hf_unlearning"]
    (edited / "config.json").write_text(json.dumps(config))
    code, result = _verify(capsys, edited, digits_parquet, *request)
    assert code == 1 and result["step"] == 1 and result["weights_match"] is False
    assert any("not evidence" in note for note in result["history"]["notes"])

    # the unlearned model's folder with the original's weights put back
    swapped = tmp_path / "swapped"
    shutil.copytree(unlearned, swapped)
    shutil.copy(models["original"] / "model.safetensors", swapped / "model.safetensors")
    code, result = _verify(capsys, swapped, digits_parquet, *request)
    assert code == 1 and result["weights_match"] is False

    # a run at learning rate 0: an honest history (only BatchNorm statistics moved), and behaviour that gives it away
    unchanged = tmp_path / "lr0"
    _unlearn(models["original"], digits_parquet, unchanged, *request, "--epochs", "1", "--learning-rate", "0")
    code, result = _verify(capsys, unchanged, digits_parquet, *request)
    assert code == 1 and result["weights_match"] is True


def test_a_fraction_request_is_found_with_the_runs_own_flags(models, digits_parquet, tmp_path, capsys):
    out = tmp_path / "fraction"
    _unlearn(models["original"], digits_parquet, out, "--forget-fraction", "0.1", "--epochs", "1", "--seed", "5")
    code, result = _verify(capsys, out, digits_parquet, "--forget-fraction", "0.1")  # no --seed
    assert result["step"] == 1 and result["request"]["seed"] == 5 and result["weights_match"] is True
    report = json.loads((out / "report.json").read_text())
    assert result["request"]["fingerprint"]["sha256"] == report["forget"]["sha256"]
    # the run ended with the same verification on the same held-out data: the same verdict and statistics (as a
    # recheck compares them: the run measured the weights in memory, this the reloaded ones)
    assert report["verification"]["verdict"] == result["verdict"]
    assert [e["test"] for e in report["verification"]["evidence"]] == [e["test"] for e in result["evidence"]]
    for before, now in zip(report["verification"]["evidence"], result["evidence"], strict=True):
        assert measurements_agree(before, now), (before, now)
    assert "## Verification" in (out / "README.md").read_text()
    # Python gives the same result as the command
    same = lotus_hf.verify(str(out), str(digits_parquet), ForgetRequest.fraction(0.1)).to_dict()
    assert same["verdict"] == result["verdict"] and same["evidence"] == result["evidence"]
    # and so do data prepared in Python with the run's seed, which `verify` reads from them (README's example)
    request = ForgetRequest.fraction(0.1, seed=5)
    data = lotus_hf.prepare_unlearning_data(
        lotus_hf.load_image_dataset(str(digits_parquet)), request, lotus_hf.load_model(str(out))[1], seed=5
    )
    prepared = lotus_hf.verify(str(out), request=request, data=data).to_dict()
    assert prepared["verdict"] == result["verdict"] and prepared["evidence"] == result["evidence"]
    with pytest.raises(ValueError, match=r"`seed` \(6\) is not the seed"):
        lotus_hf.verify(str(out), request=request, data=data, seed=6)


def test_a_receipt_re_checks_and_shows_an_edit_or_other_weights(models, digits_parquet, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(models["retrained"], model)
    receipt = tmp_path / "receipt.json"
    code = main(
        [
            "verify",
            "--model",
            str(model),
            "--dataset",
            str(digits_parquet),
            "--forget-classes",
            FORGOTTEN,
            "--receipt",
            str(receipt),
        ]
    )
    printed = capsys.readouterr().out
    assert code in (0, 3) and "verdict:" in printed and "| class_predicted_train |" in printed
    kept = json.loads(receipt.read_text())
    assert kept["model"]["weights_sha256"] and kept["request"]["fingerprint"]["kind"] == "classes"
    assert kept["command"].startswith("lotus-hf verify --model") and "--seed 3407" in kept["command"]
    assert {"statistic", "interval", "threshold", "n_forget", "n_heldout"} <= set(kept["evidence"][0])
    assert main(["verify", "--recheck", str(receipt)]) == 0
    assert "receipt confirmed" in capsys.readouterr().out
    # the receipt file is never overwritten
    assert (
        main(
            [
                "verify",
                "--model",
                str(model),
                "--dataset",
                str(digits_parquet),
                "--forget-classes",
                FORGOTTEN,
                "--receipt",
                str(receipt),
            ]
        )
        == 2
    )
    assert "exists" in capsys.readouterr().err

    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**kept, "verdict": "forgotten" if kept["verdict"] != "forgotten" else "x"}))
    assert main(["verify", "--recheck", str(edited)]) == 1
    assert "edited after it was written" in capsys.readouterr().out

    shutil.copy(models["original"] / "model.safetensors", model / "model.safetensors")
    assert main(["verify", "--recheck", str(receipt)]) == 1
    assert "weights differ" in capsys.readouterr().out


@pytest.fixture(scope="module")
def mislabelled(digits, tmp_path_factory):
    """Digits with 40 training labels flipped (mislabelled samples to delete), an original that memorised them and
    two reference models trained without them."""
    import datasets

    root = tmp_path_factory.mktemp("mislabelled")
    rng = np.random.default_rng(0)
    flipped = np.sort(rng.choice(len(digits["train"]), 40, replace=False))
    labels = np.asarray(digits["train"]["label"])
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, 40)) % 10
    data = datasets.DatasetDict(
        {
            "train": digits["train"]
            .cast_column("label", datasets.Value("int64"))
            .remove_columns("label")
            .add_column("label", labels.tolist())
            .cast_column("label", datasets.ClassLabel(names=DIGIT_NAMES)),
            "test": digits["test"],
        }
    )
    folder = root / "data"
    for split in ("train", "test"):
        data[split].to_parquet(str(folder / f"{split}.parquet"))
    config = root / "tiny-resnet.json"
    tiny_model("resnet").config.to_json_file(config)
    request = ForgetRequest.indices(flipped.tolist())
    train_original(data, tiny_processor(), _recipe(0, str(config)), root / "original", dataset_name="digits")
    for seed in (1, 2, 3):
        train_original(
            data,
            tiny_processor(),
            _recipe(seed, str(config)),
            root / f"retrained-{seed}",
            request=request,
            dataset_name="digits",
        )
    return root, folder, ",".join(str(i) for i in flipped)


def test_reference_models_flag_memorised_samples_that_population_tests_miss(mislabelled, capsys):
    root, data, indices = mislabelled
    references = f"{root / 'retrained-1'},{root / 'retrained-2'}"
    request = ["--forget-indices", indices, "--reference-models", references]
    code, result = _verify(capsys, root / "original", data, *request)
    per_example = {e["test"]: e for e in result["evidence"]}["per_example"]
    assert code == 1 and per_example["outcome"] == "not_forgotten"
    assert per_example["details"]["flagged"] >= 20 and len(per_example["details"]["p_values"]) == 40
    # a third model retrained without them: no sample flagged
    code, result = _verify(capsys, root / "retrained-3", data, *request)
    per_example = {e["test"]: e for e in result["evidence"]}["per_example"]
    assert per_example["details"]["flagged"] == 0 and result["verdict"] != "not_forgotten"


def test_a_reference_trained_on_the_forget_set_is_refused(models, mislabelled, capsys):
    root, data, indices = mislabelled
    code = main(
        [
            "verify",
            "--model",
            str(root / "original"),
            "--dataset",
            str(data),
            "--forget-indices",
            indices,
            "--reference-models",
            str(models["retrained"]),
        ]
    )
    assert code == 2 and "was trained without another forget set" in capsys.readouterr().err


def test_a_model_unlearned_twice_keeps_both_steps_and_each_is_found(trained_resnet, digits_parquet, tmp_path, capsys):
    original = save_tiny(trained_resnet, tmp_path / "original")
    first, second = tmp_path / "first", tmp_path / "second"
    _unlearn(original, digits_parquet, first, "--forget-first-percent", "10", "--epochs", "2")
    later = ",".join(str(i) for i in range(1260, 1290))
    _unlearn(first, digits_parquet, second, "--forget-indices", later, "--epochs", "2", "--learning-rate", "1e-3")
    steps = json.loads((second / "config.json").read_text())["lotus_hf_unlearning"]
    assert [s["forget"]["request"] for s in steps] == ["first_percent=10.0", "indices (30 given)"]
    assert steps[1]["weights_before"] == steps[0]["weights_after"] != steps[1]["weights_after"]
    assert all(s["lotus_hf_version"] == lotus_hf.__version__ and s["seed"] == 3407 for s in steps)
    card = (second / "README.md").read_text()
    assert all(s["forget"]["sha256"] in card for s in steps)
    _, result = _verify(capsys, second, digits_parquet, "--forget-first-percent", "10")
    assert result["step"] == 1 and result["weights_match"] is True and result["history"]["chain_intact"] is True
    _, result = _verify(capsys, second, digits_parquet, "--forget-indices", later)
    assert result["step"] == 2
    _, result = _verify(capsys, second, digits_parquet, "--forget-classes", "digit-7")
    assert result["step"] is None


def test_bad_verify_input_names_the_argument(models, digits_parquet, tmp_path, capsys):
    assert main(["verify", "--dataset", str(digits_parquet), "--forget-classes", FORGOTTEN]) == 2
    assert "`--model`" in capsys.readouterr().err
    assert main(["verify", "--model", str(models["original"]), "--dataset", str(digits_parquet)]) == 2
    assert "deletion request" in capsys.readouterr().err
    bad = tmp_path / "not-a-receipt.json"
    bad.write_text("[1, 2]")
    assert main(["verify", "--recheck", str(bad)]) == 2
    assert "not a lotus-hf verification receipt" in capsys.readouterr().err
    with tempfile.TemporaryDirectory() as empty:
        assert main(["verify", "--model", empty, "--dataset", str(digits_parquet), "--forget-classes", "x"]) == 2


def _edited(source, folder, edit):
    """A copy of the model in `source` with its weights changed by `edit(model)`, saved to `folder`."""
    import torch

    model, processor = lotus_hf.load_model(str(source))
    with torch.no_grad():
        edit(model)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_a_model_broken_into_forgetting_is_told_apart_by_its_utility(models, digits_parquet, tmp_path, capsys):
    """Every weight of the original set to 0: every image gets the same output, so the forget set looks exactly like
    held-out data (`forgotten`), but the model no longer classifies anything: utility `damaged`, exit 4."""
    wrecked = _edited(models["original"], tmp_path / "wrecked", lambda m: [p.zero_() for p in m.parameters()])
    code, result = _verify(
        capsys, wrecked, digits_parquet, "--forget-first-percent", "10", "--original", str(models["original"])
    )
    assert result["verdict"] == "forgotten" and code == 4
    kept = result["utility"]
    assert kept["outcome"] == "damaged" and kept["accuracy"] < 0.3 < 0.8 < kept["original_accuracy"]
    assert kept["interval"][0] > kept["margin"] == 0.05
    code = main(
        [
            "verify",
            "--model",
            str(wrecked),
            "--dataset",
            str(digits_parquet),
            "--forget-first-percent",
            "10",
            "--original",
            str(models["original"]),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 4 and "utility: damaged" in printed and "no longer works" in printed


def test_a_class_whose_logit_is_masked_keeps_its_utility_and_is_caught_in_its_weights(
    models, digits_parquet, tmp_path, capsys
):
    """The forgotten class's logit pushed to -1e4 at the output: the class is never predicted again and the other
    classes are classified as before, so the utility is `kept`; its outputs look forgotten, but the layers before the
    head are the original's, so with the original at hand the `body_kept` test says `not_forgotten`."""
    seven = int(FORGOTTEN.split("-")[1])

    def mask(model):
        model.classifier[-1].bias[seven] = -1e4

    masked = _edited(models["original"], tmp_path / "masked", mask)
    _, result = _verify(
        capsys, masked, digits_parquet, "--forget-classes", FORGOTTEN, "--original", str(models["original"])
    )
    kept = result["utility"]
    assert kept["outcome"] == "kept" and kept["drop"] == pytest.approx(0.0, abs=0.02)
    by_test = {e["test"]: e for e in result["evidence"]}
    assert by_test["class_predicted_train"]["outcome"] == "forgotten"  # what the outputs show
    assert by_test["body_kept"]["details"]["body_change"] == 0.0 and by_test["body_kept"]["outcome"] == "not_forgotten"
    assert result["verdict"] == "not_forgotten" and "head edited only" in result["advice"]
    # without --original and without an unlearning history, there is nothing to compare with: no utility
    _, plain = _verify(capsys, masked, digits_parquet, "--forget-classes", FORGOTTEN)
    assert plain["utility"] is None


@pytest.fixture(scope="module")
def public_and_private(tmp_path_factory):
    """The digits cut three ways: the owner's data set (train: the first 300 images, few enough that a tiny ResNet
    knows them clearly better than unseen ones; test, public: the next 500) and the auditor's own held-out set (the
    other 997, which the owner never gets). The original trains on the owner's train split; the cheat trains on the
    public test split besides, so that the verifier's public held-out half is training data too; the half-cheat on
    the half of it that `verify` reads only."""
    import datasets
    from tiny import digits_dataset

    root = tmp_path_factory.mktemp("public-private")
    everything = digits_dataset()["train"].select(range(0)).features  # the features only
    whole = datasets.concatenate_datasets([digits_dataset()["train"], digits_dataset()["test"]])
    owner, auditor = root / "owner", root / "auditor"
    owner.mkdir()
    auditor.mkdir()
    whole.select(range(300)).cast(everything).to_parquet(str(owner / "train.parquet"))
    whole.select(range(300, 800)).cast(everything).to_parquet(str(owner / "test.parquet"))
    whole.select(range(800, len(whole))).cast(everything).to_parquet(str(auditor / "test.parquet"))
    config = root / "tiny-resnet.json"
    tiny_model("resnet").config.to_json_file(config)
    owner_data = lotus_hf.load_image_dataset(str(owner))
    train_original(owner_data, tiny_processor(), _recipe(0, str(config)), root / "original", dataset_name="owner")
    # the cheat: the owner's train and test splits together are its training split
    both = datasets.DatasetDict(
        {"train": datasets.concatenate_datasets([owner_data["train"], owner_data["test"]]), "test": owner_data["test"]}
    )
    train_original(both, tiny_processor(), _recipe(0, str(config)), root / "cheat", dataset_name="owner")
    # a cheat that knows the split, as the benchmark's `trained_on_heldout` control: the original fine-tuned on its
    # training images and the half of the test split that `verify` reads (seed 3407)
    _, read = stratified_halves(np.asarray(owner_data["test"]["label"]), DEFAULT_SEED)
    joined = datasets.concatenate_datasets([owner_data["train"], owner_data["test"].select(read)])
    original, processor = lotus_hf.load_model(str(root / "original"))
    cheat, _ = _recipe(0, str(config)).train(original, preprocess(joined, processor), root / "work")
    cheat.save_pretrained(root / "half-cheat")
    processor.save_pretrained(root / "half-cheat")
    return {
        "owner": owner,
        "auditor": auditor,
        "original": root / "original",
        "cheat": root / "cheat",
        "half-cheat": root / "half-cheat",
    }


def test_an_auditors_own_heldout_set_catches_a_model_trained_on_the_public_one(public_and_private, tmp_path, capsys):
    sets = public_and_private
    request = ["--forget-first-percent", "50"]  # 150 of the 300 training images
    # on the public half, the original is caught, and the cheat, which trained on that half too, is not
    code, original = _verify(capsys, sets["original"], sets["owner"], *request)
    assert original["verdict"] == "not_forgotten", original["evidence"]
    _, public = _verify(capsys, sets["cheat"], sets["owner"], *request)
    assert public["verdict"] != "not_forgotten", public["evidence"]
    # on the auditor's own held-out images, the cheat is caught
    receipt = tmp_path / "receipt.json"
    code, private = _verify(
        capsys, sets["cheat"], sets["owner"], *request, "--heldout", str(sets["auditor"]), "--receipt", str(receipt)
    )
    assert private["verdict"] == "not_forgotten" and code == 1
    assert all(e["n_heldout"] == 997 for e in private["evidence"])
    kept = json.loads(receipt.read_text())
    fingerprint = kept["dataset"]["heldout_fingerprint"]
    assert fingerprint["size"] == 997 and len(fingerprint["sha256"]) == 64 and str(sets["auditor"]) in kept["command"]
    # the same in Python
    same = lotus_hf.verify(
        str(sets["cheat"]), str(sets["owner"]), ForgetRequest.first_percent(50), heldout=str(sets["auditor"])
    ).to_dict()
    assert same["verdict"] == "not_forgotten" and same["dataset"]["heldout_fingerprint"] == fingerprint
    # a re-check needs the set again, and refuses another one
    assert main(["verify", "--recheck", str(receipt)]) == 2
    assert "pass it again with `heldout`" in capsys.readouterr().err
    assert main(["verify", "--recheck", str(receipt), "--heldout", str(sets["auditor"])]) == 0
    assert "receipt confirmed" in capsys.readouterr().out
    assert main(["verify", "--recheck", str(receipt), "--heldout", str(sets["owner"])]) == 2
    assert "is not the held-out set the receipt was verified on" in capsys.readouterr().err


def test_a_model_trained_on_the_half_of_the_test_split_verify_reads_is_told_from_its_other_half(
    public_and_private, capsys
):
    """The default verdict compares the held-out half it reads with the test split's other half: an owner who
    trained on the first only is caught there (`inconclusive`, with advice to bring held-out images); one who trained
    on the whole split is not (both halves are members alike: only `--heldout` catches it, above); an honest model
    passes."""
    sets = public_and_private
    request = ["--forget-first-percent", "50"]
    code, half = _verify(capsys, sets["half-cheat"], sets["owner"], *request)
    unseen = {e["test"]: e for e in half["evidence"] if e["test"].startswith("heldout_unseen")}
    assert set(unseen) == {"heldout_unseen_gap", "heldout_unseen_auc"}
    assert all(e["statistic"] > e["expected"] for e in unseen.values()), unseen  # its half is known better
    assert any(e["outcome"] == "inconclusive" and e["interval"][0] > e["threshold"] for e in unseen.values()), unseen
    assert half["verdict"] == "inconclusive" and code == 3 and "`--heldout`" in half["advice"]
    for honest in ("original", "cheat"):
        _, found = _verify(capsys, sets[honest], sets["owner"], *request)
        outcomes = {e["test"]: e["outcome"] for e in found["evidence"] if e["test"].startswith("heldout_unseen")}
        assert outcomes == {"heldout_unseen_gap": "forgotten", "heldout_unseen_auc": "forgotten"}, honest
    # on the auditor's own set there is no twin half to compare with, and the test is not run
    _, private = _verify(capsys, sets["half-cheat"], sets["owner"], *request, "--heldout", str(sets["auditor"]))
    assert not [e for e in private["evidence"] if e["test"].startswith("heldout_unseen")]
    assert private["verdict"] == "not_forgotten"


def test_a_history_naming_another_base_model_is_not_compared_with(models, digits_parquet, tmp_path, capsys):
    """A masked class logit with a forged history that names another model as its base: compared with that model,
    its body would look changed and its utility measured against the wrong model. The history records the weights
    the run started from, and these are not that model's, so the verdict uses neither and says to pass `--original`;
    with the original passed, the weight test catches the edit."""
    from lotus_hf.provenance import HISTORY_KEY, history_step, weights_sha256

    seven = int(FORGOTTEN.split("-")[1])
    original, _ = lotus_hf.load_model(str(models["original"]))
    before = weights_sha256(original)

    def forge(model):
        model.classifier[-1].bias[seven] = -1e4
        step = history_step(
            {"kind": "classes"},
            method="lotus",
            settings={},
            base_model=str(models["reference"]),
            before=before,
            after=weights_sha256(model),
            seed=3407,
            dataset=str(digits_parquet),
        )
        setattr(model.config, HISTORY_KEY, [step])

    forged = _edited(models["original"], tmp_path / "forged", forge)
    _, result = _verify(capsys, forged, digits_parquet, "--forget-classes", FORGOTTEN)
    assert result["utility"] is None and "body_kept" not in {e["test"] for e in result["evidence"]}
    assert any("Pass `--original`" in note for note in result["notes"])
    _, checked = _verify(
        capsys, forged, digits_parquet, "--forget-classes", FORGOTTEN, "--original", str(models["original"])
    )
    assert checked["verdict"] == "not_forgotten" and checked["utility"]["outcome"] == "kept"
