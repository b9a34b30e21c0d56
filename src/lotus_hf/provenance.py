"""A model's unlearning history, which its weights can be checked against.

Every lotus-hf checkpoint keeps, in its config (`lotus_hf_unlearning`), one entry per unlearning step: the
request's fingerprint, the method and its settings, the tool's version, the split seed, and the SHA-256 of the
weights before and after the step. Editing the history cannot make it describe other weights: `check_history`
tells whether the weights at hand are those the last step produced, whether each step started where the one
before ended, and whether a step changed the weights at all. History without hashes (lotus-hf before 0.2) is read
and reported as unverifiable.

Example:
    >>> import torch
    >>> step = history_step({"sha256": "ab" * 32, "request": "classes=Bag"}, method="lotus", settings={},
    ...                     base_model="me/m", before="11" * 32, after="22" * 32, seed=3407)
    >>> check_history([step], weights="22" * 32, request_sha256="ab" * 32)["weights_match"]
    True
"""

from __future__ import annotations

import hashlib
import json

import torch

RECIPE_FILE = "training_recipe.json"  # how `lotus-hf train` trained a model, and without which forget request
HISTORY_KEY = "lotus_hf_unlearning"  # the config attribute that holds the history
_FINGERPRINT_KEYS = ("kind", "request", "size", "per_class", "sha256")


def weights_sha256(model_or_state_dict) -> str:
    """SHA-256 of a model's tensors in a canonical form: every state-dict entry in name order, as its name, dtype,
    shape and little-endian bytes. Independent of the file layout, the memory format (channels-last) and the
    device, so the weights a run produced and those `from_pretrained` reads back hash alike.

    >>> weights_sha256({"w": torch.zeros(2)}) == weights_sha256({"w": torch.zeros(2).clone()})
    True
    """
    state = model_or_state_dict.state_dict() if hasattr(model_or_state_dict, "state_dict") else model_or_state_dict
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def head_parameters(model: torch.nn.Module) -> set[str]:
    """Names of the parameters of the layer that produces the logits: the last `nn.Linear` (in module order) with as
    many outputs as the model has labels (`config.num_labels`), else the last `nn.Linear`.

    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> sorted(head_parameters(net))
    ['2.bias', '2.weight']
    """
    labels = getattr(getattr(model, "config", None), "num_labels", None)
    linear = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    heads = [(n, m) for n, m in linear if m.out_features == labels] or linear
    if not heads:
        return set()
    name, head = heads[-1]
    return {f"{name}.{p}" if name else p for p, _ in head.named_parameters()}


def body_change(model: torch.nn.Module, original: torch.nn.Module) -> float | None:
    """How far `model`'s parameters outside its head moved from `original`'s: ||theta - theta_0|| / ||theta_0||
    (0 for a model whose head alone was edited), or None when the two do not share an architecture.

    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> edited = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> _ = edited.load_state_dict(net.state_dict())
    >>> with torch.no_grad():
    ...     edited[2].bias[0] = -1e4
    >>> body_change(edited, net)
    0.0
    """
    mine, theirs, head = dict(model.named_parameters()), dict(original.named_parameters()), head_parameters(original)
    if mine.keys() != theirs.keys() or any(mine[n].shape != theirs[n].shape for n in mine):
        return None
    moved = size = 0.0
    for name in mine.keys() - head:
        before = theirs[name].detach().double().cpu()
        moved += float((mine[name].detach().double().cpu() - before).pow(2).sum())
        size += float(before.pow(2).sum())
    return (moved / size) ** 0.5 if size else None


def model_history(model) -> list[dict]:
    """The unlearning history a model's config carries (oldest first), or []."""
    return list(getattr(getattr(model, "config", None), HISTORY_KEY, None) or [])


def history_step(
    forget: dict,
    *,
    method: str,
    settings: dict,
    base_model: str,
    before: str,
    after: str | None,
    seed: int | None,
    dataset: str | None = None,
) -> dict:
    """One step of the history: what was forgotten (the fingerprint, never samples), how, from what, with the
    weights' SHA-256 before and after, and the seed that split the held-out data (and drew a fraction request)."""
    from .version import __version__

    return {
        "base_model": base_model,
        "dataset": dataset,
        "method": method,
        "settings": {k: v for k, v in settings.items() if k != "method"},
        "forget": {key: forget.get(key) for key in _FINGERPRINT_KEYS},
        "seed": seed,
        "weights_before": before,
        "weights_after": after,
        "lotus_hf_version": __version__,
    }


def check_history(history: list[dict], weights: str, request_sha256: str | None = None, base_weights=None) -> dict:
    """What a history proves about the weights whose SHA-256 is `weights`.

    - `step`: the 1-based step that holds the request (`request_sha256`), or None;
    - `weights_match`: the weights are those the last step produced (None: no history, or one without hashes);
    - `chain_intact`: each step started from the weights the one before produced (None without hashes);
    - `base_match`: the step holding the request started from the base model, whose weights' SHA-256
      `base_weights(name)` returns (None when it returns None: the base cannot be loaded here);
    - `unchanged_steps`: steps whose weights after equal those before (a run that changed nothing);
    - `notes`: what an auditor should read.
    """
    step = next(
        (i for i, entry in enumerate(history, 1) if (entry.get("forget") or {}).get("sha256") == request_sha256),
        None,
    )
    result = {
        "step": step,
        "steps": len(history),
        "weights_match": None,
        "chain_intact": None,
        "base_match": None,
        "unchanged_steps": [],
        "notes": [],
    }
    if not history:
        result["notes"].append("The model carries no unlearning history: only its behaviour is evidence.")
        return result
    hashed = all(entry.get("weights_after") and entry.get("weights_before") for entry in history)
    if not hashed:
        result["notes"].append(
            "The history has steps without weight hashes (written before lotus-hf 0.2): it cannot be checked "
            "against the weights and is not evidence."
        )
        return result
    result["weights_match"] = history[-1]["weights_after"] == weights
    result["chain_intact"] = all(
        history[i]["weights_before"] == history[i - 1]["weights_after"] for i in range(1, len(history))
    )
    result["unchanged_steps"] = [i for i, e in enumerate(history, 1) if e["weights_before"] == e["weights_after"]]
    if not result["weights_match"]:
        result["notes"].append(
            "The weights are not those the history's last step produced (edited history, or weights replaced "
            "afterwards): the history is not evidence for these weights."
        )
    if not result["chain_intact"]:
        result["notes"].append("A step of the history did not start from the weights the step before produced.")
    for i in result["unchanged_steps"]:
        result["notes"].append(f"Step {i} left the weights exactly as they were: it forgot nothing.")
    if step is not None and base_weights is not None:
        expected = base_weights(history[step - 1].get("base_model"))
        if expected is not None:
            result["base_match"] = expected == history[step - 1]["weights_before"]
            if not result["base_match"]:
                result["notes"].append(
                    f"Step {step} did not start from the base model it names ({history[step - 1]['base_model']})."
                )
    return result


def check_trained_without(name: str, fingerprint: dict, argument: str = "retrained") -> str | None:
    """Check that the model `name` was trained without exactly this forget request (the fingerprint its
    `training_recipe.json` records, as `lotus-hf train` writes it): raise `DataError` when it records another
    request; return a warning when it records none (what depends on it then assumes it)."""
    from .errors import DataError
    from .loading import model_file

    path = model_file(name, RECIPE_FILE)
    recorded = json.loads(path.read_text()).get("forget") if path else None
    if not recorded:
        return (
            f"`{argument}` {name!r} records no forget request: it is taken to be trained without exactly this forget "
            f"set ({fingerprint.get('request')}, {fingerprint.get('size')} samples)."
        )
    if recorded.get("sha256") != fingerprint.get("sha256"):
        raise DataError(
            f"`{argument}` {name!r} was trained without another forget set ({recorded.get('request')}, "
            f"{recorded.get('size')} samples) than this request ({fingerprint.get('request')}, "
            f"{fingerprint.get('size')} samples), so it compares the wrong things: train one for this request "
            "(`lotus-hf train --like ORIGINAL --dataset ... <the same forget flags>`)."
        )
    return None
