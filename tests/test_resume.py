"""A killed `lotus-hf unlearn --save-steps N` continues with `--resume` and ends with the weights of a run that
was never interrupted (a real SIGKILL of a real process); an unfinished run's folder is never silently reused."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import save_tiny
from safetensors.torch import load_file

from lotus_hf.cli import main

ARGS = [
    "--epochs",
    "6",
    "--batch-size",
    "8",
    "--learning-rate",
    "1e-3",
    "--alpha",
    "8",
    "--class-forgetting",
    "--save-steps",
    "5",
]


def _command(model_dir, digits_folder, out, *extra):
    return [
        sys.executable,
        "-m",
        "lotus_hf.cli",
        "unlearn",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        *ARGS,
        "--output-dir",
        str(out),
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.deterministic  # two processes on one CPU: the same kernels
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(trained_resnet, digits_folder, tmp_path):
    model_dir = save_tiny(trained_resnet, tmp_path / "trained")
    reference = subprocess.run(
        _command(model_dir, digits_folder, tmp_path / "reference"), capture_output=True, text=True, timeout=600
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "killed"
    process = subprocess.Popen(
        _command(model_dir, digits_folder, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (out / "checkpoint-10" / "lotus_state.json").exists():  # two checkpoints done, mid-epoch
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert (out / "unfinished_run.json").is_file() and not (out / "model.safetensors").exists()

    # the same command again, without --resume: the folder is reported, never reused
    again = subprocess.run(_command(model_dir, digits_folder, out), capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "holds an unfinished run" in again.stderr and "add `--resume`" in again.stderr
    resumed = subprocess.run(
        _command(model_dir, digits_folder, out, "--resume"), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, got = (
        load_file(tmp_path / "reference" / "model.safetensors"),
        load_file(out / "model.safetensors"),
    )
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), name
    report = json.loads((out / "report.json").read_text())
    whole = json.loads((tmp_path / "reference" / "report.json").read_text())
    assert report["training"]["history"] == whole["training"]["history"]
    assert report["training"]["resumed_from"].startswith("checkpoint-")
    # finished: the model, its card and report; no checkpoint, no mark of an unfinished run, no pickle
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "report.json",
    }


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        ("none", ["--resume"], "holds no unfinished run (one started with `--save-steps`)"),
        (
            "unfinished",
            ["--forget-classes", "digit-2", "--resume"],
            "differs from this command in ['method', 'request',",
        ),
        ("unfinished", ["--method", "scrub", "--resume"], "differs from this command in ['method',"),
    ],
)
def test_resume_refuses_what_it_cannot_continue(setup, extra, message, digits_folder, tmp_path, capsys):
    from conftest import tiny_model

    from lotus_hf.saving import start_run_folder

    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    out = tmp_path / "out"
    if setup == "unfinished":
        record = {
            "model": str(model_dir),
            "dataset": str(digits_folder),
            "method": "lotus",
            "request": "first_percent=10.0",
            "sha256": "0" * 64,
            "seed": 3407,
        }
        start_run_folder(out, record)
    args = [
        "unlearn",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--epochs",
        "1",
        "--output-dir",
        str(out),
        *extra,
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "model.safetensors").exists()


def test_save_steps_are_for_lotus_runs(digits_folder, tmp_path, capsys):
    from conftest import tiny_model

    model_dir = save_tiny(tiny_model("resnet"), tmp_path / "tiny")
    args = [
        "unlearn",
        "--model",
        str(model_dir),
        "--dataset",
        str(digits_folder),
        "--method",
        "finetune",
        "--save-steps",
        "5",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    assert main(args) == 2
    assert "`--save-steps` and `--resume` are for LoTUS and Belief Relabel runs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
