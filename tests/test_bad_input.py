"""Bad input gets a clear error (exit 2) that names the input and the fix, with nothing written: broken
weights, files that are not images, empty splits, a retrained model for another request, huge index files,
a model whose outputs are NaN."""

import json

import numpy as np
import pytest
import torch
from conftest import save_tiny, tiny_model

from lotus_hf.cli import main


def _run(capsys, tmp_path, *args) -> tuple[int, str]:
    code = main(["unlearn", "--output-dir", str(tmp_path / "out"), "--epochs", "1", "--batch-size", "64", *args])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def _nothing_written(tmp_path):
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".incomplete-" in p.name]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_broken_weights(damage, digits_folder, tmp_path, capsys):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    weights = model_dir / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x01\x02not safetensors")
    code, printed = _run(capsys, tmp_path, "--model", str(model_dir), "--dataset", str(digits_folder))
    assert code == 2 and "Traceback" not in printed
    assert f"`model` {str(model_dir)!r}: its weights cannot be read" in printed
    assert "truncated or corrupt; download or save the model again" in printed
    _nothing_written(tmp_path)


@pytest.mark.parametrize("damage", ["not an image", "truncated"])
def test_an_image_that_cannot_be_read_is_named(damage, digits_folder, tmp_path, capsys):
    import shutil

    from PIL import Image

    folder = tmp_path / "images"
    shutil.copytree(digits_folder, folder)
    bad = folder / "train" / "digit-3" / "broken.png"
    if damage == "not an image":
        bad.write_text("hello")
    else:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:200])
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    code, printed = _run(capsys, tmp_path, "--model", str(model_dir), "--dataset", str(folder))
    assert code == 2 and "Traceback" not in printed
    assert f"the image {str(bad)!r} cannot be read" in printed and "remove it from the data set" in printed
    _nothing_written(tmp_path)


def test_an_empty_split(tmp_path, capsys):
    """A data set whose test split has no rows (a parquet file with none)."""
    import datasets

    names = [f"digit-{i}" for i in range(10)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    folder = tmp_path / "table"
    folder.mkdir()
    from PIL import Image

    images = [Image.fromarray(np.full((8, 8), 12 * i, dtype=np.uint8)) for i in range(20)]
    datasets.Dataset.from_dict({"image": images, "label": [i % 10 for i in range(20)]}, features=features).to_parquet(
        str(folder / "train.parquet")
    )
    datasets.Dataset.from_dict({"image": [], "label": []}, features=features).to_parquet(str(folder / "test.parquet"))
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    code, printed = _run(capsys, tmp_path, "--model", str(model_dir), "--dataset", str(folder))
    assert code == 2 and "Traceback" not in printed
    assert f"`dataset` {str(folder)!r} has a split with no data" in printed
    _nothing_written(tmp_path)


def test_a_retrained_model_for_another_request_is_refused_and_one_without_a_record_warned(
    digits_folder,
    tmp_path,
    capsys,
):
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    other = save_tiny(tiny_model("resnet", seed=1), tmp_path / "retrained-other")
    (other / "training_recipe.json").write_text(
        json.dumps({"recipe": {}, "forget": {"request": "classes=digit-9", "size": 30, "sha256": "0" * 64}})
    )
    base = ["--model", str(model_dir), "--dataset", str(digits_folder), "--forget-classes", "digit-1"]
    code, printed = _run(capsys, tmp_path, *base, "--retrained", str(other))
    assert code == 2 and "Traceback" not in printed
    assert "was trained without another forget set (classes=digit-9, 30 samples)" in printed
    assert "train one for this request" in printed
    _nothing_written(tmp_path)

    unrecorded = save_tiny(tiny_model("resnet", seed=2), tmp_path / "retrained-unrecorded")
    code, printed = _run(capsys, tmp_path, *base, "--retrained", str(unrecorded))
    assert code == 0
    assert "warning: `retrained`" in printed and "records no forget request: it is taken to be trained" in printed
    assert "avg_gap" in printed  # the run went on, with the retrained model in the report


def test_an_index_file_longer_than_the_training_split_is_refused_before_it_is_read_whole(
    digits_folder,
    tmp_path,
    capsys,
):
    huge = tmp_path / "indices.txt"
    with huge.open("w") as handle:  # 2 million lines, against 300 training samples
        for _ in range(20):
            handle.write("1\n" * 100_000)
    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    code, printed = _run(
        capsys,
        tmp_path,
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--forget-indices-file",
        str(huge),
    )
    assert code == 2 and "Traceback" not in printed
    assert "`--forget-indices-file` holds more than 300 indices, more than the training split has samples" in printed
    _nothing_written(tmp_path)


def test_a_model_whose_outputs_are_nan(digits_folder, tmp_path, capsys):
    model = tiny_model("resnet")
    with torch.no_grad():
        model.classifier[-1].weight.fill_(float("nan"))
    model_dir = save_tiny(model, tmp_path / "nan")
    code, printed = _run(capsys, tmp_path, "--model", str(model_dir), "--dataset", str(digits_folder))
    assert code == 2 and "Traceback" not in printed
    assert "the model's outputs on the data set are NaN or infinite before any unlearning" in printed
    _nothing_written(tmp_path)


def test_a_split_without_rows_given_from_python():
    import datasets
    from tiny import digits_dataset, tiny_processor

    from lotus_hf.data import prepare_unlearning_data
    from lotus_hf.errors import DataError
    from lotus_hf.requests import ForgetRequest

    full = digits_dataset(100)
    empty = datasets.DatasetDict({"train": full["train"], "test": full["test"].select([])})
    with pytest.raises(DataError, match="a split of the data set is empty"):
        prepare_unlearning_data(empty, ForgetRequest.first_percent(10), tiny_processor())


def test_an_output_folder_appears_whole_or_not_at_all_and_a_replaced_build_survives_a_failed_rebuild(
    tmp_path,
):
    from lotus_hf.saving import atomic_output_dir

    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_output_dir(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_output_dir(target) as staging:
        (staging / "v1.txt").write_text("1")
    with pytest.raises(ValueError), atomic_output_dir(target):  # not empty, and not asked to replace
        pass
    with pytest.raises(RuntimeError), atomic_output_dir(target, replace=True) as staging:
        (staging / "v2.txt").write_text("2")
        raise RuntimeError("interrupted")
    assert [p.name for p in target.iterdir()] == ["v1.txt"]
    with atomic_output_dir(target, replace=True) as staging:
        (staging / "v2.txt").write_text("2")
    assert [p.name for p in target.iterdir()] == ["v2.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]
