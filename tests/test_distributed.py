"""Two processes (torchrun and `accelerate launch`, gloo on CPU) take the same per-epoch decisions as one
process and train on exactly as many forget and retain samples."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "distributed_unlearn.py"
FSDP_CPU = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: NO_WRAP
  fsdp_reshard_after_forward: true
  fsdp_state_dict_type: FULL_STATE_DICT
num_machines: 1
num_processes: 2
mixed_precision: "no"
use_cpu: true
"""


def _run(launcher: list[str], batch: int, weights: Path, out: Path, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*launcher, str(SCRIPT), str(out), str(batch), str(weights), *extra]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def _torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


@pytest.fixture(scope="module")
def weights(trained_resnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("original") / "original.pt"
    torch.save(trained_resnet.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def one_process(weights, tmp_path_factory):
    return _run(_torchrun(1), 32, weights, tmp_path_factory.mktemp("one") / "one.json")


def _assert_same_outcome(one: dict, two: dict) -> None:
    assert two["world"] == 2
    assert one["stopped_at_epoch"] is not None
    assert two["stopped_at_epoch"] == one["stopped_at_epoch"]
    # every rank saw the whole forget set and took the same decisions
    assert two["histories"][0] == two["histories"][1]
    first_one, first_two = one["histories"][0][0], two["histories"][0][0]
    assert first_one["forget_accuracy"] == first_two["forget_accuracy"]  # probe of the same original
    assert first_one["unseen_accuracy"] == first_two["unseen_accuracy"]
    # as many forget and retain rows trained on over all processes as in one process
    assert two["seen"] == one["seen"] and one["seen"]["forget"] > 0


def test_two_ddp_processes_reach_the_same_stop_epoch_as_one(weights, one_process, tmp_path):
    two = _run(_torchrun(2), 16, weights, tmp_path / "two.json")  # same global batch
    assert two["strategy"] == "DistributedType.MULTI_CPU" and two["student"] == "DistributedDataParallel"
    _assert_same_outcome(one_process, two)


@pytest.mark.slow
@pytest.mark.parametrize("teacher", ["cached-teacher", "live-teacher"])
def test_an_fsdp_config_on_cpu_falls_back_to_ddp_and_matches_one_process(
    teacher, weights, one_process, tmp_path
):
    # accelerate 1.15 turns FSDP on only for accelerators (MULTI_GPU/NPU/XPU/...): on CPU processes the same
    # launch runs as MULTI_CPU data parallelism. FSDP sharding itself needs a GPU (benchmarks/scale.py).
    config = tmp_path / "fsdp.yaml"
    config.write_text(FSDP_CPU)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    two = _run(launcher, 16, weights, tmp_path / "two.json", teacher)
    assert two["strategy"] == "DistributedType.MULTI_CPU"
    assert (two["teacher"] is not None) == (teacher == "live-teacher")
    _assert_same_outcome(one_process, two)


@pytest.mark.slow
def test_the_cli_under_torchrun_writes_one_model(tmp_path):
    from conftest import save_tiny, tiny_model

    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    digits = _digits_folder(tmp_path / "digits")
    out = tmp_path / "unlearned"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*_torchrun(2), "-m", "lotus_hf.cli", "unlearn", "--model", str(model_dir), "--dataset", str(digits),
           "--epochs", "2", "--batch-size", "16", "--class-forgetting", "--output-dir", str(out)]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("saved the unlearned model") == 1
    assert {"model.safetensors", "config.json", "README.md", "report.json"} <= {p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if ".incomplete-" in p.name]


def _digits_folder(root: Path) -> Path:
    import numpy as np
    from conftest import DIGIT_NAMES
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:400], digits.target[:400], strict=True)):
        folder = root / ("train" if i < 300 else "test") / DIGIT_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image * 16, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root
