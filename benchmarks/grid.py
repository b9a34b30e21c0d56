"""The tuning grid, fixed before any reported result is read: one rule builds every method's settings from its own
reference values, the same number for every method (docs/benchmark.md, "The grid").

    .venv/bin/python benchmarks/grid.py        # writes benchmarks/grid.json, which benchmarks/tune.py reads

The rule, written on 2026-12-07 before any budgeted run (the rule before it, which let every method run as long as
its epochs said, is kept in results/fashion_mnist/superseded/grid-before-budgets.json), amended at 05:55 the same
day, still before any budgeted run: the stops are paced by cost (at most 5% of the run each), and tuning runs on one
seed (seed 1: the 144 runs per cell of two seeds, each to 20% of a retraining and evaluated three times, would take
about 2.5 hours per cell on the 2 cores the committed results come from):
- Budgets 5%, 10% and 20% of a retraining, its cost counted as lotus_hf.cost counts every run (an example through
  forward and backward 3, through a forward only 1; a retraining 3 x its recipe's epochs x the retain set). Every
  run stops at 20% and is evaluated at 5%, 10% and 20% (checkpoints on the way; a run that ends first, by its own
  rule, is taken at its end). Epochs stop being a knob: every method may run as many epochs as the retraining's
  recipe (30), so the budget, or the method's own stop, ends it. Picks are made per budget.
- Eight settings for every method that trains: learning rates L, 3L, 10L and 30L (L its reference), each without
  and with the verifier's stop (stop_when_verified: the verifier's tests on the calibration half of the held-out
  data, after any step where one more check keeps the checks within 5% of the run's cost, end the run once they say
  `forgotten`). Every other field stays at the method's reference,
  its main knob included (LoTUS: alpha 2, and the paper's class row, alpha 32, for whole classes).
- LoTUS runs twice, under two names, eight settings each: `lotus` with lotus-hf's bound stop (the default: probes on
  1,000 forget samples, paced to at most 5% of the run's cost, a stop at the first that reaches the unseen accuracy)
  and `lotus/paper`
  with the paper's stop (a probe before each epoch, a stop once 0.01 below it). Belief Relabel, lotus-hf's own,
  starts from LoTUS's learning rate.
- SSD, which takes no optimizer step, crosses its two constants instead: a = 10, 3, 1, 0.3 with l = 1, 0.5. Its one
  pass costs what it costs; at a budget it passed it is reported over budget.
- The learning-rate axis names one value beyond each end (L/3 and 100L), and SSD's axes theirs: a pick at an edge
  gets that one extension step (benchmarks/tune.py), for every method alike.
- Picked per budget: the lowest mean Avg Gap over the tuning seeds among the settings whose runs kept within the
  budget and changed the model (a setting that leaves the model as it was scores the original's gap, and would be
  picked by noise).
- Learning rates are relative to the model's own: a model fine-tuned from pretrained weights (the "-pretrained"
  grids) scales every method's reference L by its fine-tuning's learning rate over 1e-3, the learning rate the
  from-scratch references are set for. The committed pretrained cells were fine-tuned at 1e-3 (Makefile), so their
  grids equal the others'; the same rule for all, written before any of them was tuned again.
"""

from __future__ import annotations

import json
from pathlib import Path

GRID = Path(__file__).parent / "grid.json"
BUDGETS = (0.05, 0.1, 0.2)
EPOCHS = 30  # the recipe's: no method is stopped by its epochs before the budget
FROM_SCRATCH_LR = 1e-3  # the learning rate of the recipe the references below are set for

# method: reference learning rate and the fields held fixed at their reference
REFERENCES = {
    "lotus": (1e-4, {"stop_rule": "bound"}),
    "lotus/paper": (1e-4, {"stop_rule": "paper"}),
    "lotus_classes": (1e-4, {"class_forgetting": True, "alpha": 32.0, "stop_rule": "bound"}),
    "lotus_classes/paper": (1e-4, {"class_forgetting": True, "alpha": 32.0, "stop_rule": "paper"}),
    "belief_relabel": (1e-4, {}),
    "finetune": (1e-3, {}),
    "neggrad_plus": (1e-3, {}),
    "random_labels": (1e-3, {}),
    "salun": (1e-3, {}),
    "bad_teacher": (1e-4, {}),
    "scrub": (5e-4, {}),
}
LADDER = (1, 3, 10, 30)  # multiples of L on the grid
BEYOND = (1 / 3, 100)  # one step beyond each end


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def axis(values: list, below, above) -> dict:
    return {"values": sorted(values), "below": below, "above": above}


def method_grid(name: str, lr_scale: float = 1.0) -> dict:
    """The axes and the eight settings of one method by the rule above; `lr_scale`: the model's own learning rate over
    the from-scratch one."""
    if name == "ssd":
        alphas, lambdas = [10.0, 3.0, 1.0, 0.3], [1.0, 0.5]
        settings = [{"ssd_alpha": a, "ssd_lambda": lam} for a in alphas for lam in lambdas]
        axes = {"ssd_alpha": axis(alphas, 0.1, 30.0), "ssd_lambda": axis(lambdas, 0.25, 2.0)}
        return {"axes": axes, "settings": settings}
    lr, fixed = REFERENCES[name]
    lr *= lr_scale
    rates = [_round(lr * m) for m in LADDER]
    settings = [
        {"learning_rate": r, "num_train_epochs": EPOCHS, **fixed, "stop_when_verified": verified}
        for r in rates
        for verified in (False, True)
    ]
    axes = {"learning_rate": axis(rates, _round(lr * BEYOND[0]), _round(lr * BEYOND[1]))}
    return {"axes": axes, "settings": settings}


def extension(method_grid: dict, pick: dict) -> list[dict]:
    """The extension steps of a pick: for each axis where it sits at an end, the pick with that axis one step beyond
    (none where nothing lies beyond)."""
    steps = []
    for name, ax in method_grid["axes"].items():
        value = pick.get(name)
        for end, beyond in ((ax["values"][0], ax["below"]), (ax["values"][-1], ax["above"])):
            if value == end and beyond is not None and len(ax["values"]) > 1:
                steps.append({**pick, name: beyond})
    return steps


def main() -> None:
    baselines = ["finetune", "neggrad_plus", "random_labels", "salun", "bad_teacher", "scrub", "ssd"]
    grid = {"rule": __doc__.split("The rule, ")[1].split('\n"""')[0].strip(), "budgets": list(BUDGETS)}
    # the committed pretrained cells were fine-tuned at 1e-3 (Makefile): scale 1
    for suffix, scale in (("", 1.0), ("-pretrained", 1e-3 / FROM_SCRATCH_LR)):
        grid["samples" + suffix] = {
            "lotus": method_grid("lotus", scale),
            "lotus/paper": method_grid("lotus/paper", scale),
            **{m: method_grid(m, scale) for m in baselines},
        }
        grid["classes" + suffix] = {
            "lotus": method_grid("lotus_classes", scale),
            "lotus/paper": method_grid("lotus_classes/paper", scale),
            "belief_relabel": method_grid("belief_relabel", scale),
            **{m: method_grid(m, scale) for m in baselines},
        }
    counts = {
        len(g["settings"])
        for kind, methods in grid.items()
        if kind not in ("rule", "budgets")
        for g in methods.values()
    }
    assert counts == {8}, counts  # the same budget for every method
    GRID.write_text(json.dumps(grid, indent=2) + "\n")
    print(f"wrote {GRID}: 8 settings for each of {len(grid['classes'])} methods, budgets {BUDGETS}")


if __name__ == "__main__":
    main()
