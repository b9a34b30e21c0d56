"""The tuning grid, fixed before any reported result is read: one rule builds every method's settings from its own
reference values, the same number for every method (docs/benchmark.md, "The grid").

    .venv/bin/python benchmarks/grid.py        # writes benchmarks/grid.json, which benchmarks/tune.py reads

The rule, for a method with reference learning rate L, reference epochs E and fewer epochs F:
- six settings: learning rate L, 3L and 10L, each at F and at E epochs (the reference values of the comparison
  methods change nothing on a converged model, so the ladder climbs from them);
- two more: the method's own main knob at two other values, at 3L and E; a method without one gets a fourth
  learning rate, 30L, at F and E instead;
- SSD, which takes no optimizer step, crosses its two constants instead: a = 10, 3, 1, 0.3 with l = 1, 0.5.
Every axis also names one value beyond each end: a pick at the edge of its grid gets that one extension step
(benchmarks/tune.py), for every method alike. LoTUS's reference is the paper's ResNet-18 row (these are models
trained from scratch; the paper's ViT row is for a pretrained ViT-B/16), with alpha 2 (the paper's value for data
sets other than CIFAR-10) and, for whole classes, the paper's class row (alpha 32). Belief Relabel, lotus-hf's own,
starts from LoTUS's learning rate and epochs.
For models fine-tuned from pretrained weights (the grids "samples-pretrained" and "classes-pretrained", written
before any such cell was run), LoTUS takes the paper's row for a pretrained model instead (ViT-B/16: learning rate
1e-6, 3 epochs, batch 32; F = 1), with the same alphas, and Belief Relabel starts from its learning rate and epochs;
every other method keeps its reference, which its paper does not tie to pretraining.
"""

from __future__ import annotations

import json
from pathlib import Path

GRID = Path(__file__).parent / "grid.json"

# method: reference learning rate, (few, reference) epochs, fields held fixed, and the main knob's name, its
# reference value and two others. None: no knob.
REFERENCES = {
    "lotus": (1e-4, (3, 10), {}, ("alpha", 2.0, [8.0, 32.0])),
    "lotus_classes": (1e-4, (3, 10), {"class_forgetting": True}, ("alpha", 32.0, [8.0, 128.0])),
    "belief_relabel": (1e-4, (3, 10), {}, None),
    "finetune": (1e-3, (2, 5), {}, None),
    "neggrad_plus": (1e-3, (2, 5), {}, ("neggrad_beta", 0.99, [0.95, 0.999])),
    "random_labels": (1e-3, (2, 5), {}, None),
    "salun": (1e-3, (2, 5), {}, ("salun_sparsity", 0.1, [0.3, 0.5])),
    "bad_teacher": (1e-4, (1, 3), {}, ("bad_teacher_temperature", 1.0, [2.0, 4.0])),
    "scrub": (5e-4, (2, 3), {}, ("scrub_max_epochs", 2, [1, 3])),
}
# the pretrained regime's references where they differ (the paper's ViT-B/16 row for LoTUS)
PRETRAINED = {
    "lotus": (1e-6, (1, 3), {"per_device_train_batch_size": 32}, ("alpha", 2.0, [8.0, 32.0])),
    "lotus_classes": (
        1e-6,
        (1, 3),
        {"class_forgetting": True, "per_device_train_batch_size": 32},
        ("alpha", 32.0, [8.0, 128.0]),
    ),  # fmt: skip
    "belief_relabel": (1e-6, (1, 3), {}, None),
}
# one step beyond each end of a knob's values (a pick at the edge gets it); None: nothing beyond
KNOB_BEYOND = {
    "alpha": lambda low, high: (low / 4, high * 4),
    "neggrad_beta": lambda low, high: (0.9, 0.9999),
    "salun_sparsity": lambda low, high: (0.05, 0.7),
    "bad_teacher_temperature": lambda low, high: (0.5, 8.0),
    "scrub_max_epochs": lambda low, high: (None, high + 1),
    "ssd_alpha": lambda low, high: (low / 3, high * 3),
    "ssd_lambda": lambda low, high: (low / 2, high * 2),
}


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def axis(values: list, below, above) -> dict:
    return {"values": sorted(values), "below": below, "above": above}


def method_grid(name: str, pretrained: bool = False) -> dict:
    """The axes and the eight settings of one method by the rule above (`pretrained`: the pretrained regime's
    references)."""
    if name == "ssd":
        alphas, lambdas = [10.0, 3.0, 1.0, 0.3], [1.0, 0.5]
        settings = [{"ssd_alpha": a, "ssd_lambda": lam} for a in alphas for lam in lambdas]
        axes = {"ssd_alpha": axis(alphas, *map(_round, KNOB_BEYOND["ssd_alpha"](min(alphas), max(alphas)))),
                "ssd_lambda": axis(lambdas, *KNOB_BEYOND["ssd_lambda"](min(lambdas), max(lambdas)))}  # fmt: skip
        return {"axes": axes, "settings": settings}
    lr, (few, epochs), fixed, knob = (PRETRAINED if pretrained and name in PRETRAINED else REFERENCES)[name]
    rates = [_round(lr * m) for m in (1, 3, 10)]
    settings = [{"learning_rate": r, "num_train_epochs": e, **fixed} for r in rates for e in (few, epochs)]
    if knob is None:
        rates.append(_round(lr * 30))
        settings += [{"learning_rate": rates[-1], "num_train_epochs": e, **fixed} for e in (few, epochs)]
    else:
        knob_name, reference, others = knob
        for setting in settings:
            setting[knob_name] = reference
        settings += [
            {"learning_rate": rates[1], "num_train_epochs": epochs, **fixed, knob_name: v} for v in others
        ]
    axes = {
        "learning_rate": axis(rates, _round(min(rates) / 3), _round(max(rates) * 3)),
        "num_train_epochs": axis([few, epochs], few // 2 if few >= 2 else None, epochs * 2),
    }
    if knob is not None:
        values = [knob[1], *knob[2]]
        axes[knob[0]] = axis(values, *KNOB_BEYOND[knob[0]](min(values), max(values)))
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
    grid = {"rule": __doc__.split("The rule, ")[1].split('\n"""')[0].strip()}
    for suffix, pretrained in (("", False), ("-pretrained", True)):
        grid["samples" + suffix] = {"lotus": method_grid("lotus", pretrained),
                                    **{m: method_grid(m, pretrained) for m in baselines}}  # fmt: skip
        grid["classes" + suffix] = {
            "lotus": method_grid("lotus_classes", pretrained),
            "belief_relabel": method_grid("belief_relabel", pretrained),
            **{m: method_grid(m, pretrained) for m in baselines},
        }
    counts = {
        len(g["settings"]) for kind, methods in grid.items() if kind != "rule" for g in methods.values()
    }
    assert counts == {8}, counts  # the same budget for every method
    GRID.write_text(json.dumps(grid, indent=2) + "\n")
    print(f"wrote {GRID}: 8 settings for each of {len(grid['classes'])} methods")


if __name__ == "__main__":
    main()
