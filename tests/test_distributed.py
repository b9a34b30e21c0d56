"""Two processes (torchrun, gloo on CPU) take the same per-epoch decisions as one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).parent / "distributed_unlearn.py"


def _run(nproc: int, batch: int, weights: Path, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(SCRIPT), str(out), str(batch), str(weights)]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_reach_the_same_stop_epoch_as_one(trained_resnet, tmp_path):
    weights = tmp_path / "original.pt"
    torch.save(trained_resnet.state_dict(), weights)
    one = _run(1, 32, weights, tmp_path / "one.json")
    two = _run(2, 16, weights, tmp_path / "two.json")  # same global batch
    assert two["world"] == 2
    assert one["stopped_at_epoch"] is not None
    assert two["stopped_at_epoch"] == one["stopped_at_epoch"]
    # every rank saw the whole forget set and took the same decisions
    assert two["histories"][0] == two["histories"][1]
    first_one, first_two = one["histories"][0][0], two["histories"][0][0]
    assert first_one["forget_accuracy"] == first_two["forget_accuracy"]  # probe of the same original
    assert first_one["unseen_accuracy"] == first_two["unseen_accuracy"]
