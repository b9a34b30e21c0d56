"""What a bundled model runs when nobody names a method: its `unlearning_config.json`, from the budgeted tuning.

    .venv/bin/python benchmarks/defaults.py        # after benchmarks/tune.py; rewrites the bundled configs
    .venv/bin/python benchmarks/defaults.py --bundled-check resnet-class   # the amendment below, before that

The rule (written on 2026-12-07, after the ResNet sample cell's tuning at 10% had been read: the issue asked for "the
method verified `forgotten` on most seeds", which the Avg Gap picks do not say): for each architecture and request
kind, among every setting of every method in its tuning cell that kept within 10% of a retraining, the one the tuning
seeds verify `forgotten` with the model's utility `kept` most often; ties go to the lowest mean Avg Gap. Its method
becomes the model's `"default"` for that kind; every method's fields are its 10% pick by Avg Gap (benchmarks/tune.py),
the default's are the setting chosen here, each with `budget` 0.1. A kind whose cell has not been tuned at budgets
keeps what the file held. The five reported seeds then show whether the choice holds (docs/benchmark.md); they choose
nothing.

Amendment (2026-12-07, 18:50 UTC, after the rule's class choice, SSD at alpha 30, changed nothing on the bundled
model although it held on the benchmark's originals, trained on a tenth of the images): a default must work on the
model it ships with. `--bundled-check CELL` runs the rule's settings in its order on the bundled model itself with
`lotus-hf unlearn`, forgetting the cell's tuning class (never a reported one) at the 10% budget, and stops at the
first that ends `forgotten` with utility `kept` (results/fashion_mnist/bundled-check.json and .md). That setting is
the default; a cell with a check and no such setting in its first `CHECKED` is held back.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

# a cell's tuning runs (its grid, its extension steps, its other tuning classes) as tune.py counts them
from tune import RESULTS, TUNING, parts_of

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "lotus_hf" / "bundled"
BUDGET = "10"
CELLS = {
    "fashion-mnist-resnet": {"samples": "resnet-first10", "classes": "resnet-class"},
    "fashion-mnist-vit": {"samples": "vit-first10", "classes": "vit-class"},
}
# the bundled-check: each cell's model and the request it forgets (a tuning class), and how far down the rule's order
# it may go
CHECK_REQUEST = {
    "resnet-class": ("fashion-mnist-resnet", ["--forget-classes", "Bag"]),
    "vit-class": ("fashion-mnist-vit", ["--forget-classes", "Bag"]),
}
CHECKED = 5
BUNDLED_CHECK = RESULTS / "bundled-check.json"
# Cells whose choice is held back, with why: their kind keeps what the file held until the reason is gone. Written
# 2026-12-07 and said so in docs/benchmark.md.
HELD_BACK: dict[str, str] = {}


def ranking(cell: str) -> list[dict]:
    """The rule's order in `cell` at 10%: every setting verified `forgotten` (utility kept) on some tuning seed,
    {"method", "fields", "forgotten", "seeds", "avg_gap", "from"}, by that rate, then by lowest mean Avg Gap, over
    every tuning run of the cell (its grid, its extension steps, its other tuning classes: a setting run in several
    counts every run of it)."""
    settings: dict[tuple, dict] = {}
    for part in parts_of(cell):
        path = TUNING / part / "results.json"
        results = json.loads(path.read_text())["budgets"][BUDGET]
        for method, tuning in results["tuning"].items():
            for i, fields in enumerate(tuning["settings"], 1):
                entry = settings.setdefault(
                    (method, json.dumps(fields, sort_keys=True)),
                    {"method": method, "fields": fields, "runs": [], "from": []},
                )
                entry["runs"] += [r for r in results["runs"] if r["method"] == f"{method}#{i}"]
                entry["from"].append(f"{part} #{i}")
    found = []
    for entry in settings.values():
        runs = entry.pop("runs")
        if not runs or not all((r.get("cost") or {}).get("within_budget", True) for r in runs):
            continue
        good = sum(r["verdict"] == "forgotten" and r.get("utility") != "damaged" for r in runs)
        gap = sum(r["avg_gap"] for r in runs) / len(runs)
        found.append(
            {**entry, "forgotten": good, "seeds": len(runs), "avg_gap": gap, "from": ", ".join(entry["from"])}
        )
    return sorted((f for f in found if f["forgotten"]), key=lambda f: (-f["forgotten"] / f["seeds"], f["avg_gap"]))


def verified_choice(cell: str) -> dict | None:
    """The rule's setting in `cell` at 10%: the first of its order, or where the bundled model was checked (the
    amendment), the first of its order that ended `forgotten` with utility kept there; None if none did."""
    order = ranking(cell)
    checked = json.loads(BUNDLED_CHECK.read_text()).get(cell) if BUNDLED_CHECK.is_file() else None
    if checked is None:
        return order[0] if order else None
    passed = next((run for run in checked["runs"] if run["verdict"] == "forgotten" and run["utility"] == "kept"), None)
    if passed is None:
        return None
    return next(f for f in order if f["method"] == passed["method"] and f["fields"] == passed["fields"])


def flags(fields: dict) -> list[str]:
    """`lotus-hf unlearn` flags for a method's fields."""
    return [part for name, value in fields.items() for part in (f"--{name}", str(value))]


def bundled_check(cell: str) -> None:
    """Run the rule's settings in its order on the bundled model itself, forgetting the cell's tuning class at the
    10% budget, until one ends `forgotten` with utility `kept` (at most `CHECKED`); write what each run gave."""
    from lotus_hf.cli import main as lotus_hf
    from lotus_hf.evaluation import markdown_table

    model, request = CHECK_REQUEST[cell]
    runs, start = [], time.perf_counter()
    for candidate in ranking(cell)[:CHECKED]:
        method = candidate["method"].split("/")[0]
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "run"
            argv = ["unlearn", "--model", model, *request, "--method", method, *flags(candidate["fields"])]
            argv += ["--budget", str(int(BUDGET) / 100), "--quiet", "--output-dir", str(out)]
            lotus_hf(argv)
            report = json.loads((out / "report.json").read_text())
        verification = report["verification"]
        runs.append(
            {
                "method": candidate["method"],
                "fields": candidate["fields"],
                "command": "lotus-hf " + " ".join(argv[:-2]),
                "verdict": verification["verdict"],
                "utility": verification["utility"]["outcome"],
                "accuracy_drop": verification["utility"]["drop"],
                "acc_forget": report["rows"]["unlearned"]["acc_forget"],
                "share_of_retrain": report["cost"]["share_of_retrain"],
                "wall_share": report["cost"].get("wall_share"),
                "seconds": report["unlearning_seconds"],
                "tuning": {k: candidate[k] for k in ("forgotten", "seeds", "avg_gap")},
            }
        )
        print(f"{cell}: {candidate['method']} {candidate['fields']}: {runs[-1]['verdict']}, {runs[-1]['utility']}")
        if runs[-1]["verdict"] == "forgotten" and runs[-1]["utility"] == "kept":
            break
    command = f".venv/bin/python benchmarks/defaults.py --bundled-check {cell}"
    found = json.loads(BUNDLED_CHECK.read_text()) if BUNDLED_CHECK.is_file() else {}
    found[cell] = {"command": command, "model": model, "request": " ".join(request), "minutes": 0.0, "runs": runs}
    found[cell]["minutes"] = round((time.perf_counter() - start) / 60, 1)
    BUNDLED_CHECK.write_text(json.dumps(found, indent=2) + "\n")
    lines = [
        "# The defaults, checked on the bundled models\n",
        "The rule's settings in its order (benchmarks/defaults.py: verified `forgotten` with utility kept on the most "
        "tuning seeds within 10% of a retraining, then lowest Avg Gap), run on the bundled model itself with "
        "`lotus-hf unlearn` at the 10% budget, forgetting a tuning class, until one ends `forgotten` with utility "
        "kept: that one ships as the default.\n",
    ]
    for name, check in found.items():
        lines.append(
            f"## {name}: {check['model']}, {check['request']}\n\nCommand: `{check['command']}` "
            f"({check['minutes']} min on this 2-core machine).\n"
        )
        header = [
            "method",
            "fields",
            "tuning: forgotten and kept",
            "verdict",
            "utility",
            "acc forget",
            "accuracy drop",
            "cost (wall time)",
        ]
        rows = [
            [
                r["method"],
                ", ".join(f"{k} {v}" for k, v in r["fields"].items()),
                f"{r['tuning']['forgotten']}/{r['tuning']['seeds']}",
                r["verdict"],
                r["utility"],
                f"{r['acc_forget']:.4f}",
                f"{r['accuracy_drop']:.4f}",
                f"{r['share_of_retrain']:.1%} ({r['wall_share']:.1%})"
                if r["wall_share"]
                else f"{r['share_of_retrain']:.1%}",
            ]
            for r in check["runs"]
        ]
        lines += [markdown_table(header, rows), ""]
    BUNDLED_CHECK.with_suffix(".md").write_text("\n".join(lines))


def main() -> None:
    picks = json.loads((RESULTS / "tuning.json").read_text())["picks"]
    for model, cells in CELLS.items():
        path = BUNDLED / model / "unlearning_config.json"
        config = json.loads(path.read_text())
        config.setdefault("default", {})
        for kind, cell in cells.items():
            chosen = verified_choice(cell)
            at_budget = picks.get(cell, {}).get(BUDGET)
            if chosen is None or at_budget is None:
                continue
            if cell in HELD_BACK:
                print(f"{model} {kind}: {chosen['method']} held back: {HELD_BACK[cell]}")
                continue
            for method, pick in at_budget.items():
                fields = {k: v for k, v in pick["fields"].items()}
                if method == chosen["method"].split("/")[0]:
                    fields = dict(chosen["fields"])
                fields = {**fields, "budget": int(BUDGET) / 100}
                name = method.split("/")[0]
                if "/" in method:  # LoTUS under the paper's stop: one field apart, not a method of its own
                    continue
                if kind == "classes":
                    config.setdefault(name, {})["classes"] = fields
                else:
                    classes = config.get(name, {}).get("classes")
                    config[name] = {**fields, **({"classes": classes} if classes else {})}
            config["default"][kind] = chosen["method"].split("/")[0]
            print(
                f"{model} {kind}: {chosen['method']} {chosen['fields']} ({chosen['from']}: forgotten and kept on "
                f"{chosen['forgotten']} of {chosen['seeds']} tuning seeds, Avg Gap {chosen['avg_gap']:.4f})"
            )
        config["_comment"] = (
            "What this model runs when nobody names a method (benchmarks/defaults.py): `default` names, per request "
            "kind, the method whose setting its budgeted tuning verified `forgotten` (utility kept) most often within "
            "10% of a retraining; each method's fields are its 10% pick by Avg Gap (benchmarks/tune.py), the "
            "default's the setting so verified, each with `budget` 0.1 (a kind not yet tuned at budgets keeps its "
            "earlier picks). `classes` holds a method's fields for whole classes."
        )
        if not config["default"]:  # nothing of this model was tuned at budgets yet: its file stays as it is
            continue
        ordered = {"_comment": config.pop("_comment"), "default": config.pop("default"), **config}
        path.write_text(json.dumps(ordered, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundled-check", metavar="CELL", choices=sorted(CHECK_REQUEST), help="run the amendment's check"
    )
    args = parser.parse_args()
    bundled_check(args.bundled_check) if args.bundled_check else main()
