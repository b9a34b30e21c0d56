"""Verify a deletion request as an auditor would (`lotus-hf verify`): does the model behave, on the forget set,
as a model that never saw it would? And is the model at hand the one its unlearning history describes?

The verdict comes from the model's behaviour alone (`lotus_hf.evidence`): its outputs on the forget set against
its outputs on the held-out half of the test split that an unlearning run never calibrates on. It holds for any
image classifier, unlearned by lotus-hf, by another tool, or retrained from scratch. The model's unlearning
history (`lotus_hf.provenance`) is checked against its weights and reported next to the verdict, never counted
as evidence. A receipt (`VerifyResult.receipt`) records the request, the model's hashes, every test and the
command that re-runs the check; `recheck` re-runs it.

Example:
    >>> result = verify("me/model-unlearned", "me/data", ForgetRequest.classes(["cat"]))  # doctest: +SKIP
    >>> result.verdict, result.history["weights_match"]  # doctest: +SKIP
    ('forgotten', True)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .cards import evidence_table
from .data import (
    UnlearningData,
    auditor_heldout,
    class_names_of,
    heldout_examples,
    load_image_dataset,
    verification_splits,
)
from .errors import ArgumentError, ModelError
from .evaluation import predict_logits
from .evidence import Verification, log_softmax, measurements_agree, verify_outputs
from .loading import load_model, model_file
from .names import split_revision
from .provenance import body_change, check_history, check_trained_without, model_history, weights_sha256
from .requests import DEFAULT_SEED, ForgetRequest, forget_fingerprint
from .version import __version__


@dataclass
class VerifyResult:
    """What `verify` found. `to_dict()` is what `lotus-hf verify --json` prints: at least `verdict`, `step` (the
    history step holding the request, or None), `weights_match` (True, False or None) and `evidence`."""

    verification: Verification
    history: dict
    request: ForgetRequest
    fingerprint: dict
    seed: int
    model: dict
    dataset: dict
    arguments: dict
    notes: list[str]

    @property
    def verdict(self) -> str:
        return self.verification.verdict

    @property
    def exit_code(self) -> int:
        return self.verification.exit_code

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "step": self.history["step"],
            "weights_match": self.history["weights_match"],
            **self.verification.to_dict(),
            "request": {
                "description": self.request.describe(),
                "fingerprint": self.fingerprint,
                "seed": self.seed,
            },
            "model": self.model,
            "dataset": self.dataset,
            "history": self.history,
            "notes": self.notes,
        }

    def to_text(self) -> str:
        """What `lotus-hf verify` prints: the request, the model and its history checks, the tests, the verdict."""
        history, model = self.history, self.model
        lines = [
            f"request: {self.request.describe()} of {self.dataset['name']}, {self.fingerprint['size']} samples, "
            f"SHA-256 {self.fingerprint['sha256']}",
            f"model: {model['name']}"
            + (f"@{model['revision']}" if model["revision"] else "")
            + (f" (commit {model['commit']})" if model["commit"] else "")
            + f", weights SHA-256 {model['weights_sha256']}",
        ]
        match = {True: "yes", False: "NO", None: "unverifiable"}
        if history["steps"]:
            where = f"step {history['step']} of {history['steps']}" if history["step"] else "not in it"
            lines.append(
                f"unlearning history: {history['steps']} step(s); this request: {where}; the weights are the "
                f"last step's: {match[history['weights_match']]}"
                + (
                    f"; step {history['step']} started from its base model: {match[history['base_match']]}"
                    if history["step"] and history["weights_match"] is not None
                    else ""
                )
            )
        lines += [f"note: {note}" for note in [*history["notes"], *self.notes]]
        lines += ["", evidence_table(self.verification.to_dict())]
        lines += ["", f"verdict: {self.verdict}", self.verification.advice]
        return "\n".join(lines)

    def command(self) -> str:
        """The command that re-runs this check."""
        args = self.arguments
        parts = [
            "lotus-hf",
            "verify",
            "--model",
            args["model"],
            "--dataset",
            args["dataset"],
            *self.request.flags(),
            "--seed",
            str(self.seed),
        ]
        for flag, key in (
            ("--revision", "revision"),
            ("--image-column", "image_column"),
            ("--label-column", "label_column"),
            ("--original", "original"),
            ("--heldout", "heldout"),
        ):
            if args.get(key):
                parts += [flag, str(args[key])]
        if args.get("reference_models"):
            parts += ["--reference-models", ",".join(args["reference_models"])]
        return " ".join(_quote(p) for p in parts)

    def receipt(self) -> dict:
        """What an auditor files: the request and its fingerprint, the model (id, revision, hashes), the history
        checks, every test with its statistic and intervals, the verdict, and how to re-run the check. Its
        `receipt_sha256` covers everything else in it, so an edit shows."""
        body = {
            "receipt": "lotus-hf verification receipt, version 1",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tool": _versions(),
            **self.to_dict(),
            "command": self.command(),
            "arguments": {**self.arguments, "request": self.request.to_dict(), "seed": self.seed},
        }
        return {**body, "receipt_sha256": _digest(body)}


def verify(
    model: str,
    dataset: str | None = None,
    request: ForgetRequest | None = None,
    *,
    revision: str | None = None,
    seed: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    reference_models: list[str] | None = None,
    data: UnlearningData | None = None,
    original: str | None = None,
    heldout: str | None = None,
) -> VerifyResult:
    """Verify `request` (a `ForgetRequest`) against `model` (a folder, bundled name or Hub id `ORG/NAME[@REV]`) on
    `dataset`, from the model's behaviour; check its unlearning history against its weights.

    `seed` splits the test split into the half an unlearning run calibrates on and the half verified on, and draws
    a fraction request; by default it is the seed the history step holding the request recorded (the run's), else
    3407. `reference_models`: models trained without the forget set (`lotus-hf train --like ORIGINAL` with the
    same forget flags and other seeds) for the per-example test. `data`: an `UnlearningData` already prepared,
    instead of `dataset` (its `test` split is the held-out data; `seed` defaults to the one it was prepared with).
    `original`: the model the unlearning started from, whose held-out accuracy the verdict's `utility` compares with
    (default: the first base model of the model's unlearning history, when it loads here). `heldout`: the auditor's
    own held-out images (a folder or Hub id, same classes), which replace the test split's half in every test; the
    result records their fingerprint."""
    if request is None:
        raise ArgumentError("`request` must be given: the deletion request to verify (a `ForgetRequest`).")
    name, revision = (model, revision) if revision else split_revision(model)
    network, processor = load_model(name, revision)
    network.eval()
    history = model_history(network)
    if data is not None:
        if seed is None and data.seed is None:
            raise ArgumentError("`seed` must be given with `data`: the seed its unseen/test split was drawn with.")
        if seed is not None and data.seed is not None and seed != data.seed:
            raise ArgumentError(
                f"`seed` ({seed}) is not the seed `data`'s unseen/test split was drawn with ({data.seed}): "
                "leave `seed` out to use that one."
            )
        seed = data.seed if seed is None else seed
        forget, held, fingerprint, class_names = data.forget, data.test, data.fingerprint, data.class_names
        other = data.unseen
    else:
        if dataset is None:
            raise ArgumentError("`dataset` must name the data set the request refers to (or pass `data`).")
        loaded = load_image_dataset(dataset, image_column=image_column, label_column=label_column)
        if seed is None:
            seed = _recorded_seed(history, request, loaded)
        if request.kind == "fraction":
            request = ForgetRequest.fraction(request.value[0], seed=seed)
        forget, held, other, fingerprint = verification_splits(loaded, request, processor, seed=seed)
        class_names = class_names_of(loaded)
    private = None
    if heldout is not None:  # the auditor's own held-out images, never the model owner's choice
        held, private = auditor_heldout(heldout, class_names, processor)
        other = None  # the auditor's set is not half of the test split: no twin to compare it with
    notes = [w for r in reference_models or [] if (w := check_trained_without(r, fingerprint, "reference_models"))]
    references = [load_model(r)[0].eval() for r in reference_models or []]

    def log_probs(m, rows):
        return log_softmax(predict_logits(m, rows).double().numpy())

    kind = fingerprint.get("kind")
    classes = sorted(set(np.asarray(forget.labels).tolist())) if kind == "classes" else None
    before, note = _original(original, history)  # the model the unlearning started from, for its utility
    notes += [note] if note else []
    verification = verify_outputs(
        log_probs(network, forget),
        np.asarray(forget.labels),
        log_probs(network, held),
        np.asarray(held.labels),
        kind=kind,
        forgotten_classes=classes,
        reference_forget=[log_probs(r, forget) for r in references] or None,
        reference_heldout=[log_probs(r, held) for r in references] or None,
        method=(history[-1].get("method") if history else None),
        original_heldout=log_probs(before, held) if before is not None else None,
        body_change=body_change(network, before) if before is not None else None,
        calibration_log_probs=log_probs(network, other) if other is not None else None,
        calibration_labels=np.asarray(other.labels) if other is not None else None,
    )
    weights = weights_sha256(network)
    checks = check_history(history, weights, fingerprint["sha256"], base_weights=_base_weights)
    model_info = {
        "name": name,
        "revision": revision,
        "commit": _commit(name, revision),
        "weights_sha256": weights,
        "files": _file_hashes(name, revision),
    }
    where = (
        f"the auditor's own held-out set {heldout!r} ({len(held)} images)"
        if private
        else f"the test split's half an unlearning run with seed {seed} does not calibrate on ({len(held)} images)"
    )
    dataset_info = {
        "name": dataset,
        "heldout": where,
        "forget_samples": len(forget),
        **({"heldout_fingerprint": private} if private else {}),
    }
    arguments = {
        "model": name,
        "revision": revision,
        "dataset": dataset,
        "image_column": image_column,
        "label_column": label_column,
        "reference_models": list(reference_models or []),
        "original": original,
        "heldout": heldout,
    }
    return VerifyResult(verification, checks, request, fingerprint, seed, model_info, dataset_info, arguments, notes)


def _recorded_seed(history: list[dict], request: ForgetRequest, dataset) -> int:
    """The seed the run that unlearned `request` recorded (its history step's), else `DEFAULT_SEED`. A fraction
    request is found by its description, since its samples depend on the seed; any other by its fingerprint."""
    if request.kind == "fraction":
        steps = [s for s in history if (s.get("forget") or {}).get("request") == request.describe()]
    else:
        train = dataset["train"] if "train" in dataset else None
        if train is None:
            return DEFAULT_SEED
        labels, names = np.asarray(train["label"]), class_names_of(dataset)
        sha = forget_fingerprint(request, request.resolve(labels, names), labels, names)["sha256"]
        steps = [s for s in history if (s.get("forget") or {}).get("sha256") == sha]
    seeds = [s.get("seed") for s in steps if s.get("seed") is not None]
    return int(seeds[-1]) if seeds else DEFAULT_SEED


def _original(name: str | None, history: list[dict]) -> tuple[torch.nn.Module | None, str | None]:
    """The model an unlearning started from, and a note when the history's could not be used: `name` (the
    auditor's), else the first base model of the model's unlearning history, when it loads here and its weights are
    the ones the history records the unlearning started from. A history says what its writer chose: a base model
    with other weights (a forged history, or a `--fit-head` run's new head) would make the utility and the
    `body_kept` test compare with the wrong model, so it is not used. None: the verdict has neither."""
    if name:
        try:
            return load_model(name)[0].eval(), None
        except (ModelError, OSError, ValueError):
            return None, None
    base = history[0].get("base_model") if history else None
    if not base:
        return None, None
    try:
        model = load_model(base)[0].eval()
    except (ModelError, OSError, ValueError):
        return None, None
    if weights_sha256(model) != history[0].get("weights_before"):
        return None, (
            f"the history's base model {base!r} loads here, but its weights are not the ones the history records "
            "the unlearning started from: no utility and no `body_kept` test. Pass `--original` (the model as you "
            "had it before the request) for both."
        )
    return model, None


def _base_weights(name: str | None) -> str | None:
    """SHA-256 of the weights of the base model `name`, or None when it cannot be loaded here."""
    if not name:
        return None
    try:
        return weights_sha256(load_model(name)[0])
    except ModelError:
        return None


def _commit(name: str, revision: str | None) -> str | None:
    """The Hub commit a downloaded model was read from (its cache folder names it), or None for a local folder."""
    path = model_file(f"{name}@{revision}" if revision else name, "config.json")
    parts = path.parts if path is not None else ()
    if "snapshots" in parts and parts.index("snapshots") + 1 < len(parts):
        return parts[parts.index("snapshots") + 1]
    return None


def _file_hashes(name: str, revision: str | None) -> dict[str, str]:
    """SHA-256 of the model's weight and config files, as stored."""
    hashes = {}
    for filename in ("model.safetensors", "config.json"):
        path = model_file(f"{name}@{revision}" if revision else name, filename)
        if path is not None:
            hashes[filename] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"lotus-hf": __version__}
    for package in ("transformers", "torch", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _quote(part: str) -> str:
    import shlex

    return shlex.quote(part)


# ------------------------------------------------------------------------------------------ receipts
def write_receipt(result: VerifyResult, path: str | Path) -> Path:
    """Write `result.receipt()` to `path` as JSON, atomically; an existing file is never overwritten."""
    from .saving import write_new_file

    return write_new_file(path, json.dumps(result.receipt(), indent=2) + "\n", "receipt")


# what a re-check compares, besides the weights' hashes
_RECHECKED = ("verdict", "step", "weights_match")


def recheck(path: str | Path, heldout: str | None = None) -> tuple[bool, list[str], VerifyResult]:
    """Re-run the check a receipt records and compare: `(confirmed, differences, the new result)`. A receipt whose
    `receipt_sha256` does not cover its contents was edited, and is not confirmed. A check made on the auditor's own
    held-out set needs that set again (`heldout`), and a set whose fingerprint differs is refused."""
    try:
        receipt = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ArgumentError(f"`recheck` {str(path)!r} is not a readable receipt ({error}).") from None
    if not isinstance(receipt, dict) or "arguments" not in receipt or "receipt_sha256" not in receipt:
        raise ArgumentError(f"`recheck` {str(path)!r} is not a lotus-hf verification receipt.")
    differences = []
    body = {k: v for k, v in receipt.items() if k != "receipt_sha256"}
    if _digest(body) != receipt["receipt_sha256"]:
        differences.append("the receipt was edited after it was written (its receipt_sha256 does not match)")
    args = dict(receipt["arguments"])
    request = ForgetRequest.from_dict(args.pop("request"))
    recorded = (receipt.get("dataset") or {}).get("heldout_fingerprint")
    if recorded and heldout is None:
        raise ArgumentError(
            f"`recheck` {str(path)!r} was verified on the auditor's own held-out set "
            f"{recorded['name']!r}: pass it again with `heldout` (`--heldout`)."
        )
    if heldout is not None and not recorded:
        raise ArgumentError("`heldout`: this receipt was verified on the test split's half; drop `--heldout`.")
    if heldout is not None:
        found = heldout_examples(heldout)[1]
        if found["sha256"] != recorded["sha256"]:
            raise ArgumentError(
                f"`heldout` {heldout!r} is not the held-out set the receipt was verified on: its examples' SHA-256 is "
                f"{found['sha256']}, the receipt's {recorded['sha256']} ({recorded['size']} images)."
            )
    result = verify(
        args["model"],
        args["dataset"],
        request,
        revision=args["revision"],
        seed=args["seed"],
        image_column=args["image_column"],
        label_column=args["label_column"],
        reference_models=args["reference_models"] or None,
        original=args.get("original"),
        heldout=heldout,
    )
    now = result.to_dict()
    for key in _RECHECKED:
        if now[key] != receipt.get(key):
            differences.append(f"{key}: receipt {receipt.get(key)!r}, now {now[key]!r}")
    if now["model"]["weights_sha256"] != receipt["model"]["weights_sha256"]:
        differences.append("the model's weights differ from those the receipt names")
    recorded = {e["test"]: e for e in receipt.get("evidence", [])}
    for evidence in now["evidence"]:
        before = recorded.get(evidence["test"])
        if before is None or not measurements_agree(before, evidence):
            differences.append(
                f"{evidence['test']}: statistic {before and before['statistic']} -> {evidence['statistic']}"
            )
    return not differences, differences, result
