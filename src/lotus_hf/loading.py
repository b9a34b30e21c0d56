"""Models in: load an image classifier by name (bundled, local folder or Hub id `ORG/NAME[@REV]`) with its image
processor, as safetensors only and without remote code unless asked, find one of its files, and check its labels
against a data set's classes."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError
from .names import split_revision

BUNDLED_DIR = Path(__file__).parent / "bundled"


BUNDLED_MODELS = ("fashion-mnist-resnet", "fashion-mnist-vit")


def resolve_model(name: str) -> str:
    """A bundled model's folder for `fashion-mnist-resnet` / `fashion-mnist-vit`, else `name` unchanged."""
    if name in BUNDLED_MODELS:
        return str(BUNDLED_DIR / name)
    return name


def model_file(name: str, filename: str) -> Path | None:
    """The path of `filename` in a model (bundled name, folder or Hub id `ORG/NAME[@REV]`, downloaded into the
    cache), or None when the model has no such file or cannot be reached."""
    from transformers.utils import cached_file

    name, revision = split_revision(name)
    try:
        path = cached_file(
            resolve_model(name),
            filename,
            revision=revision,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:  # no such model: loading it says so, with the fix
        return None
    return Path(path) if path else None


def _draw_new_head(model, num_labels: int) -> None:
    """Draw the classification head afresh. transformers re-initialises a head only when the checkpoint's has another
    shape (`ignore_mismatched_sizes`), so a checkpoint with as many classes as the new data set kept its old head, its
    rows now read as the new classes' (a ViT trained on Fashion-MNIST's ten classes fine-tuned on ten digits)."""
    import torch

    if hasattr(model, "timm_model"):  # TimmWrapperForImageClassification: the head is timm's classifier
        heads = [model.timm_model.get_classifier()]
    else:  # every linear layer outside the backbone that outputs one logit per class (DeiT has two)
        backbone = f"{model.base_model_prefix}."
        heads = [
            module
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
            and module.out_features == num_labels
            and not name.startswith(backbone)
        ]
    if not heads:
        raise ModelError(
            f"{type(model).__name__} has no linear head with {num_labels} outputs to draw afresh: fine-tune a model "
            "whose classification head is a linear layer, or pass one with another number of classes."
        )
    for module in heads:
        module.reset_parameters()


def load_model(
    name: str, revision: str | None = None, trust_remote_code: bool = False, new_head: list[str] | None = None
):
    """`(model, image_processor)` from a bundled name, a local folder or a Hub id (`ORG/NAME[@REV]`).

    Weights are read as safetensors only; remote code runs only when asked for. `new_head=class_names`
    replaces the classification head by a freshly initialised one for those classes.

    Example:
        >>> model, processor = load_model("fashion-mnist-resnet")
        >>> model.config.num_labels
        10
    """
    from safetensors import SafetensorError
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    if revision is None:
        name, revision = split_revision(name)
    path = resolve_model(name)
    local = Path(path)
    if (local.is_absolute() or path.startswith(".")) and not local.exists():
        raise ModelError(f"`model` {name!r} does not exist: pass a model folder, a Hub id or one of {BUNDLED_MODELS}.")
    try:
        head = {}
        if new_head is not None:
            head = {
                "num_labels": len(new_head),
                "id2label": dict(enumerate(new_head)),
                "label2id": {n: i for i, n in enumerate(new_head)},
                "ignore_mismatched_sizes": True,
            }
        model, loaded = AutoModelForImageClassification.from_pretrained(
            path,
            revision=revision,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
            **head,
        )
        if new_head is not None and not loaded["mismatched_keys"]:
            _draw_new_head(model, len(new_head))
        if new_head is not None and getattr(model.config, "label_names", None) is not None:
            # transformers 5.25's TimmWrapperConfig keeps the checkpoint's `label_names` as an attribute, and its
            # to_dict writes them over the new head's id2label: saved and reloaded, the new head's names were gone
            model.config.label_names = list(new_head)
        processor = AutoImageProcessor.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except SafetensorError as error:
        raise ModelError(
            f"`model` {name!r}: its weights cannot be read (SafetensorError: {str(error).splitlines()[0][:200]}): "
            "model.safetensors is truncated or corrupt; download or save the model again."
        ) from None
    except (OSError, ValueError) as error:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        causes = (error, error.__cause__, error.__context__)
        if any(isinstance(cause, RevisionNotFoundError) for cause in causes):
            raise ModelError(
                f"`revision` {revision!r} does not exist in {name!r}: pass a branch, tag or commit id of that repo "
                "(default: main)."
            ) from None
        if any(isinstance(cause, RepositoryNotFoundError) for cause in causes):
            raise ModelError(
                f"`model` {name!r} does not exist on the Hub (or is private and your token cannot read it): check "
                f"the id, log in with `hf auth login`, or pass a model folder or one of {BUNDLED_MODELS}."
            ) from None
        raise ModelError(
            f"`model` {name!r}{'@' + revision if revision else ''} could not be loaded as an image classifier with "
            f"safetensors weights: pass a model folder, a Hub id or one of {BUNDLED_MODELS}. "
            f"({type(error).__name__}: {str(error).splitlines()[0][:300]})"
        ) from None
    model.config.name_or_path = name if revision is None else f"{name}@{revision}"
    return model, processor


def check_labels(model, class_names: list[str]) -> None:
    """Raise `ModelError` when the model's head does not match the data set's classes."""
    num_labels = model.config.num_labels
    if num_labels != len(class_names):
        raise ModelError(
            f"the model has {num_labels} labels but the data set has {len(class_names)} classes: pass a model "
            "trained on this data set, or add `--fit-head` to fine-tune a new head on it first."
        )
    names = [str(model.config.id2label.get(i, "")) for i in range(num_labels)]
    if all(name.startswith("LABEL_") for name in names):
        return  # a head with no label names: the count is all we can check
    mismatched = [(a, b) for a, b in zip(names, class_names, strict=True) if a.lower() != b.lower()]
    if mismatched:
        model_name, data_name = mismatched[0]
        raise ModelError(
            f"the model's labels do not match the data set's classes (first difference: model {model_name!r}, "
            f"data set {data_name!r}): pass a model trained on this data set, in the same label order, or add "
            "`--fit-head` to fine-tune a new head on the data set first."
        )
