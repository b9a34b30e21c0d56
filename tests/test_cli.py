"""The `lotus-hf` command end to end on a tiny model and a real image folder, and its errors."""

import json

import numpy as np
import pytest
from conftest import DIGIT_NAMES, save_tiny, tiny_model

from lotus_hf.cli import main


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """scikit-learn digits written as PNGs into an imagefolder (train/ and test/ by class)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:400], digits.target[:400], strict=True)):
        split = "train" if i < 300 else "test"
        folder = root / split / DIGIT_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image * 16, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def test_unlearn_end_to_end_on_a_tiny_model(digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    out = tmp_path / "unlearned"
    code = main(["unlearn", "--model", str(model_dir), "--dataset", str(digits_folder), "--epochs", "2",
                 "--batch-size", "32", "--class-forgetting", "--output-dir", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| unlearned |" in printed and "epoch 2:" in printed
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
    assert main(["unlearn", "--model", str(model_dir), "--dataset", "no-such-org/no-such-data",
                 "--output-dir", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "could not be loaded" in capsys.readouterr().err


def test_model_labels_must_match_the_dataset(tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")  # digit labels vs Fashion-MNIST classes
    assert main(["unlearn", "--model", str(model_dir), "--output-dir", str(tmp_path / "o")]) == 2
    assert "labels do not match" in capsys.readouterr().err
