"""Where a LoTUS epoch's time goes, for the bundled ResNet on Fashion-MNIST (forget = first 10% per class).

Times the phases of a training step (batch assembly, forward, targets + loss, backward, optimizer) over
the real unlearning stream, in the default (NCHW) and channels-last memory formats, then one real
`UnlearningTrainer` epoch in each format. Writes benchmarks/results/epoch_cost.{md,json}.

    .venv/bin/python benchmarks/epoch_cost.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from lotus_hf import ForgetRequest, UnlearningConfig, UnlearningTrainer, load_image_dataset
from lotus_hf.data import prepare_unlearning_data
from lotus_hf.evaluation import markdown_table
from lotus_hf.loading import load_model
from lotus_hf.losses import lotus_targets, soft_cross_entropy
from lotus_hf.requests import DEFAULT_SEED
from lotus_hf.stream import collate

RESULTS = Path(__file__).parent / "results"
PHASES = ("batch", "forward", "targets_and_loss", "backward", "optimizer")


def time_phases(data, channels_last: bool, steps: int, seed: int) -> dict[str, float]:
    """Mean milliseconds per step of each phase of the LoTUS update, on the real stream."""
    model, _ = load_model("fashion-mnist-resnet")
    config = UnlearningConfig(
        output_dir="/tmp/lotus-epoch-cost",
        seed=seed,
        channels_last=channels_last,
        disable_tqdm=True,
        logging_strategy="no",
    )
    trainer = UnlearningTrainer(
        model, config, forget_dataset=data.forget, retain_dataset=data.retain, unseen_dataset=data.unseen
    )
    stream = trainer.stream
    stream.teacher_logits = torch.randn(len(stream), 10)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=5e-4)
    order = torch.randperm(len(stream), generator=torch.Generator().manual_seed(seed))
    noise = torch.Generator().manual_seed(seed)
    totals = dict.fromkeys(PHASES, 0.0)
    batch_size = config.per_device_train_batch_size
    for step in range(steps + 5):  # 5 warm-up steps are not counted
        marks = [time.perf_counter()]
        rows = order[(step * batch_size) % len(stream) :][:batch_size].tolist()
        batch = collate([stream[i] for i in rows])
        marks.append(time.perf_counter())
        logits = model(pixel_values=batch["pixel_values"]).logits
        marks.append(time.perf_counter())
        targets = lotus_targets(batch["teacher_logits"], batch["is_forget"], 1.17, "gumbel_softmax", noise)
        loss = soft_cross_entropy(logits, targets).mean()
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        if step >= 5:
            for phase, start, end in zip(PHASES, marks, marks[1:], strict=False):
                totals[phase] += end - start
    return {phase: 1000 * total / steps for phase, total in totals.items()}


def time_epoch(data, channels_last: bool, seed: int) -> dict:
    """One real `UnlearningTrainer` run of one epoch: setup (teacher cache + probe) and training."""
    model, _ = load_model("fashion-mnist-resnet")
    config = UnlearningConfig(
        output_dir="/tmp/lotus-epoch-cost",
        seed=seed,
        channels_last=channels_last,
        num_train_epochs=1,
        disable_tqdm=True,
        logging_strategy="no",
    )
    trainer = UnlearningTrainer(
        model, config, forget_dataset=data.forget, retain_dataset=data.retain, unseen_dataset=data.unseen
    )
    start = time.perf_counter()
    output = trainer.train()
    return {
        "seconds": time.perf_counter() - start,
        "train_runtime": output.metrics["train_runtime"],
        "steps": trainer.state.global_step,
        "samples": len(trainer.stream),
        "samples_per_second": len(trainer.stream) / (time.perf_counter() - start),
    }


def time_finetune_epoch(data, trainer_stream_size: int, seed: int) -> dict:
    """A plain fine-tuning epoch (ordinary Trainer, cross-entropy) of the same model on as many samples as
    one LoTUS epoch sees (forget set + retain subset): the floor LoTUS's per-step overhead is measured on."""
    from torch.utils.data import ConcatDataset

    from lotus_hf.recipe import Recipe

    model, _ = load_model("fashion-mnist-resnet")
    retain = data.retain.select(torch.arange(trainer_stream_size - len(data.forget)))
    stream = ConcatDataset([data.forget, retain])
    recipe = Recipe(epochs=1, learning_rate=1e-4, lr_scheduler_type="constant", seed=seed)
    _, seconds = recipe.train(model, stream, "/tmp/lotus-epoch-cost-finetune")
    return {"samples": len(stream), "seconds": seconds, "samples_per_second": len(stream) / seconds}


def time_evaluation(data) -> dict:
    """The whole evaluation suite (two models, four splits, MIA, RF-JSD both variants), per 10k images."""
    from lotus_hf.evaluation import evaluate_unlearning

    original, _ = load_model("fashion-mnist-resnet")
    unlearned, _ = load_model("fashion-mnist-resnet")
    images = sum(len(split) for split in (data.forget, data.retain, data.unseen, data.test))
    start = time.perf_counter()
    evaluate_unlearning(original, unlearned, data)
    seconds = time.perf_counter() - start
    return {"images": images, "seconds": seconds, "seconds_per_10k_images": seconds * 10_000 / images}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="epochs per format, alternating formats")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    _, processor = load_model("fashion-mnist-resnet")
    data = prepare_unlearning_data(
        load_image_dataset("fashion_mnist"), ForgetRequest.first_percent(10), processor, seed=args.seed
    )
    result = {
        "command": "python " + " ".join(sys.argv),
        "torch": torch.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "phases_ms": {},
        "epoch": {},
    }
    formats = (("nchw", False), ("channels_last", True))
    for name, flag in formats:
        result["phases_ms"][name] = time_phases(data, flag, args.steps, args.seed)
        print(name, result["phases_ms"][name], flush=True)
    # Wall times on this shared VM vary by +-25% from run to run: alternate the formats, keep the median.
    runs = {name: [] for name, _ in formats}
    for _ in range(args.repeats):
        for name, flag in formats:
            runs[name].append(time_epoch(data, flag, args.seed))
            print(name, runs[name][-1], flush=True)
    stream_size = runs["channels_last"][0]["samples"]
    result["finetune_epoch"] = time_finetune_epoch(data, stream_size, args.seed)
    result["evaluation"] = time_evaluation(data)
    print(result["finetune_epoch"], result["evaluation"], flush=True)
    for name, epochs in runs.items():
        seconds = sorted(epoch["seconds"] for epoch in epochs)
        median = seconds[len(seconds) // 2]
        result["epoch"][name] = {
            "steps": epochs[0]["steps"],
            "median_seconds": median,
            "samples_per_second": epochs[0]["samples"] / median,
            "seconds": [epoch["seconds"] for epoch in epochs],
        }

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "epoch_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Cost of a LoTUS epoch: bundled ResNet, Fashion-MNIST, forget first 10% per class\n",
        f"Command: `{result['command']}` ({time.ctime()}; torch {result['torch']}; {result['machine']})\n",
        f"Milliseconds per step of batch 128, mean of {args.steps} steps after 5 warm-up steps:\n",
    ]
    nchw, last = result["phases_ms"]["nchw"], result["phases_ms"]["channels_last"]
    phases = [[phase, f"{nchw[phase]:.1f}", f"{last[phase]:.1f}"] for phase in PHASES]
    phases.append(["**step**", f"**{sum(nchw.values()):.1f}**", f"**{sum(last.values()):.1f}**"])
    lines.append(markdown_table(["phase", "NCHW", "channels-last"], phases))
    lines.append(
        f"\nOne real `UnlearningTrainer` run of one epoch (teacher cache, probes, all steps), {args.repeats} "
        "times per format, alternating; wall times on this shared VM vary by about 25% between runs:\n"
    )
    epochs = [
        [name, str(epoch["steps"]), f"{epoch['median_seconds']:.1f}", ", ".join(f"{s:.1f}" for s in epoch["seconds"])]
        for name, epoch in result["epoch"].items()
    ]
    lines.append(markdown_table(["format", "steps", "median seconds", "all runs"], epochs))
    lotus, plain = result["epoch"]["channels_last"], result["finetune_epoch"]
    evaluation = result["evaluation"]
    lines.append(
        f"\nLoTUS epoch (channels-last, median, teacher cache and probes included): "
        f"{lotus['samples_per_second']:.0f} samples/s. A plain fine-tuning epoch of the same model "
        f"(ordinary Trainer, cross-entropy, {plain['samples']} samples): {plain['samples_per_second']:.0f} "
        f"samples/s ({plain['seconds']:.1f} s).\n"
    )
    lines.append(
        f"Evaluation suite (original and unlearned model; forget, retain, unseen and test splits; MIA; RF-JSD "
        f"in both variants): {evaluation['seconds']:.1f} s for {evaluation['images']} images, "
        f"{evaluation['seconds_per_10k_images']:.2f} s per 10k images.\n"
    )
    (RESULTS / "epoch_cost.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
