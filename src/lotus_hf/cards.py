"""Model cards of unlearned checkpoints, rendered with `huggingface_hub` from templates/model_card.md.

The YAML header is a `ModelCardData` (base model, data sets, tags, and a `model-index` of `EvalResult`s that
the Hub parses); the body says what was forgotten (a fingerprint, never samples), the checkpoint's whole
unlearning history, the hyper-parameters, LoTUS's per-epoch probes, the metrics and the library versions.
"""

from __future__ import annotations

import math
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .cost import describe_cost
from .evaluation import markdown_table, report_table
from .names import dataset_id, hub_id
from .version import __version__

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
TAGS = ["lotus-hf", "machine-unlearning", "image-classification"]
LOTUS_CITATION = """@inproceedings{spartalis2025lotus,
  title     = {LoTUS: Large-Scale Machine Unlearning with a Taste of Uncertainty},
  author    = {Spartalis, Christoforos N. and Semertzidis, Theodoros and Gavves, Efstratios and Daras, Petros},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2025},
  note      = {arXiv:2503.18314}
}"""


def unlearning_card(
    *,
    model_name: str,
    base_model: str,
    config,
    forget: dict,
    report: dict,
    lineage: list[dict],
    dataset: str | None = None,
    history: list[dict] | None = None,
) -> ModelCard:
    """The model card of an unlearned checkpoint.

    Args:
        model_name: the checkpoint's name (its folder or repo name).
        base_model: the model it was unlearned from, with `@revision` when one was asked for; it becomes the
            card's `base_model` field when it is a Hub id.
        config: the run's config: `config.card_description()` says how the
            model was unlearned, its `method_hyperparameters()` the settings that define the run.
        forget: the forget request's fingerprint (`UnlearningData.fingerprint`).
        report: `UnlearningReport.to_dict()`, or `{}` when the model was not evaluated.
        lineage: every unlearning step of the checkpoint (`lotus_hf.provenance.history_step`), oldest first,
            ending with this one.
        dataset: the data set unlearned on (name, folder or Hub id).
        history: the trainer's per-epoch history; LoTUS's probes (entries with `tau`) get a table.
    """
    probes = [entry for entry in history or () if "tau" in entry]
    datasets = [hub_id(d) for d in dict.fromkeys(dataset_id(step.get("dataset")) for step in lineage) if hub_id(d)]
    base = hub_id(base_model)
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        base_model=base,
        base_model_relation="finetune" if base else None,
        datasets=datasets or None,
        tags=TAGS,
        model_name=model_name,
        eval_results=_eval_results(report, dataset_id(dataset)) or None,
    )
    seconds = report.get("unlearning_seconds")
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        base_model=base_model,
        description=config.card_description(),
        outcome=_outcome(probes),
        forget=forget,
        per_class=", ".join(f"{k}: {v}" for k, v in (forget.get("per_class") or {}).items()),
        lineage=lineage,
        hyperparameters=config.method_hyperparameters(),
        probes=probes,
        seconds="-" if seconds is None else f"{seconds:.1f}",
        cost=describe_cost(report["cost"]) if report.get("cost") else "",
        metrics_table=report_table(report),
        verification=report.get("verification") or {},
        evidence_table=evidence_table(report.get("verification") or {}),
        notes=report.get("notes") or [],
        versions=_versions(),
        citation=LOTUS_CITATION,
    )
    return ModelCard(card.content + "\n")  # jinja drops the template's last newline


def _eval_results(report: dict, dataset: str | None) -> list[EvalResult]:
    """The unlearned model's metrics as `model-index` entries (finite values only)."""
    unlearned = report.get("rows", {}).get("unlearned", {})
    name = dataset or "unknown"
    return [
        EvalResult(
            task_type="image-classification",
            task_name="Image classification after unlearning",
            dataset_type=hub_id(name) or Path(name).name,
            dataset_name=name,
            metric_type=key,
            metric_name=key,
            metric_value=round(value, 6),
        )
        for key, value in unlearned.items()
        if isinstance(value, float) and math.isfinite(value)
    ]


def _outcome(probes: list[dict]) -> str:
    stopping = next((e for e in probes if e.get("stop")), None)
    if stopping is not None:
        where = (
            f"in epoch {stopping['epoch']}, at the probe after step {stopping['step']}"
            if stopping.get("probe")
            else f"at the probe before epoch {stopping['epoch']}"
        )
        return f"Here the stop rule ended training {where}."
    if probes:
        return f"Here its {len(probes)} probes never fired the stop rule: the run ended at its epochs or its budget."
    return ""


def evidence_table(verification: dict) -> str:
    """The tests behind a verdict (`lotus_hf.evidence`) as a markdown table, rounded for display only."""
    rows = verification.get("evidence") or []
    if not rows:
        return ""
    header = [
        "test",
        "statistic",
        "95% interval",
        "unseen data",
        "never-seen at most",
        "forget",
        "held-out",
        "outcome",
    ]
    table = markdown_table(
        header,
        [
            [
                e["test"],
                e["statistic"],
                f"[{e['interval'][0]:.4f}, {e['interval'][1]:.4f}]",
                f"{e['expected']:.2f}",
                f"{e['threshold']:.3g}",
                str(e["n_forget"]),
                str(e["n_heldout"]),
                e["outcome"],
            ]
            for e in rows
        ],
    )
    if any(e["test"].startswith("heldout_unseen") for e in rows):
        table += (
            "\n\n`heldout_unseen_*` compare the held-out images read (under `forget`) with the test split's other "
            "half (under `held-out`): a model trained on neither cannot tell them apart."
        )
    kept = verification.get("utility")
    return table if not kept else f"{table}\n\n{utility_line(kept)}"


def utility_line(kept: dict) -> str:
    """The verdict's utility in one line (`lotus_hf.evidence.utility`).

    >>> line = utility_line({"outcome": "kept", "accuracy": 0.906, "original_accuracy": 0.912, "drop": 0.006,
    ...                      "interval": [0.002, 0.01], "margin": 0.05, "n_heldout": 5000})
    >>> line[:60]
    'utility: kept (held-out accuracy 0.9060 against the original'
    """
    low, high = kept["interval"]
    return (
        f"utility: {kept['outcome']} (held-out accuracy {kept['accuracy']:.4f} against the original's "
        f"{kept['original_accuracy']:.4f}: a drop of {kept['drop']:.4f} [{low:.4f}, {high:.4f}] on "
        f"{kept['n_heldout']} images; damaged when surely above {kept['margin']:.2f})"
    )


def _versions() -> dict[str, str]:
    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown"

    return {
        "lotus-hf": __version__,
        "transformers": installed("transformers"),
        "torch": installed("torch"),
        "python": platform.python_version(),
    }
