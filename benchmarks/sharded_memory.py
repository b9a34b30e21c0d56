"""Peak memory per process when LoTUS runs on 2 CPU processes with DDP, FSDP2 and DeepSpeed ZeRO-3, with the
cached teacher (default) and with a live teacher.

    .venv/bin/python benchmarks/sharded_memory.py

The model and data are those of `benchmarks/scale.py --device cpu` (a 25.6M-parameter ViT, random init,
synthetic 64x64 images). Each (strategy, teacher) pair is its own 2-process launch: torchrun for DDP, the
shipped configs in configs/accelerate/ for FSDP2 (`fsdp_cpu.yaml`: the whole model one unit; and the same
with each ViTLayer its own unit, as `fsdp.yaml` does on GPUs) and ZeRO-3 (`deepspeed_zero3_cpu.yaml`).
Every process reports its peak RSS (`ru_maxrss`) and its rise above the RSS measured just before the trainer
is built (the model is whole at that point on every strategy); the table shows the larger of the two
processes. Writes benchmarks/results/sharded-memory-cpu.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scale import RESULTS, SETTINGS, _rss_mib, model_and_data

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
STRATEGIES = ("ddp", "fsdp2-one-unit", "fsdp2-per-layer", "zero3")


def launcher(strategy: str, tmp: str) -> list[str]:
    if strategy == "ddp":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    if strategy == "zero3":
        return [*ACCELERATE, str(CONFIGS / "deepspeed_zero3_cpu.yaml")]
    config = (CONFIGS / "fsdp_cpu.yaml").read_text()
    if strategy == "fsdp2-per-layer":  # each ViTLayer its own FSDP unit, as in configs/accelerate/fsdp.yaml
        wrap = "fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_transformer_layer_cls_to_wrap: ViTLayer"
        config = config.replace("fsdp_auto_wrap_policy: NO_WRAP", wrap)
    path = Path(tmp, "fsdp.yaml")
    path.write_text(config)
    return [*ACCELERATE, str(path)]


TEACHERS = ("cached-teacher", "live-teacher")
STEPS = 8


def measure(teacher: str, out: str) -> None:
    """In each of the launched processes: build, train `STEPS` steps, write every process's memory to `out`."""
    import torch

    from lotus_hf import UnlearningConfig, UnlearningTrainer

    batch = SETTINGS["cpu"][7]
    model, forget, retain, unseen = model_and_data("cpu")
    rss_before = _rss_mib()
    # class-forgetting mode: the target accuracy is 0, so the stop rule never ends a random model's run
    args = UnlearningConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=batch // 2,
        per_device_eval_batch_size=128,
        max_steps=STEPS,
        logging_strategy="no",
        disable_tqdm=True,
        report_to="none",
        save_strategy="no",
        seed=0,
        retain_fraction=0.3,
        class_forgetting=True,
        cache_teacher_logits=teacher == "cached-teacher",
    )
    trainer = UnlearningTrainer(model, args, forget_dataset=forget, retain_dataset=retain, unseen_dataset=unseen)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mine = {"peak_rss_mib": peak, "rss_rise_mib": peak - rss_before, "train_seconds": seconds}
    everyone = [None] * trainer.accelerator.num_processes
    torch.distributed.all_gather_object(everyone, mine)
    if trainer.accelerator.is_main_process:
        strategy = str(trainer.accelerator.distributed_type).split(".")[-1]
        Path(out).write_text(json.dumps({"distributed_type": strategy, "processes": everyone}))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", choices=TEACHERS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.out)
        return
    start = time.perf_counter()
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for strategy in STRATEGIES:
        for teacher in TEACHERS:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp, "memory.json")
                command = [*launcher(strategy, tmp), __file__, "--measure", teacher, "--out", str(out)]
                subprocess.run(command, check=True, env=env, capture_output=True, cwd=Path(__file__).parent)
                measured = json.loads(out.read_text())
            worst = max(measured["processes"], key=lambda p: p["peak_rss_mib"])
            rows.append({"strategy": strategy, "teacher": teacher, **measured, **worst})
            print({k: v for k, v in rows[-1].items() if k != "processes"}, flush=True)
    by = {(r["strategy"], r["teacher"]): r for r in rows}
    hidden, layers, heads, inter, size, patch, images, batch, _ = SETTINGS["cpu"]
    result = {
        "command": "python benchmarks/sharded_memory.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "model": f"ViT hidden {hidden}, {layers} layers, {heads} heads, MLP {inter}, {size}x{size} images, "
        f"patch {patch}",
        "processes": 2,
        "global_batch": batch,
        "steps": STEPS,
        "rows": rows,
        "wall_seconds": time.perf_counter() - start,
    }
    lines = [
        "# Peak memory per process: LoTUS on 2 CPU processes\n",
        f"Command: `{result['command']}` ({result['date']}, {result['wall_seconds']:.0f} s). {result['model']}, "
        f"25.6M parameters (as `benchmarks/scale.py --device cpu`), fp32, global batch {batch} ({batch // 2} per "
        f"process), {STEPS} steps. Launched with torchrun (DDP) and the shipped configs "
        "`configs/accelerate/fsdp_cpu.yaml` (fsdp2-one-unit; fsdp2-per-layer wraps each ViTLayer, as `fsdp.yaml` "
        "does) and `deepspeed_zero3_cpu.yaml`. Each row is the process with the "
        "larger peak RSS; the rise is above the RSS just before the trainer is built, when every process still "
        "holds the whole model.\n",
    ]
    from lotus_hf.evaluation import markdown_table

    table = [
        [
            row["strategy"],
            row["teacher"],
            f"{row['peak_rss_mib']:.0f}",
            f"{row['rss_rise_mib']:.0f}",
            f"{row['train_seconds']:.1f}",
        ]
        for row in rows
    ]
    header = ["strategy", "teacher", "peak RSS (MiB)", "RSS rise (MiB)", "training (s)"]
    lines.append(markdown_table(header, table))
    lines.append("")
    for strategy in STRATEGIES:
        cached, live = by[(strategy, "cached-teacher")], by[(strategy, "live-teacher")]
        lines.append(
            f"- {strategy}: cached / live teacher, peak RSS {cached['peak_rss_mib'] / live['peak_rss_mib']:.2f}x, "
            f"rise {cached['rss_rise_mib'] / live['rss_rise_mib']:.2f}x."
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sharded-memory-cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "sharded-memory-cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
