"""Models in and out: load by name (bundled, local folder or Hub id) and save atomically with a card."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .trainer import hub_id  # noqa: F401  (re-exported: the Hub helpers live here for users)

BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED_MODELS = ("fashion-mnist-resnet", "fashion-mnist-vit")
DEFAULT_MODEL = "fashion-mnist-resnet"


class ModelError(ValueError):
    """A model the user must fix or name differently; the message says how."""


class OutputError(ValueError):
    """An output folder that cannot be used; the message says how to fix it."""


def resolve_model(name: str) -> str:
    """A bundled model's folder for `fashion-mnist-resnet` / `fashion-mnist-vit`, else `name` unchanged."""
    if name in BUNDLED_MODELS:
        return str(BUNDLED_DIR / name)
    return name


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
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    if revision is None and "@" in name and not Path(name).exists():
        name, revision = name.rsplit("@", 1)
    path = resolve_model(name)
    local = Path(path)
    if (local.is_absolute() or path.startswith(".")) and not local.exists():
        raise ModelError(
            f"`model` {name!r} does not exist: pass a model folder, a Hub id or one of {BUNDLED_MODELS}."
        )
    try:
        head = {}
        if new_head is not None:
            head = {"num_labels": len(new_head), "id2label": dict(enumerate(new_head)),
                    "label2id": {n: i for i, n in enumerate(new_head)}, "ignore_mismatched_sizes": True}  # fmt: skip
        model = AutoModelForImageClassification.from_pretrained(
            path, revision=revision, use_safetensors=True, trust_remote_code=trust_remote_code, **head
        )
        processor = AutoImageProcessor.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code
        )
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
    model.config._name_or_path = name if revision is None else f"{name}@{revision}"
    return model, processor


UNLEARNING_CONFIG_NAME = "unlearning_config.json"


def unlearning_defaults(name: str) -> dict:
    """`UnlearningConfig` fields a model folder recommends for itself, from its `unlearning_config.json`.

    Like `generation_config.json` for text models: settings measured for this model (the bundled ResNet's
    come from benchmarks/results/fashion_mnist_resnet.md). Keys starting with `_` are comments. A folder
    without the file, or a Hub id, gives `{}`.

    Example:
        >>> unlearning_defaults("fashion-mnist-resnet")
        {'alpha': 14.0, 'num_train_epochs': 2}
    """
    from .config import UnlearningConfig

    path = Path(resolve_model(name)) / UNLEARNING_CONFIG_NAME
    if not path.is_file():
        return {}
    values = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    known = set(UnlearningConfig.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ModelError(
            f"{str(path)!r} names {unknown}, which are not `UnlearningConfig` fields: remove them."
        )
    return values


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


def check_output_dir(path: str | os.PathLike) -> Path:
    """Fail early unless `path` is absent or an empty folder in a writable place."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise OutputError(
            f"`output_dir` {str(path)!r} exists and is not empty: pass a new folder (nothing is ever overwritten)."
        )
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise OutputError(
            f"`output_dir` {str(path)!r} cannot be written ({error.strerror}): pass a folder you can write to."
        ) from None
    return path


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike):
    """Yield a hidden temporary folder beside `path` and rename it to `path` only when the block succeeds.

    An interrupted or failed run leaves no folder at `path`, so nothing half-written looks complete.
    """
    path = check_output_dir(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.incomplete-", dir=path.parent))
    try:
        yield staging
        if path.exists():
            path.rmdir()  # an empty folder, checked above
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_pretrained_bundle(
    directory: Path, model, image_processor, card: str, report: dict | None = None
) -> None:
    """Write config, safetensors weights, image processor, README.md (card) and report.json into `directory`."""
    model.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    (directory / "README.md").write_text(card)
    if report is not None:
        (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    # save_pretrained writes the weights 0600; a published checkpoint is meant to be read.
    for file in directory.iterdir():
        file.chmod(0o644)


class HubError(ValueError):
    """A Hub operation the user can fix (token, repo id, permissions); the message says how."""


def check_push_token() -> str:
    """Fail before any work when `--push-to-hub` cannot succeed: no token, or one the Hub refuses.

    The token comes from the usual places (`HF_TOKEN`, `hf auth login`); it is never printed or stored.
    Returns the user name."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if get_token() is None:
        raise HubError(
            "`push_to_hub` needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login`."
        )
    try:
        return HfApi().whoami()["name"]
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise HubError(
            f"the Hub refused the token (HTTP {status}): set HF_TOKEN to a valid token with write access, or "
            "run `hf auth login`."
        ) from None


def push_folder(
    folder: str | os.PathLike, repo_id: str, private: bool = False, message: str | None = None
) -> str:
    """Upload a finished model folder to `repo_id` in one commit (created if needed); returns the commit URL.

    One commit: the repo on the Hub never holds part of a model."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=message or "Upload unlearned model (lotus-hf)",
        )
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise HubError(
            f"pushing to `push_to_hub` repo {repo_id!r} failed (HTTP {status}: {str(error).splitlines()[0][:200]}): "
            f"check the repo id and that your token can write to it. The model is saved locally in {str(folder)!r}."
        ) from None
    return info.commit_url
