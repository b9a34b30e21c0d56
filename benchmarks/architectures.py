"""Each image-classifier family on CPU: images/s of a LoTUS step against a plain fine-tuning step of the same
model, and a LoTUS run on 2 CPU processes (DDP through `accelerate launch`) whose saved model reloads with
`AutoModelForImageClassification` and the model's own image processor.

    .venv/bin/python benchmarks/architectures.py                     # every family but timm
    .venv-timm/bin/python benchmarks/architectures.py --only timm    # timm needs its own venv (make test-timm)

Models: lotus_hf.research.architectures at `--width 32` on 64x64 RGB images, random init, 10 classes; synthetic
images for the step timing (batch 32; 15 rounds of 10 steps of each mode back to back, after a warm-up round; the
ratio is the median of the rounds' ratios); the DDP run unlearns the first 10% of the digits (scikit-learn's, as
grey PNGs) for 2 epochs, with the stop rule out of reach (`--stop-margin 0.99`) so that a random model trains.
A LoTUS step: the student's forward and backward on a batch of the forget/retain stream against cached teacher
logits; the per-epoch probe and the one-off teacher pass are outside the steps, as they are outside a
fine-tuning step. Each run updates its
families' rows in benchmarks/results/architectures.{json,md}; `--ddp-only` and `--steps-only` rerun one part.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BATCH, STEPS, ROUNDS, IMAGE, CLASSES = 32, 10, 15, 64, 10


def _data(rows: int, seed: int):
    import torch

    from lotus_hf.images import PixelDataset

    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(rows, 3, IMAGE, IMAGE, generator=generator)
    return PixelDataset(pixels, torch.randint(0, CLASSES, (rows,), generator=generator))


def step_times(family: str, width: int) -> dict:
    """Median seconds of a LoTUS step and of a plain fine-tuning step of one model, measured in alternation."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from lotus_hf import UnlearningConfig, UnlearningTrainer
    from lotus_hf.distributed import to_channels_last
    from lotus_hf.recipe import classifier_loss
    from lotus_hf.research.architectures import build_family
    from lotus_hf.stream import collate

    names = [f"class-{i}" for i in range(CLASSES)]
    model, _ = build_family(family, names, image_size=IMAGE, width=width)
    to_channels_last(model, "cpu")  # the layout UnlearningTrainer trains in, for both modes alike
    forget, retain, unseen = _data(BATCH * STEPS, 1), _data(BATCH * STEPS * 4, 2), _data(256, 3)
    times: dict[str, list[float]] = {"lotus": [], "finetune": []}

    class Clock(TrainerCallback):
        def __init__(self, mode):
            self.mode = mode

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times[self.mode].append(time.perf_counter() - self.start)

    def run(mode: str, keep: bool) -> None:
        with tempfile.TemporaryDirectory() as output_dir:
            train(mode, keep, output_dir)

    def train(mode: str, keep: bool, output_dir: str) -> None:
        common = dict(
            output_dir=output_dir,
            per_device_train_batch_size=BATCH,
            max_steps=STEPS,
            logging_strategy="no",
            disable_tqdm=True,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            learning_rate=1e-4,
            max_grad_norm=0.0,
            seed=0,
        )
        clock = [Clock(mode)] if keep else []
        if mode == "finetune":
            args = TrainingArguments(**common, remove_unused_columns=False, lr_scheduler_type="constant")
            trainer = Trainer(
                model=model,
                args=args,
                train_dataset=retain,
                data_collator=collate,
                callbacks=clock,
                compute_loss_func=classifier_loss,  # DeiT's distillation head has no loss
            )
        else:  # the paper's class mode: its target accuracy is 0, so the stop rule never ends a random model's run
            args = UnlearningConfig(**common, retain_fraction=0.3, class_forgetting=True)
            trainer = UnlearningTrainer(
                model, args, forget_dataset=forget, retain_dataset=retain, unseen_dataset=unseen, callbacks=clock
            )
        trainer.train()

    torch.manual_seed(0)
    for mode in ("finetune", "lotus"):
        run(mode, keep=False)  # warm-up: allocator, oneDNN kernels
    ratios = []  # per round: the two modes' median steps, measured back to back
    for _ in range(ROUNDS):
        for mode in ("finetune", "lotus"):
            run(mode, keep=True)
        ratios.append(statistics.median(times["finetune"][-STEPS:]) / statistics.median(times["lotus"][-STEPS:]))
    lotus, finetune = statistics.median(times["lotus"]), statistics.median(times["finetune"])
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "model_class": type(model).__name__,
        "lotus_images_per_second": BATCH / lotus,
        "finetune_images_per_second": BATCH / finetune,
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
    }


def digits_folder(root: Path) -> Path:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:600], digits.target[:600], strict=True)):
        folder = root / ("train" if i < 450 else "test") / f"digit-{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image * 16, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def ddp_run(family: str, width: int, work: Path, data: Path) -> dict:
    """`lotus-hf unlearn` on 2 CPU processes (DDP); the saved model reloaded with the Auto classes."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from lotus_hf.research.architectures import build_family

    model, processor = build_family(family, [f"digit-{i}" for i in range(10)], image_size=IMAGE, width=width)
    source, out = work / f"{family}-original", work / f"{family}-unlearned"
    model.save_pretrained(source)
    processor.save_pretrained(source)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "--cpu",
        "-m",
        "lotus_hf.cli",
        "unlearn",
        "--model",
        str(source),
        "--dataset",
        str(data),
        "--forget-first-percent",
        "10",
        "--stop-margin",
        "0.99",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--output-dir",
        str(out),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"ddp": False, "ddp_error": done.stderr[-1500:], "ddp_seconds": seconds}
    reloaded = AutoModelForImageClassification.from_pretrained(out, use_safetensors=True).eval()
    processor = AutoImageProcessor.from_pretrained(out)
    from PIL import Image

    pixels = processor([Image.new("RGB", (8, 8))] * 2, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = reloaded(pixel_values=pixels).logits
        changed = not torch.equal(logits, model.eval()(pixel_values=pixels).logits)
    report = json.loads((out / "report.json").read_text())
    epochs = len(report["training"]["history"])
    ok = bool(torch.isfinite(logits).all()) and type(reloaded) is type(model) and changed and epochs == 2
    return {
        "ddp": ok,
        "ddp_seconds": seconds,
        "ddp_epochs": epochs,
        "ddp_changed": changed,
        "ddp_notes": report.get("notes", []),
    }


def render(rows: dict) -> str:
    from lotus_hf.evaluation import markdown_table
    from lotus_hf.research.architectures import FAMILIES

    lines = [
        "# Every family: LoTUS step vs plain fine-tuning step, and DDP on 2 CPU processes\n",
        "Commands: `.venv/bin/python benchmarks/architectures.py` and, for timm, "
        "`.venv-timm/bin/python benchmarks/architectures.py --only timm`. Random-init models of "
        "lotus_hf.research.architectures (`--width 32`), 64x64 RGB images, batch 32, CPU fp32; images/s is the "
        "median of 150 steps per mode, in 15 rounds of 10 steps of each mode back to back in one process (the "
        "ratio is the median of the 15 rounds' ratios, with their range), no gradient clipping in either "
        "(UnlearningConfig's default), the model in the memory layout "
        "UnlearningTrainer trains it in (channels-last for convolutional models, unless "
        "`_compat.channels_last_breaks`). DDP: `accelerate launch "
        "--num_processes 2 --cpu -m lotus_hf.cli unlearn` of the first 10% of the digits (grey PNGs, converted to "
        "RGB) for 2 epochs with the stop rule out of reach, then the saved folder reloaded with "
        "`AutoModelForImageClassification` and `AutoImageProcessor`, its logits finite and not the original's. "
        "Unlearn (sample and class), save-reload and push of every family: tests/test_architectures.py.\n",
    ]
    header = [
        "family",
        "model class",
        "parameters",
        "LoTUS images/s",
        "fine-tuning images/s",
        "LoTUS / fine-tuning (range)",
        "DDP, 2 processes",
        "torch",
        "measured",
    ]
    table = []
    for family in FAMILIES:
        row = rows.get(family)
        if row is None:
            continue
        ddp = f"yes, {row.get('ddp_epochs', '?')} epochs" if row.get("ddp") else "**no**"
        low, high = row.get("ratio_range", [row["ratio"], row["ratio"]])
        table.append(
            [
                family,
                row["model_class"],
                f"{row['parameters']:,}",
                f"{row['lotus_images_per_second']:.0f}",
                f"{row['finetune_images_per_second']:.0f}",
                f"{row['ratio']:.3f}x ({low:.2f}-{high:.2f})",
                f"{ddp} ({row['ddp_seconds']:.0f} s)",
                row["torch"],
                row["date"],
            ]
        )
    lines.append(markdown_table(header, table))
    return "\n".join(lines) + "\n"


def main() -> None:
    from lotus_hf.research.architectures import FAMILIES, timm_available

    parser = argparse.ArgumentParser()
    default = [f for f in FAMILIES if f != "timm" or timm_available()]
    parser.add_argument("--only", default=",".join(default), help=f"comma-separated families of {list(FAMILIES)}")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--ddp-only", action="store_true", help="rerun only the DDP part of the families' rows")
    parser.add_argument("--steps-only", action="store_true", help="rerun only the step timing of the rows")
    args = parser.parse_args()
    families = args.only.split(",")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"--only names unknown families {unknown}; pick from {', '.join(FAMILIES)}")
    import torch

    path = RESULTS / "architectures.json"
    results = json.loads(path.read_text()) if path.exists() else {"rows": {}}
    with tempfile.TemporaryDirectory(prefix="lotus-hf-architectures-") as work:
        data = digits_folder(Path(work) / "digits")
        for family in families:
            if args.ddp_only:
                row = {**results["rows"][family], **ddp_run(family, args.width, Path(work), data)}
            elif args.steps_only:
                row = {**results["rows"][family], **step_times(family, args.width)}
                row.update(torch=torch.__version__, date=time.strftime("%Y-%m-%d"), width=args.width)
            else:
                row = {**step_times(family, args.width), **ddp_run(family, args.width, Path(work), data)}
                row.update(torch=torch.__version__, date=time.strftime("%Y-%m-%d"), width=args.width)
            results["rows"][family] = row
            print(family, {k: v for k, v in row.items() if k != "ddp_error"}, flush=True)
            if not row["ddp"]:
                print(row.get("ddp_error", ""), flush=True)
            RESULTS.mkdir(exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(results, indent=2) + "\n")
            tmp.replace(path)
            tmp = RESULTS / "architectures.md.tmp"
            tmp.write_text(render(results["rows"]))
            tmp.replace(RESULTS / "architectures.md")
    print(render(results["rows"]))


if __name__ == "__main__":
    main()
