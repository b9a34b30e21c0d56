"""The Hub, end to end, against a local server that speaks its API (tests/hub_server.py).

The real huggingface_hub / transformers / datasets clients and the real `lotus-hf` command run in
subprocesses with HF_ENDPOINT pointed at the server (the clients read it when they are imported)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hub_server import TOKEN, HubServer, client_env
from hub_server import cli as _cli
from hub_server import download as _download
from hub_server import python as _python

TESTS = Path(__file__).resolve().parent
EXPECTED_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "report.json"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubServer() as server:
        server.env = client_env(server, tmp_path_factory.mktemp("hf_home"))
        _python(
            server.env,
            """
from tiny import digits_image_dataset, tiny_model, tiny_processor
for kind in ("vit", "resnet"):
    model = tiny_model(kind)
    model.push_to_hub(f"me/tiny-{kind}")
    tiny_processor().push_to_hub(f"me/tiny-{kind}")
digits_image_dataset().push_to_hub("me/tiny-digits")
from transformers import AutoConfig, AutoModelForImageClassification
config = AutoConfig.from_pretrained("me/tiny-vit")
config.id2label = {i: f"class-{i}" for i in range(10)}
config.label2id = {v: k for k, v in config.id2label.items()}
AutoModelForImageClassification.from_config(config).push_to_hub("me/other-labels")
tiny_processor().push_to_hub("me/other-labels")
""",
        )
        yield server


@pytest.mark.parametrize("kind", [pytest.param("vit", marks=pytest.mark.slow), "resnet"])
def test_unlearn_a_hub_model_by_name_and_push_it(kind, hub, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "out"
    settings = tmp_path / "settings.json"  # two steps: the probes get half of them, so that one runs (default 5%)
    settings.write_text('{"probe_share": 0.5}')
    run = _cli(
        hub.env,
        "--config",
        str(settings),
        "--model",
        f"me/tiny-{kind}",
        "--dataset",
        "me/tiny-digits",
        "--forget-classes",
        "digit-3",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--output-dir",
        str(out),
        "--push-to-hub",
        f"me/tiny-{kind}-unlearned",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "pushed to" in run.stdout and TOKEN not in run.stdout + run.stderr
    # class mode's probes say what its stop rule reads
    assert "epoch 1, after step 1: forget acc " in run.stdout and "forget called members" in run.stdout

    assert set(hub.files(f"me/tiny-{kind}-unlearned")) == EXPECTED_FILES  # never forget-set data
    copy = _download(hub.env, f"me/tiny-{kind}-unlearned", tmp_path / "copy")
    assert (copy / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()

    card = ModelCard.load(copy / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == f"me/tiny-{kind}" and data["datasets"] == ["me/tiny-digits"]
    assert {"lotus-hf", "machine-unlearning", "image-classification"} <= set(data["tags"])
    metrics = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    report = json.loads((out / "report.json").read_text())
    assert metrics["acc_forget"] == pytest.approx(report["rows"]["unlearned"]["acc_forget"], abs=1e-6)
    assert report["forget"]["sha256"] in card.text and "digit-3: " in card.text
    assert (
        "| `method` | belief_relabel |" in card.text
        and "transformers " in card.text
        and "@inproceedings{" in card.text
    )
    assert "Unlearning took" in card.text
    config = json.loads((copy / "config.json").read_text())
    assert [step["base_model"] for step in config["lotus_hf_unlearning"]] == [f"me/tiny-{kind}"]
    assert TOKEN not in "".join(p.read_text(errors="ignore") for p in out.iterdir())
    # no sample data: neither the forgotten images' ids nor their pixels are in the card or the report
    from sklearn.datasets import load_digits

    forgotten = np.flatnonzero(load_digits().target[:300] == 3)
    texts = card.content + (out / "report.json").read_text()
    assert ", ".join(map(str, forgotten[:3])) not in texts and ",".join(map(str, forgotten[:3])) not in texts
    assert "pixel" not in texts.lower()


@pytest.mark.slow
def test_unlearning_again_keeps_the_chain(hub, tmp_path):
    first = _cli(
        hub.env,
        "--model",
        "me/tiny-vit",
        "--dataset",
        "me/tiny-digits@main",
        "--forget-classes",
        "digit-1",
        "--epochs",
        "1",
        "--output-dir",
        str(tmp_path / "a"),
        "--push-to-hub",
        "me/vit-step-1",
        "--private",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert hub.state.repos[("model", "me/vit-step-1")].private  # and the token lets step 2 read it
    second = _cli(
        hub.env,
        "--model",
        "me/vit-step-1",
        "--dataset",
        "me/tiny-digits",
        "--forget-classes",
        "digit-2",
        "--epochs",
        "1",
        "--output-dir",
        str(tmp_path / "b"),
        "--push-to-hub",
        "me/vit-step-2",
    )
    assert second.returncode == 0, second.stderr[-3000:]
    from huggingface_hub import ModelCard

    copy = _download(hub.env, "me/vit-step-2", tmp_path / "copy")
    card = ModelCard.load(copy / "README.md")
    assert card.data.base_model == "me/vit-step-1"
    steps = json.loads((copy / "config.json").read_text())["lotus_hf_unlearning"]
    assert [s["base_model"] for s in steps] == ["me/tiny-vit", "me/vit-step-1"]
    assert [s["forget"]["request"] for s in steps] == ["classes=digit-1", "classes=digit-2"]
    assert all(s["forget"]["sha256"] in card.text for s in steps)

    # an auditor verifies the requests on the Hub id: the verdict from behaviour, the history checked against the
    # weights of the commit it read
    def verify(*request):
        command = [
            sys.executable,
            "-m",
            "lotus_hf.cli",
            "verify",
            "--model",
            "me/vit-step-2",
            "--dataset",
            "me/tiny-digits",
            *request,
        ]
        return subprocess.run(command, env=hub.env, capture_output=True, text=True, timeout=300)

    found = verify("--forget-classes", "digit-2")
    assert found.returncode in (0, 1, 3), found.stderr[-2000:]
    assert "this request: step 2 of 2; the weights are the last step's: yes" in found.stdout
    commit = hub.state.repos[("model", "me/vit-step-2")].commits[-1]["oid"]
    assert f"(commit {commit})" in found.stdout and "verdict: " in found.stdout
    missing = verify("--forget-classes", "digit-9")
    assert missing.returncode in (0, 1, 3) and "this request: not in it" in missing.stdout


@pytest.mark.slow
def test_a_model_revision_is_loaded_and_recorded(hub, tmp_path):
    commit = hub.state.repos[("model", "me/tiny-resnet")].commits[-1]["oid"]
    run = _cli(
        hub.env,
        "--model",
        f"me/tiny-resnet@{commit}",
        "--dataset",
        "me/tiny-digits",
        "--forget-classes",
        "digit-4",
        "--epochs",
        "1",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "base_model: me/tiny-resnet\n" in card and f"me/tiny-resnet@{commit}" in card


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, env_change, message",
    [
        (["--model", "me/no-such-model"], {}, "`model` 'me/no-such-model' does not exist on the Hub"),
        (["--model", "me/tiny-vit@no-such-revision"], {}, "`revision` 'no-such-revision' does not exist"),
        (["--model", "me/tiny-vit", "--dataset", "me/no-such-data"], {}, "`dataset` 'me/no-such-data' could not"),
        (["--model", "me/other-labels"], {}, "labels do not match"),
        (["--model", "me/tiny-vit", "--push-to-hub", "me/never"], {"HF_TOKEN": None}, "needs a Hugging Face token"),
        (["--model", "me/tiny-vit", "--push-to-hub", "me/never"], {"HF_TOKEN": "hf_wrong"}, "refused the token"),
    ],
)
def test_hub_errors_are_clear_and_leave_nothing(args, env_change, message, hub, tmp_path):
    env = {k: v for k, v in {**hub.env, **env_change}.items() if v is not None}
    repos_before = hub.repo_ids()
    out = tmp_path / "out"
    defaults = ["--dataset", "me/tiny-digits"] if "--dataset" not in args else []
    run = _cli(env, *args, *defaults, "--forget-classes", "digit-0", "--epochs", "1", "--output-dir", str(out))
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
    assert hub.repo_ids() == repos_before


@pytest.mark.slow
def test_trainer_push_to_hub_from_python(hub, tmp_path):
    """The Python path: `UnlearningTrainer(..., processing_class=...)`, `train()`, `push_to_hub()`."""
    from huggingface_hub import ModelCard

    _python(
        hub.env,
        f"""
from lotus_hf import ForgetRequest, UnlearningConfig, UnlearningTrainer, load_image_dataset, prepare_unlearning_data
from lotus_hf.loading import load_model

model, processor = load_model("me/tiny-resnet")
data = prepare_unlearning_data(load_image_dataset("me/tiny-digits"), ForgetRequest.classes(["digit-5"]), processor)
# push_to_hub=True, as transformers users set it: Trainer makes the repo; the push is one commit at the end
config = UnlearningConfig(output_dir={str(tmp_path / "out")!r}, num_train_epochs=1, class_forgetting=True,
                          per_device_train_batch_size=64, hub_model_id="me/python-push", use_cpu=True,
                          push_to_hub=True, save_strategy="epoch")
trainer = UnlearningTrainer(model, config, forget_dataset=data.forget, retain_dataset=data.retain,
                            unseen_dataset=data.unseen, processing_class=processor)
trainer.lineage.forget, trainer.lineage.dataset = data.fingerprint, "me/tiny-digits"
trainer.train()
print("commit:", trainer.push_to_hub())
""",
    )
    files = hub.files("me/python-push")
    # exactly the model, never a checkpoint (one was saved per epoch) nor a pickle
    assert set(files) == {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"}
    commits = hub.state.repos[("model", "me/python-push")].commits  # the repo's creation, then one upload
    assert [c["summary"] for c in commits] == ["initial commit", "Upload unlearned model (lotus-hf)"]
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == "me/tiny-resnet" and "lotus-hf" in card.data.tags
    assert "classes=digit-5" in card.text
    steps = json.loads(files["config.json"])["lotus_hf_unlearning"]
    assert steps[-1]["forget"]["sha256"] in card.text and steps[-1]["dataset"] == "me/tiny-digits"


@pytest.mark.slow
def test_fit_head_makes_a_model_of_other_classes_the_original(hub, tmp_path):
    out = tmp_path / "out"
    run = _cli(
        hub.env,
        "--model",
        "me/other-labels",
        "--dataset",
        "me/tiny-digits",
        "--fit-head",
        "--fit-head-epochs",
        "1",
        "--forget-classes",
        "digit-6",
        "--epochs",
        "1",
        "--output-dir",
        str(out),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "fitting a new head for 10 classes" in run.stdout and "head fitted" in run.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["6"] == "digit-6"
    assert config["lotus_hf_unlearning"][-1]["base_model"] == "me/other-labels"
