"""The verifier's controls (docs/verification.md): models whose answer is known, run through `lotus-hf verify`'s
machinery in every benchmark cell and seed, so that its error rates are measured, not assumed.

- `retrained`: the gold standard, never trained on the forget set: must not be called `not_forgotten`;
- `original`, `lr0` (a LoTUS run at learning rate 0), `edited_history` (the original with a LoTUS run's history
  pasted into its config) and `swapped_weights` (a LoTUS run's folder with the original's weights put back): must be
  called `not_forgotten`, and the last two must fail the history check (`weights_match` false).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

EXPECTED = {"retrained": "not not_forgotten", "original": "not_forgotten", "lr0": "not_forgotten",
            "edited_history": "not_forgotten", "swapped_weights": "not_forgotten"}  # fmt: skip


def verifier_controls(request, seed: int, original, data, checks: dict, lotus, zero, processor,
                      reference_probs: dict, folder: Path, log) -> list[dict]:  # fmt: skip
    """The controls of one seed. `checks`: the verdicts already drawn on the original and the retrained model (their
    outputs are the evaluation's); `lotus`: the cell's LoTUS run (an `UnlearningResult`), whose saved folder the
    history controls start from; `zero`: its config at learning rate 0, for one epoch."""
    from ..provenance import HISTORY_KEY, weights_sha256
    from ..run import save_unlearned, unlearn
    from ..verify import verify

    rows = [_row("retrained", seed, checks["retrained"]), _row("original", seed, checks["original"])]
    idle = unlearn(copy.deepcopy(original), data, zero, original=original, reference_probs=reference_probs)
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


def _row(control: str, seed: int, verification: dict, **history) -> dict:
    verdict = verification["verdict"]
    expected = EXPECTED[control]
    correct = verdict != "not_forgotten" if expected.startswith("not not") else verdict == "not_forgotten"
    if "weights_match" in history:
        correct = correct and history["weights_match"] is False
    return {"control": control, "seed": seed, "verdict": verdict, "expected": expected, "correct": correct,
            "tests": {e["test"]: e["outcome"] for e in verification["evidence"]}, **history}  # fmt: skip


def _skipped(control: str, seed: int, reason: str) -> dict:
    return {"control": control, "seed": seed, "verdict": "skipped", "expected": EXPECTED[control], "correct": None,
            "skipped": reason, "tests": {}}  # fmt: skip


def error_rates(controls: list[dict]) -> dict:
    """Per control: how many seeds, how many verdicts of each kind, and how many were wrong (false alarms for the
    retrained models, misses for the others). Skipped controls (`_skipped`) are counted apart, never as right."""
    table = {}
    for control in EXPECTED:
        skipped = sum(r["verdict"] == "skipped" for r in controls if r["control"] == control)
        rows = [r for r in controls if r["control"] == control and r["verdict"] != "skipped"]
        if rows or skipped:
            verdicts = {
                v: sum(r["verdict"] == v for r in rows)
                for v in ("forgotten", "inconclusive", "not_forgotten")
            }
            table[control] = {"seeds": len(rows), **verdicts, "wrong": sum(not r["correct"] for r in rows),
                              "expected": EXPECTED[control], **({"skipped": skipped} if skipped else {})}  # fmt: skip
    return table
