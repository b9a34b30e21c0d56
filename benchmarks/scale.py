"""Throughput and peak memory of LoTUS at scale: images/s of a LoTUS step and of a plain fine-tuning step, and
peak memory with the cached teacher (default) and with a live teacher.

    .venv/bin/python benchmarks/scale.py --device cpu    # CPU counterpart: a smaller ViT on 64x64 images
    python benchmarks/scale.py --device cuda             # GPU: ViT-B/16-sized, 224x224, bf16 (under 5 min)

Models are randomly initialised from a `ViTConfig` (no download), images are synthetic. Each mode runs in its
own process, so its peak memory is its own: on CPU the peak RSS (`ru_maxrss`) and its rise above the RSS
measured just before the trainer is built; on GPU `torch.cuda.max_memory_allocated`. Writes
benchmarks/results/scale-<device name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SETTINGS = {
    # device: (hidden, layers, heads, intermediate, image size, patch, images, batch, steps)
    "cuda": (768, 12, 12, 3072, 224, 16, 4096, 64, 40),
    "cpu": (512, 8, 8, 2048, 64, 16, 1024, 32, 12),
}
MODES = ("lotus-cached-teacher", "lotus-live-teacher", "plain-finetune")


def _rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def model_and_data(device: str):
    """The randomly initialised ViT of `SETTINGS[device]` and synthetic forget, retain and unseen sets."""
    import torch
    from transformers import AutoModelForImageClassification, ViTConfig

    from lotus_hf.images import PixelDataset

    hidden, layers, heads, inter, size, patch, images, batch, steps = SETTINGS[device]
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=size,
        patch_size=patch,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        num_labels=10,
    )
    model = AutoModelForImageClassification.from_config(config)
    pixels = torch.randn(images, 3, size, size)
    labels = torch.randint(0, 10, (images,))
    n_forget = images // 10
    forget, retain = (
        PixelDataset(pixels[:n_forget], labels[:n_forget]),
        PixelDataset(pixels[n_forget:], labels[n_forget:]),
    )
    unseen = PixelDataset(torch.randn(images // 4, 3, size, size), torch.randint(0, 10, (images // 4,)))
    return model, forget, retain, unseen


def measure(device: str, mode: str) -> dict:
    """One mode in this process: build, train `steps` steps, report step times and peak memory."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from lotus_hf import UnlearningConfig, UnlearningTrainer
    from lotus_hf.stream import collate

    hidden, layers, heads, inter, size, patch, images, batch, steps = SETTINGS[device]
    model, forget, retain, unseen = model_and_data(device)
    step_times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - self.start)

    common = dict(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=256,
        max_steps=steps,
        logging_strategy="no",
        disable_tqdm=True,
        report_to="none",
        save_strategy="no",
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        seed=0,
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mib()
    if mode == "plain-finetune":
        args = TrainingArguments(
            **common, learning_rate=1e-4, remove_unused_columns=False, lr_scheduler_type="constant"
        )
        trainer = Trainer(model=model, args=args, train_dataset=retain, data_collator=collate, callbacks=[Clock()])
    else:
        # class-forgetting mode: the target accuracy is 0, so the stop rule never ends a random model's run
        cached = mode == "lotus-cached-teacher"
        args = UnlearningConfig(
            **common,
            retain_fraction=0.3,
            class_forgetting=True,
            cache_teacher_logits=cached,
        )
        trainer = UnlearningTrainer(
            model, args, forget_dataset=forget, retain_dataset=retain, unseen_dataset=unseen, callbacks=[Clock()]
        )
    trainer.train()
    warm = step_times[2:] or step_times
    median = statistics.median(warm)
    result = {
        "mode": mode,
        "steps": len(step_times),
        "batch": batch,
        "median_step_seconds": median,
        "images_per_second": batch / median,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if device == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["device_name"] = torch.cuda.get_device_name()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_before_trainer_mib"] = rss_before
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--measure", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.device, args.measure)))
        return
    start = time.perf_counter()
    rows = []
    for mode in MODES:
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        command = [sys.executable, __file__, "--device", args.device, "--measure", mode]
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    by = {r["mode"]: r for r in rows}
    name = by["plain-finetune"].get("device_name", "cpu").replace(" ", "-")
    memory_key = "peak_gpu_mib" if args.device == "cuda" else "peak_rss_mib"
    cached, live = by["lotus-cached-teacher"], by["lotus-live-teacher"]
    rise = {m: by[m]["peak_rss_mib"] - by[m]["rss_before_trainer_mib"] for m in by}
    hidden, layers, heads, inter, size, patch, images, batch, steps = SETTINGS[args.device]
    result = {
        "command": f"python benchmarks/scale.py --device {args.device}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": name,
        "model": f"ViT hidden {hidden}, {layers} layers, {heads} heads, MLP {inter}, {size}x{size} images, "
        f"patch {patch}",
        "parameters": cached["parameters"],
        "rows": rows,
        "memory_ratio_cached_over_live": cached[memory_key] / live[memory_key],
        "rss_rise_ratio_cached_over_live": rise["lotus-cached-teacher"] / rise["lotus-live-teacher"],
        "lotus_over_finetune_images_per_second": cached["images_per_second"]
        / by["plain-finetune"]["images_per_second"],
        "wall_seconds": time.perf_counter() - start,
    }
    lines = [
        f"# LoTUS at scale on {name}\n",
        f"Command: `{result['command']}` ({result['date']}, {result['wall_seconds']:.0f} s). {result['model']}, "
        f"{result['parameters'] / 1e6:.1f}M parameters, random init; synthetic images; batch {batch}, {steps} steps "
        "(median step time after 2 warm-up steps)" + (", bf16." if args.device == "cuda" else ", fp32.") + "\n",
    ]
    from lotus_hf.evaluation import markdown_table

    peak = "GPU memory" if args.device == "cuda" else "RSS"
    header = ["mode", "images/s", f"peak {peak} (MiB)", "RSS rise (MiB)"]
    table = [
        [row["mode"], f"{row['images_per_second']:.1f}", f"{row[memory_key]:.0f}", f"{rise[row['mode']]:.0f}"]
        for row in rows
    ]
    lines.append(markdown_table(header, table))
    lines += [
        "",
        f"Cached teacher / live teacher, peak memory: **{result['memory_ratio_cached_over_live']:.2f}x** "
        f"(rise in the run: {result['rss_rise_ratio_cached_over_live']:.2f}x). LoTUS step / plain fine-tuning step, "
        f"images/s: {result['lotus_over_finetune_images_per_second']:.2f}.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scale-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"scale-{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
