"""The `lotus-hf` command end to end on a tiny model and a real image folder, and its errors."""

import json

import numpy as np
import pytest
import torch
from conftest import DIGIT_NAMES, save_tiny, tiny_model

from lotus_hf.cli import main


def test_unlearn_end_to_end_on_a_tiny_model(digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    out = tmp_path / "unlearned"
    code = main(
        [
            "unlearn",
            "--model",
            str(model_dir),
            "--dataset",
            str(digits_folder),
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--class-forgetting",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| unlearned |" in printed and "before epoch 1:" in printed  # the first probe, shown as it ran
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "report.json"} <= {
        p.name for p in out.iterdir()
    }
    report = json.loads((out / "report.json").read_text())
    assert set(report["rows"]) == {"original", "unlearned"}
    assert 0 < report["forget"]["size"] < 300
    assert report["unlearning_seconds"] > 0
    assert not [p for p in tmp_path.iterdir() if ".incomplete-" in p.name]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--forget-classes", "spaceship"], "`forget_classes` names 'spaceship'"),
        (["--forget-indices", "5,100000"], "outside the training split's range"),
        (["--forget-first-percent", "100"], "`forget_first_percent` must be in (0, 100)"),
        (["--forget-classes", ",".join(DIGIT_NAMES)], "covers the whole training split"),
        (["--alpha", "-1"], "`alpha` must be > 0"),
    ],
)
def test_bad_requests_exit_nonzero_with_a_clear_message(extra, message, digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    out = tmp_path / "out"
    code = main(
        [
            "unlearn",
            "--model",
            str(model_dir),
            "--dataset",
            str(digits_folder),
            "--output-dir",
            str(out),
            *extra,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".incomplete-" in p.name]


def test_output_folder_that_is_not_empty_is_refused(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["unlearn", "--output-dir", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_model_and_dataset(tmp_path, digits_folder, capsys):
    assert main(["unlearn", "--model", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    assert (
        main(
            [
                "unlearn",
                "--model",
                str(model_dir),
                "--dataset",
                "no-such-org/no-such-data",
                "--output-dir",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "could not be loaded" in capsys.readouterr().err


def test_model_labels_must_match_the_dataset(tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")  # digit labels vs Fashion-MNIST classes
    assert main(["unlearn", "--model", str(model_dir), "--output-dir", str(tmp_path / "o")]) == 2
    assert "labels do not match" in capsys.readouterr().err


def test_output_folder_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["unlearn", "--output-dir", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


def test_dataset_without_a_label_column(tmp_path, capsys):
    from PIL import Image

    flat = tmp_path / "flat"  # images with no class sub-folders: no label column
    flat.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(flat / f"{i}.png")
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    out = str(tmp_path / "o")
    assert main(["unlearn", "--model", str(model_dir), "--dataset", str(flat), "--output-dir", out]) == 2
    err = capsys.readouterr().err
    assert "no label column among ['image']" in err and "--label-column" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_dataset_without_an_image_column(tmp_path, capsys):
    table = tmp_path / "table"
    table.mkdir()
    (table / "train.csv").write_text("text,label\nhello,0\nworld,1\n")
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    out = str(tmp_path / "o")
    assert main(["unlearn", "--model", str(model_dir), "--dataset", str(table), "--output-dir", out]) == 2
    err = capsys.readouterr().err
    assert "no image column among ['text', 'label']" in err and "--image-column" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_interrupted_run_leaves_no_output_folder(digits_folder, trained_resnet, tmp_path):
    """A real `lotus-hf` process gets SIGINT while it trains: exit 130, no folder at --output-dir.
    (A trained model, a tiny learning rate and the paper's rule: the stop cannot end the run before the signal.)"""
    import os
    import signal
    import subprocess
    import sys

    model_dir = save_tiny(trained_resnet, tmp_path / "trained")
    out = tmp_path / "unlearned"
    command = [
        sys.executable,
        "-m",
        "lotus_hf.cli",
        "unlearn",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--epochs",
        "1000",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-6",
        "--stop-rule",
        "paper",
        "--output-dir",
        str(out),
    ]
    # A job started in the background (CI, nohup) inherits SIGINT ignored; give the child the default back.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    for line in process.stdout:  # wait until the second epoch's probe: training is under way
        lines.append(line)
        if "before epoch 2:" in line:
            break
    assert "before epoch 2:" in lines[-1], "".join(lines)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".incomplete-" in p.name]


def test_model_folder_unlearning_config_sets_defaults_and_flags_win(digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    (model_dir / "unlearning_config.json").write_text(
        json.dumps({"_why": "measured", "alpha": 3.0, "num_train_epochs": 1})
    )
    base = [
        "unlearn",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--batch-size",
        "64",
        "--class-forgetting",
    ]
    assert main([*base, "--output-dir", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "gives: alpha=3.0, num_train_epochs=1" in printed and "LoTUS: alpha 3.0, 1 epochs at most" in printed
    assert main([*base, "--epochs", "2", "--output-dir", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "unlearning_config.json (or the request) gives: alpha=3.0 (" in printed
    assert "LoTUS: alpha 3.0, 2 epochs at most" in printed

    # a seed the model recommends is the run's one seed: its request, its splits and its training alike
    (model_dir / "unlearning_config.json").write_text(json.dumps({"num_train_epochs": 1, "seed": 5}))
    fraction = ["unlearn", "--model", str(model_dir), "--dataset", str(digits_folder), "--forget-fraction", "0.1"]
    assert main([*fraction, "--batch-size", "64", "--output-dir", str(tmp_path / "seeded")]) == 0
    report = json.loads((tmp_path / "seeded" / "report.json").read_text())
    from lotus_hf import ForgetRequest, load_image_dataset, load_model, prepare_unlearning_data

    drawn = prepare_unlearning_data(
        load_image_dataset(str(digits_folder)),
        ForgetRequest.fraction(0.1, seed=5),
        load_model(str(model_dir))[1],
        seed=5,
    )
    assert (
        report["training"]["hyperparameters"]["seed"] == 5
        and report["forget"]["sha256"] == drawn.fingerprint["sha256"]
    )
    assert "gives: num_train_epochs=1, seed=5" in capsys.readouterr().out

    (model_dir / "unlearning_config.json").write_text(json.dumps({"alpah": 3.0}))
    assert main([*base, "--output-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "names fields its methods' configs lack, {'lotus': ['alpah']}" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def colour_digits_folder(tmp_path_factory):
    """The digits as 12x12 RGB PNGs (ink in red, background in blue), train/ and test/ by class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("colour")
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:360], digits.target[:360], strict=True)):
        ink = np.kron(np.clip(image * 16, 0, 255), np.ones((1, 1)))
        rgb = np.stack([ink, np.zeros_like(ink), 255 - ink], axis=-1).astype(np.uint8)
        folder = root / ("train" if i < 300 else "test") / DIGIT_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).resize((12, 12)).save(folder / f"{i}.png")
    return root


def test_train_fits_the_processor_to_rgb_data_and_retrains_like_it(colour_digits_folder, tmp_path, capsys):
    from transformers import AutoConfig, AutoImageProcessor

    original = tmp_path / "original"
    code = main(
        [
            "train",
            "--dataset",
            str(colour_digits_folder),
            "--model-config",
            "resnet-small",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--output-dir",
            str(original),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "train accuracy" in capsys.readouterr().out
    config = AutoConfig.from_pretrained(original)
    processor = AutoImageProcessor.from_pretrained(original)
    assert config.num_channels == 3 and processor.size == {"height": 12, "width": 12}
    assert len(processor.image_mean) == 3 and processor.image_mean[1] == 0.0  # no green in these images
    assert processor.image_mean[0] + processor.image_mean[2] == pytest.approx(1.0, abs=2e-3)  # red + blue = 255
    recipe = json.loads((original / "training_recipe.json").read_text())
    assert recipe["trained_on"] == "full training split" and recipe["train_samples"] == 300

    retrained = tmp_path / "retrained"
    code = main(
        [
            "train",
            "--dataset",
            str(colour_digits_folder),
            "--like",
            str(original),
            "--forget-classes",
            "digit-0",
            "--output-dir",
            str(retrained),
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads((retrained / "training_recipe.json").read_text())
    assert summary["trained_on"] == "retain set" and summary["forget"]["size"] == 300 - summary["train_samples"]
    assert summary["recipe"] == {**recipe["recipe"], "seed": summary["recipe"]["seed"]}
    assert AutoImageProcessor.from_pretrained(retrained).to_dict() == processor.to_dict()


def test_train_fine_tunes_the_bundled_vit_on_another_data_set_from_its_own_weights(digits_folder, tmp_path, capsys):
    """The digits ViT cells' models, in small: `--pretrained fashion-mnist-vit` keeps the bundled ViT's weights
    (trained by lotus-hf on Fashion-MNIST) under a new head for the digits, and the gold standard starts again from
    them. At learning rate 0 nothing moves, so every weight but the head's must equal the bundled model's."""
    from transformers import AutoModelForImageClassification

    from lotus_hf.loading import load_model

    bundled = load_model("fashion-mnist-vit")[0].state_dict()
    original, retrained = tmp_path / "original", tmp_path / "retrained"
    code = main(
        [
            "train",
            "--pretrained",
            "fashion-mnist-vit",
            "--dataset",
            str(digits_folder),
            "--image-size",
            "28",
            "--epochs",
            "1",
            "--learning-rate",
            "0",
            "--output-dir",
            str(original),
        ]
    )
    assert code == 0, capsys.readouterr().err
    code = main(
        [
            "train",
            "--like",
            str(original),
            "--dataset",
            str(digits_folder),
            "--forget-classes",
            "digit-3",
            "--output-dir",
            str(retrained),
        ]
    )
    assert code == 0, capsys.readouterr().err
    for folder in (original, retrained):
        model = AutoModelForImageClassification.from_pretrained(folder)
        assert model.config.id2label[3] == "digit-3" and model.config.num_labels == 10
        weights = model.state_dict()
        body = [k for k in weights if not k.startswith("classifier.")]
        assert len(body) == len(bundled) - 2 and all(torch.equal(weights[k], bundled[k]) for k in body)
        assert not torch.equal(weights["classifier.weight"], bundled["classifier.weight"])  # a new head
    recipe = json.loads((retrained / "training_recipe.json").read_text())
    assert recipe["recipe"]["pretrained"] == "fashion-mnist-vit" and recipe["forget"]["request"] == "classes=digit-3"


@pytest.mark.slow
def test_importing_lotus_hf_drops_deepspeeds_no_gpu_warning_only():
    import subprocess
    import sys

    pytest.importorskip("deepspeed")  # installed by `make test`; the warning comes with it
    if __import__("torch").cuda.is_available():
        pytest.skip("DeepSpeed warns only on machines without a GPU")
    code = "import {} deepspeed; import logging; logging.getLogger('DeepSpeed').warning('kept')"
    plain = subprocess.run([sys.executable, "-c", code.format("")], capture_output=True, text=True)
    ours = subprocess.run([sys.executable, "-c", code.format("lotus_hf,")], capture_output=True, text=True)
    assert "Setting accelerator to CPU" in plain.stderr + plain.stdout  # what DeepSpeed alone prints here
    assert "Setting accelerator to CPU" not in ours.stderr + ours.stdout
    assert "kept" in ours.stderr + ours.stdout  # DeepSpeed's other messages still show


def test_a_config_file_loads_a_whole_run_and_flags_override_it(digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    run = tmp_path / "run.yaml"
    run.write_text(
        f"model: {model_dir}\ndataset: {digits_folder}\nforget-classes: digit-2\nnum_train_epochs: 1\n"
        f"batch_size: 64\nlearning_rate: 3e-4\noutput_dir: {tmp_path / 'from-file'}\n"
    )
    assert main(["unlearn", "--config", str(run), "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "unlearning classes=digit-2 of" in printed
    assert (
        "Belief Relabel, lotus-hf's class forgetting (not the paper's; docs/method.md): 2 epochs at most, lr 0.0003"
        in printed
    )
    report = json.loads((tmp_path / "from-file" / "report.json").read_text())
    assert report["training"]["hyperparameters"]["per_device_train_batch_size"] == 64
    assert report["training"]["method"] == "belief_relabel"  # a class request's default

    (tmp_path / "bad.yaml").write_text("aplha: 3\n")
    assert main(["unlearn", "--config", str(tmp_path / "bad.yaml"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "unrecognized argument --aplha in `--config`" in capsys.readouterr().err


def test_a_config_files_values_are_typed_and_checked_like_flags(digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    run = tmp_path / "run.yaml"
    # YAML reads 1e-4 and 1e1 as strings, "no" as a string: the parser makes them a float and a bool
    run.write_text(
        f"model: {model_dir}\ndataset: {digits_folder}\nforget_classes: digit-2\nmethod: lotus\n"
        "learning_rate: 1e-4\n"
        f"alpha: 1e1\nclass_forgetting: 'no'\nepochs: 1\nbatch-size: 64\n"
    )
    assert main(["unlearn", "--config", str(run), "--output-dir", str(tmp_path / "a")]) == 0
    hyper = json.loads((tmp_path / "a" / "report.json").read_text())["training"]["hyperparameters"]
    assert (hyper["learning_rate"], hyper["alpha"], hyper["class_forgetting"]) == (1e-4, 10.0, False)
    capsys.readouterr()
    for line, message in [
        (
            "hub_token: hf_secret",
            "`hub_token` is not a flag of `lotus-hf unlearn`",
        ),  # never a token in a file
        ("alpha: many", "argument --alpha: invalid float value: 'many'"),
        ("push_to_hub: true", "`--push-to-hub` must be a Hub repo id, ORG/NAME, got 'true'"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"model: {model_dir}\ndataset: {digits_folder}\n{line}\n")
        assert main(["unlearn", "--config", str(bad), "--output-dir", str(tmp_path / "b")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "hf_secret" not in err, err
        assert not (tmp_path / "b").exists()


def test_help_lists_the_methods_own_fields_and_help_all_every_field(capsys):
    assert main(["unlearn", "--help"]) == 0  # the bundled ResNet's default for samples (its unlearning_config.json)
    short = capsys.readouterr().out
    assert "--method finetune" in short and "--forget-classes" in short and "--alpha" not in short
    assert main(["unlearn", "--method", "lotus", "--help"]) == 0
    short = capsys.readouterr().out
    assert "--alpha" in short and "--retain-fraction" in short and "--forget-classes" in short
    assert "--adam_beta1" not in short and "--scrub-temperature" not in short
    assert main(["unlearn", "--help-all"]) == 0
    assert "--adam_beta1" in capsys.readouterr().out
    assert main(["unlearn", "--method", "scrub", "--help"]) == 0
    scrub = capsys.readouterr().out
    assert "--scrub-temperature" in scrub and "--alpha" not in scrub and "(default: 4.0)" in scrub


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "scrub", "--alpha", "3"], "unrecognized argument --alpha. It is a field of --method lotus"),
        (["--forget-classes", "digit-1", "--forget-fraction", "0.1"], "cannot be combined"),
        (["--method", "magic"], "`method` must be one of ('lotus', 'belief_relabel', 'finetune',"),
        (["--epochs", "many"], "argument --num_train_epochs/--num-train-epochs/--epochs: invalid float value"),
    ],
)
def test_flags_that_do_not_fit_are_named(extra, message, tmp_path, capsys):
    assert main(["unlearn", "--output-dir", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_the_precedence_of_settings_is_a_library_function(tmp_path):
    from lotus_hf.methods import method_config
    from lotus_hf.requests import ForgetRequest

    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    (model_dir / "unlearning_config.json").write_text(
        json.dumps(
            {
                "lotus": {"alpha": 3.0, "num_train_epochs": 4, "classes": {"alpha": 64.0}},
                "belief_relabel": {"learning_rate": 5e-4},
            }
        )
    )
    out = str(tmp_path / "o")
    # defaults < the paper's class row (a class request with LoTUS) < the model's unlearning_config.json < flags
    config = method_config(
        "lotus", str(model_dir), ForgetRequest.classes(["digit-1"]), num_train_epochs=1, output_dir=out
    )
    assert (config.alpha, config.num_train_epochs, config.class_forgetting, config.learning_rate) == (
        64.0,
        1,
        True,
        1e-4,
    )
    assert config.retain_fraction == 0.3  # the paper's default
    samples = method_config("lotus", str(model_dir), ForgetRequest.first_percent(10), output_dir=out)
    assert (samples.alpha, samples.num_train_epochs, samples.class_forgetting) == (3.0, 4, False)
    explicit = method_config(
        "lotus", str(model_dir), ForgetRequest.classes(["digit-1"]), class_forgetting=False, output_dir=out
    )
    assert (explicit.class_forgetting, explicit.alpha) == (False, 3.0)  # whole classes forgotten as samples
    assert method_config("belief_relabel", str(model_dir), output_dir=out).learning_rate == 5e-4
    assert method_config("belief_relabel", output_dir=out).learning_rate == 1e-4  # its own default, LoTUS's
