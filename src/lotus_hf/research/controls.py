"""The verifier's controls (docs/verification.md): models whose answer is known, run through `lotus-hf verify`'s
machinery in every benchmark cell and seed, so that its error rates are measured, not assumed.

- `retrained`: the gold standard, never trained on the forget set: must not be called `not_forgotten`;
- `original`, `lr0` (a LoTUS run at learning rate 0), `edited_history` (the original with a LoTUS run's history
  pasted into its config) and `swapped_weights` (a LoTUS run's folder with the original's weights put back): must be
  called `not_forgotten`, and the last two must fail the history check (`weights_match` false).

And models built to pass (`adaptive_controls`), each scored on the public held-out half and on a private held-out
set drawn apart from it (training images the benchmark never trains on), all expected `not_forgotten`:

- `trained_on_heldout`: the original fine-tuned, after training, on its training images and the verifier's public
  held-out half (both become members, so the public comparison sees none);
- `masked_logit` (class requests): the forgotten classes' logits pushed to -10,000 at the output (the head's bias);
- `nearest_relabel` (sample requests): the original fine-tuned on the retain set and the forget images relabelled to
  the class it ranks next (the forget accuracy falls to nothing: over-forgetting);
- `temperature`: every logit divided by a temperature, doubled until the membership AUC on the public half falls
  under 0.55 (or 4,096 is reached), so the confidences say nothing while the predictions stay.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

ADAPTIVE = ("trained_on_heldout", "masked_logit", "nearest_relabel", "temperature")
EXPECTED = {
    "retrained": "not not_forgotten",
    "original": "not_forgotten",
    "lr0": "not_forgotten",
    "edited_history": "not_forgotten",
    "swapped_weights": "not_forgotten",
    **dict.fromkeys(ADAPTIVE, "not_forgotten"),
}
FINE_TUNE_EPOCHS = 5  # the adaptive controls' fine-tunings: the recipe's optimizer, this many epochs
AUC_TARGET, MAX_TEMPERATURE = 0.55, 4096.0


def verifier_controls(
    request, seed: int, original, data, checks: dict, lotus, zero, processor, evaluation, folder: Path, log
) -> list[dict]:
    """The controls of one seed. `checks`: the verdicts already drawn on the original and the retrained model (their
    outputs are the evaluation's); `lotus`: the cell's LoTUS run (an `UnlearningResult`), whose saved folder the
    history controls start from; `zero`: its config at learning rate 0, for one epoch; `evaluation`: the seed's
    `Evaluation` (the original, the gold standard and the references' outputs)."""
    from ..provenance import HISTORY_KEY, weights_sha256
    from ..run import save_unlearned, unlearn
    from ..verify import verify

    rows = [_row("retrained", seed, checks["retrained"]), _row("original", seed, checks["original"])]
    idle = unlearn(copy.deepcopy(original), data, zero, evaluation=evaluation)
    rows.append(_row("lr0", seed, idle.report.verification))

    if weights_sha256(lotus.model) == weights_sha256(original):
        # A LoTUS run that changed no weight (its stop rule fired before the first step) leaves a history that is
        # true of the original's weights: pasting it is no forgery, so these controls cannot be run on this seed.
        reason = "the LoTUS run changed no weight, so its history is true of the original"
        rows += [_skipped(control, seed, reason) for control in ("edited_history", "swapped_weights")]
        log(f"  seed {seed} controls: " + ", ".join(f"{r['control']} {r['verdict']}" for r in rows))
        return rows
    unlearned = save_unlearned(lotus, processor, folder / "unlearned")
    edited = folder / "edited"
    original.save_pretrained(edited)
    processor.save_pretrained(edited)
    config = json.loads((edited / "config.json").read_text())
    config[HISTORY_KEY] = json.loads((unlearned / "config.json").read_text())[HISTORY_KEY]
    (edited / "config.json").write_text(json.dumps(config, indent=2))
    swapped = folder / "swapped"
    shutil.copytree(unlearned, swapped)
    shutil.copy(edited / "model.safetensors", swapped / "model.safetensors")
    for control, path in (("edited_history", edited), ("swapped_weights", swapped)):
        found = verify(str(path), request=request, data=data, seed=seed).to_dict()
        rows.append(_row(control, seed, found, weights_match=found["weights_match"], step=found["step"]))
    log(f"  seed {seed} controls: " + ", ".join(f"{r['control']} {r['verdict']}" for r in rows))
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def adaptive_controls(seed: int, original, data, references: list, recipe, private, folder: Path, log) -> list[dict]:
    """Models built to pass the verifier (module docstring), for one seed, each verified on the public held-out
    half (`data.test`) and, when there is one, on `private` (held-out images drawn apart from it); with the seed's
    `references` (gold standards of other seeds) for the per-example and over-forgetting tests, and the original's
    held-out outputs for utility."""
    from ..evaluation import predict_logits
    from ..evidence import log_softmax, verify_outputs
    from ..images import PixelDataset
    from ..provenance import body_change

    kind = data.fingerprint.get("kind")
    classes = sorted(set(data.forget.labels.tolist())) if kind == "classes" else None
    fine_tune = dataclasses.replace(recipe, epochs=FINE_TUNE_EPOCHS, seed=seed)

    def joined(*parts, labels=None):
        pixels = torch.cat([p.pixel_values for p in parts])
        return PixelDataset(pixels, torch.cat([p.labels for p in parts]) if labels is None else labels)

    everything = joined(data.forget, data.retain, data.test)  # the training images and the public half
    built = {"trained_on_heldout": fine_tune.train(copy.deepcopy(original), everything, folder / "heldout")[0]}
    if kind == "classes":
        built["masked_logit"] = masked_logit(original, classes)
    else:
        ranked = predict_logits(original, data.forget).clone()
        ranked[torch.arange(len(ranked)), data.forget.labels] = -math.inf
        relabelled = joined(data.retain, data.forget, labels=torch.cat([data.retain.labels, ranked.argmax(1)]))
        built["nearest_relabel"] = fine_tune.train(copy.deepcopy(original), relabelled, folder / "relabel")[0]
    heldouts = {"public": data.test, **({"private": private} if private is not None else {})}

    def log_probs(model, rows):
        return log_softmax(predict_logits(model, rows).double().numpy())

    forget_labels = data.forget.labels.numpy()
    references = [
        {"forget": log_probs(r, data.forget), **{h: log_probs(r, x) for h, x in heldouts.items()}} for r in references
    ]
    before = {h: log_probs(original, rows) for h, rows in heldouts.items()}

    def verdict(model, heldout: str) -> dict:
        # the public half has a twin, the half a run calibrates on (the `heldout_unseen_*` tests); a private set none
        twin = data.unseen if heldout == "public" else None
        found = verify_outputs(
            log_probs(model, data.forget),
            forget_labels,
            log_probs(model, heldouts[heldout]),
            heldouts[heldout].labels.numpy(),
            kind=kind,
            forgotten_classes=classes,
            reference_forget=[r["forget"] for r in references] or None,
            reference_heldout=[r[heldout] for r in references] or None,
            original_heldout=before[heldout],
            body_change=body_change(model, original),
            calibration_log_probs=log_probs(model, twin) if twin is not None else None,
            calibration_labels=twin.labels.numpy() if twin is not None else None,
        )
        return found.to_dict()

    built["temperature"], temperature = flattened(original, lambda model: verdict(model, "public"))
    rows = []
    for control, model in built.items():
        extra = {"temperature": temperature} if control == "temperature" else {}
        for heldout in heldouts:
            found = verdict(model, heldout)
            utility = (found.get("utility") or {}).get("outcome")
            rows.append(_row(control, seed, found, heldout=heldout, utility=utility, **extra))
    verdicts = ", ".join(f"{r['control']} ({r['heldout']}) {r['verdict']}" for r in rows)
    log(f"  seed {seed} adaptive controls: {verdicts}")
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def output_layer(model) -> torch.nn.Linear:
    """The classifier's last linear layer, whose outputs are the logits (one per label)."""
    labels = model.config.num_labels
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == labels]
    if not layers:
        raise ValueError(f"no linear layer with {labels} outputs in {type(model).__name__}")
    return layers[-1]


def masked_logit(original, classes: list[int]):
    """The original with `classes`' logits pushed to -10,000 (the head's bias): never predicted, all else kept."""
    model = copy.deepcopy(original)
    with torch.no_grad():
        output_layer(model).bias[classes] = -1e4
    return model


def flattened(original, verify_fn) -> tuple[torch.nn.Module, float]:
    """The original with every logit divided by a temperature (the head's weights and bias), doubled from 2 until
    the membership AUC `verify_fn(model)` reports falls under `AUC_TARGET`, or `MAX_TEMPERATURE`."""
    temperature = 1.0
    while True:
        temperature *= 2
        model = copy.deepcopy(original)
        with torch.no_grad():
            layer = output_layer(model)
            layer.weight /= temperature
            layer.bias /= temperature
        auc = next(e["statistic"] for e in verify_fn(model)["evidence"] if e["test"].endswith("auc"))
        if auc < AUC_TARGET or temperature >= MAX_TEMPERATURE:
            return model, temperature


def wilson(successes: int, n: int, z: float = 1.96) -> list[float] | None:
    """The Wilson score interval of a rate (95% by default), or None without trials.

    >>> wilson(0, 5)
    [0.0, 0.4345]
    """
    if not n:
        return None
    p, factor = successes / n, z * z / n
    centre, spread = (
        (p + factor / 2) / (1 + factor),
        z * np.sqrt(p * (1 - p) / n + factor / (4 * n)) / (1 + factor),
    )
    return [round(float(max(0.0, centre - spread)), 4), round(float(min(1.0, centre + spread)), 4)]


def _row(control: str, seed: int, verification: dict, **history) -> dict:
    verdict = verification["verdict"]
    expected = EXPECTED[control]
    correct = verdict != "not_forgotten" if expected.startswith("not not") else verdict == "not_forgotten"
    if "weights_match" in history:
        correct = correct and history["weights_match"] is False
    return {
        "control": control,
        "seed": seed,
        "verdict": verdict,
        "expected": expected,
        "correct": correct,
        "tests": {e["test"]: e["outcome"] for e in verification["evidence"]},
        **history,
    }


def _skipped(control: str, seed: int, reason: str) -> dict:
    return {
        "control": control,
        "seed": seed,
        "verdict": "skipped",
        "expected": EXPECTED[control],
        "correct": None,
        "skipped": reason,
        "tests": {},
    }


def error_rates(controls: list[dict]) -> dict:
    """Per control (and, for the adaptive ones, per held-out set: "trained_on_heldout (private)"): how many seeds,
    how many verdicts of each kind with the `forgotten` rate's 95% interval (Wilson), and how many were wrong (false
    alarms for the retrained models, misses for the others). Skipped controls (`_skipped`) are counted apart, never
    as right."""
    table = {}
    for control in EXPECTED:
        for heldout in ("public", "private") if control in ADAPTIVE else (None,):
            mine = [r for r in controls if r["control"] == control and r.get("heldout") == heldout]
            skipped = sum(r["verdict"] == "skipped" for r in mine)
            rows = [r for r in mine if r["verdict"] != "skipped"]
            if rows or skipped:
                verdicts = {
                    v: sum(r["verdict"] == v for r in rows) for v in ("forgotten", "inconclusive", "not_forgotten")
                }
                name = control if heldout is None else f"{control} ({heldout})"
                table[name] = {
                    "seeds": len(rows),
                    **verdicts,
                    "forgotten_rate_interval": wilson(verdicts["forgotten"], len(rows)),
                    "wrong": sum(not r["correct"] for r in rows),
                    "expected": EXPECTED[control],
                    **({"skipped": skipped} if skipped else {}),
                    **({"damaged": sum(r.get("utility") == "damaged" for r in rows)} if heldout else {}),
                }
    return table
