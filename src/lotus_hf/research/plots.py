"""The benchmark's figures, drawn from its results.json: Avg Gap against time, RF-JSD against JSD (with the
Pearson r) and the entropy of each method's outputs on the forget set."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np


def _scatter(ax, summary: dict, methods: list[str], x: str, y: str) -> None:
    """One labelled point per method at the mean of metrics `x`, `y`, with sample-std error bars; LoTUS in red."""
    for method in methods:
        row = summary[method]
        ax.errorbar(
            row[x]["mean"],
            row[y]["mean"],
            xerr=row[x]["std"],
            yerr=row[y]["std"],
            fmt="o",
            capsize=3,
            color="C3" if method == "lotus" else "C0",
        )
        ax.annotate(method, (row[x]["mean"], row[y]["mean"]), fontsize=7, xytext=(4, 4), textcoords="offset points")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(results: dict, folder: Path) -> None:
    """avg_gap_vs_time.png, rf_jsd_vs_jsd.png (with Pearson r) and entropy_histograms.png."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    title = f"{results['model']} / {results['forget']}"
    methods = [m for m in summary if m != "original"]
    fig, ax = plt.subplots(figsize=(6, 4))
    _scatter(ax, summary, methods, "seconds", "avg_gap")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("wall time of the method (s, log)")
    ax.set_ylabel("Avg Gap to the retrained model")
    ax.set_title(title, fontsize=9)
    _save(fig, folder / "avg_gap_vs_time.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    _scatter(ax, summary, results["pearson_points"], "jsd", "rf_jsd")
    r = results["pearson_rf_jsd_vs_jsd"]
    ax.set_xlabel("JSD to the retrained model (forget set)")
    ax.set_ylabel("RF-JSD (no retrained model)")
    ax.set_title(f"{title}\nPearson r = {'-' if r is None else f'{r:.3f}'}", fontsize=9)
    _save(fig, folder / "rf_jsd_vs_jsd.png")

    names = list(summary)
    cols = 4
    fig, axes = plt.subplots(
        math.ceil(len(names) / cols),
        cols,
        figsize=(3 * cols, 2.2 * math.ceil(len(names) / cols)),
        sharex=True,
        squeeze=False,
    )
    runs = results["runs"]
    for ax, method in zip(axes.flat, names, strict=False):
        counts = np.sum([r["forget_entropy_histogram"] for r in runs if r["method"] == method], axis=0)
        edges = np.linspace(0, 1, len(counts) + 1)
        ax.bar(
            edges[:-1],
            counts / max(counts.sum(), 1),
            width=edges[1] - edges[0],
            align="edge",
            color="C3" if method == "lotus" else "C0",
        )
        ax.set_title(method, fontsize=9)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.supxlabel("entropy of the forget-set outputs / ln(classes)")
    fig.suptitle(title, fontsize=9)
    _save(fig, folder / "entropy_histograms.png")


def plot_cost_curves(by_budget: dict[str, dict], path: Path) -> list[str]:
    """Avg Gap and the share of seeds verified `forgotten` with the model's utility kept against cost (share of a
    retraining), one line per method through the budgets it has a row at (a method may lack one: no setting kept
    within that budget in its tuning): where one method is below another at every cost, and where curves cross.
    Returns the methods drawn."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(by_budget.values()))
    methods = [m for results in by_budget.values() for m in results["summary"] if m not in ("original", "retrain")]
    methods = list(dict.fromkeys(methods))  # every budget's methods, in their first order
    fig, (gap_ax, verified_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    # C3 is LoTUS's alone; the others cycle (a tuning run draws a curve per setting: 64 of them)
    others = itertools.cycle(f"C{i}" for i in (0, 1, 2, 4, 5, 6, 7, 8, 9))
    for method in methods:
        reported = [results for results in by_budget.values() if method in results["summary"]]
        rows = [results["summary"][method] for results in reported]
        costs = [row["cost_share"]["mean"] for row in rows]
        gaps = [row["avg_gap"]["mean"] for row in rows]
        verified = []
        for results in reported:
            runs = [run for run in results["runs"] if run["method"] == method]
            kept = sum(run.get("verdict") == "forgotten" and run.get("utility") != "damaged" for run in runs)
            verified.append(kept / max(len(runs), 1))
        style = {
            "color": "C3" if method.startswith("lotus") else next(others),
            # the paper's stop told apart also where a method has one budget (a point, no line to dash)
            "linestyle": "--" if method == "lotus/paper" else "-",
            "marker": "s" if method == "lotus/paper" else "o",
            "markerfacecolor": "none" if method == "lotus/paper" else None,
            "label": method,
        }
        gap_ax.plot(costs, gaps, **style)
        verified_ax.plot(costs, verified, **style)
    for ax, label in (
        (gap_ax, "Avg Gap to the retrained model (lower is better)"),
        (verified_ax, "share of seeds forgotten, utility kept (higher is better)"),
    ):
        ax.set_xlabel("cost, share of a retraining")
        ax.set_ylabel(label)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    verified_ax.set_ylim(-0.05, 1.05)
    gap_ax.legend(fontsize=7)
    fig.suptitle(
        f"{first['model']} / {first['forget']}: budgets {', '.join(f'{b}%' for b in by_budget)} (cost: 3 per example "
        "through forward and backward, 1 through a forward only)",
        fontsize=9,
    )
    _save(fig, path)
    return methods
