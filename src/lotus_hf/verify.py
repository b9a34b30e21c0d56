"""Verify a deletion request against a model, as an auditor would (`lotus-hf verify`): is the request in the
model's unlearning history, and what does the model know about that forget set now?

The request is fingerprinted again from the data set (SHA-256 of the sorted sample ids, as when it was
unlearned) and looked up in the history every lotus-hf checkpoint keeps in its config
(`lotus_hf_unlearning`). The model is then measured on that forget set (accuracies, MIA, RF-JSD against the
step's base model when it can be loaded) next to what its report recorded.

Example:
    >>> result = verify("me/model-unlearned", "me/data", ForgetRequest.classes(["cat"]))  # doctest: +SKIP
    >>> result.step, result.rows["measured"]["acc_forget"]  # doctest: +SKIP
    (1, 0.02)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .data import ForgetRequest, load_image_dataset, prepare_unlearning_data
from .evaluation import evaluate_unlearning
from .hub import ModelError, load_model, model_file

MEASURED = ("acc_forget", "acc_retain", "acc_test", "mia", "rf_jsd", "rf_jsd_reference")


@dataclass
class Verification:
    """What `verify` found: the request's fingerprint, the history step holding it (1-based; None when the
    model's history does not hold it), the history, and the metrics recorded and measured now."""

    fingerprint: dict
    history: list[dict]
    step: int | None
    rows: dict[str, dict] = field(default_factory=dict)  # "recorded" (when known) and "measured"
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        keys = [k for k in MEASURED if any(k in row for row in self.rows.values())]
        lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, row in self.rows.items():
            cells = ["-" if row.get(k) is None else f"{row[k]:.4f}" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def verify(
    model: str,
    dataset: str,
    request: ForgetRequest,
    *,
    revision: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    seed: int | None = None,
) -> Verification:
    """Look `request` up in the unlearning history of `model` (a folder, bundled name or Hub id) and measure
    the model on its forget set. `seed` splits the test split into unseen and test data as the run did
    (default: the seed the model's report.json records, else 3407)."""
    network, processor = load_model(model, revision)
    history = list(getattr(network.config, "lotus_hf_unlearning", None) or [])
    name = f"{model}@{revision}" if revision else model
    report_path = model_file(name, "report.json")
    report = json.loads(report_path.read_text()) if report_path else {}
    recorded_seed = report.get("training", {}).get("hyperparameters", {}).get("seed")
    data_set = load_image_dataset(dataset, image_column=image_column, label_column=label_column)
    seed = seed or recorded_seed or 3407
    data = prepare_unlearning_data(data_set, request, processor, seed=seed)
    sha = data.fingerprint["sha256"]
    step = next(
        (i for i, entry in enumerate(history, 1) if entry.get("forget", {}).get("sha256") == sha), None
    )
    result = Verification(fingerprint=data.fingerprint, history=history, step=step)
    if step is None:
        return result
    # The run that unlearned this request recorded its metrics when it is the model's last step.
    if step == len(history) and report.get("forget", {}).get("sha256") == sha:
        result.rows["recorded"] = {k: report["rows"]["unlearned"].get(k) for k in MEASURED}
    else:
        result.notes.append(
            f"the model's report.json is of a later step: no metrics recorded for step {step}"
        )
    original = _original(history[step - 1].get("base_model"), result)
    rows = evaluate_unlearning(original if original is not None else network, network, data, seed=seed).rows
    measured = {k: rows["unlearned"].get(k) for k in MEASURED}
    if original is None:  # RF-JSD's reference is the original's outputs on unseen data
        measured["rf_jsd"] = measured["rf_jsd_reference"] = None
    result.rows["measured"] = measured
    return result


def _original(base_model: str | None, result: Verification):
    """The step's base model, for RF-JSD; None (with a note) when it cannot be loaded here."""
    if not base_model:
        return None
    try:
        return load_model(base_model)[0]
    except ModelError as error:
        result.notes.append(f"RF-JSD not measured: the base model {base_model!r} cannot be loaded ({error})")
        return None
