"""Models in and out: load by name (bundled, local folder or Hub id), save atomically with a card, push in
one commit. `HubMixin` gives every unlearning trainer the same save, card and push path as the CLI and the
Space.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .cards import unlearning_card

BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED_MODELS = ("fashion-mnist-resnet", "fashion-mnist-vit")


class ModelError(ValueError):
    """A model the user must fix or name differently; the message says how."""


class OutputError(ValueError):
    """An output folder that cannot be used; the message says how to fix it."""


def split_revision(name: str) -> tuple[str, str | None]:
    """`ORG/NAME@REV` -> `("ORG/NAME", "REV")`; a name without `@` (or an existing path) has no revision.

    >>> split_revision("me/model@v1"), split_revision("fashion-mnist-resnet")
    (('me/model', 'v1'), ('fashion-mnist-resnet', None))
    """
    if "@" in name and not Path(name).exists():
        bare, revision = name.rsplit("@", 1)
        return bare, revision
    return name, None


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
        path = cached_file(resolve_model(name), filename, revision=revision,
                           _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)  # fmt: skip
    except OSError:  # no such model: loading it says so, with the fix
        return None
    return Path(path) if path else None


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
    model.config._name_or_path = name if revision is None else f"{name}@{revision}"
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


def write_new_file(path: str | os.PathLike, text: str, what: str = "output") -> Path:
    """Write `text` into the new file `path` atomically (a temporary file beside it, then a rename): it appears
    whole or not at all, and an existing file is never overwritten."""
    path = Path(path)
    if path.exists():
        raise OutputError(
            f"`{what}` {str(path)!r} exists: pass a new file name (nothing is ever overwritten)."
        )
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    except OSError as error:
        raise OutputError(f"`{what}` {str(path)!r} cannot be written ({error.strerror}).") from None
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.chmod(staging, 0o644)
        os.link(staging, path)  # fails if `path` appeared meanwhile: never overwrites
    except FileExistsError:
        raise OutputError(f"`{what}` {str(path)!r} exists: pass a new file name.") from None
    finally:
        os.unlink(staging)
    return path


def write_model_folder(
    directory: str | os.PathLike, model, image_processor, card, report: dict | None = None
) -> None:
    """Write config, safetensors weights, image processor, README.md (the card) and report.json into
    `directory`, readable by all (`save_pretrained` writes the weights 0600; a published model is meant to
    be read). Other files there, such as Trainer checkpoints, are left alone."""
    directory = Path(directory)
    model.save_pretrained(directory)
    if image_processor is not None:
        image_processor.save_pretrained(directory)
    (directory / "README.md").write_text(str(card))
    if report is not None:
        (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "report.json"):
        if (directory / name).exists():
            (directory / name).chmod(0o644)


def save_model_folder(
    output_dir: str | os.PathLike, model, image_processor, card, report: dict | None = None
) -> Path:
    """`write_model_folder` into a new folder `output_dir`, atomically: it appears whole or not at all. A run
    folder (`start_run_folder`) is finished in place instead: the model's files are written beside the
    checkpoints and moved in, the checkpoints removed, and the mark of an unfinished run goes last."""
    output_dir = Path(output_dir)
    if not (output_dir / UNFINISHED_RUN).is_file():
        with atomic_output_dir(output_dir) as staging:
            write_model_folder(staging, model, image_processor, card, report)
        return output_dir
    staging = Path(tempfile.mkdtemp(prefix=".final-", dir=output_dir))
    try:
        write_model_folder(staging, model, image_processor, card, report)
        for file in staging.iterdir():
            os.replace(file, output_dir / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for checkpoint in output_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    (output_dir / UNFINISHED_RUN).unlink()
    return output_dir


# ------------------------------------------------------------------------------ runs that can resume
UNFINISHED_RUN = "unfinished_run.json"


def start_run_folder(output_dir: str | os.PathLike, record: dict) -> Path:
    """Make `output_dir` (absent or empty) the folder of a run that writes checkpoints, marked unfinished with
    `record` (what the run unlearns, from what) until `save_model_folder` finishes it."""
    output_dir = check_output_dir(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    marker = output_dir / UNFINISHED_RUN
    partial = marker.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, marker)
    return output_dir


def unfinished_run(output_dir: str | os.PathLike) -> dict | None:
    """The record of the unfinished run in `output_dir`, or None."""
    marker = Path(output_dir) / UNFINISHED_RUN
    return json.loads(marker.read_text()) if marker.is_file() else None


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
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    message: str | None = None,
    revision: str | None = None,
) -> str:
    """Upload a finished model folder to `repo_id` in one commit (the repo is created if needed); returns
    the commit URL. The one push path of lotus-hf: the CLI, the Space and `trainer.push_to_hub()` use it.

    One commit: the repo on the Hub never holds part of a model. `token` (default: `HF_TOKEN` or the one
    saved by `hf auth login`) is passed to the Hub client for this call only, never stored or printed.
    Trainer checkpoints (`checkpoint-*`) and hidden files in the folder are not pushed."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=message or "Upload unlearned model (lotus-hf)",
            ignore_patterns=["checkpoint-*", ".*", "_*"],
            revision=revision,
        )
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise HubError(
            f"pushing to `push_to_hub` repo {repo_id!r} failed (HTTP {status}: {str(error).splitlines()[0][:200]}): "
            f"check the repo id and that your token can write to it. The model is saved locally in {str(folder)!r}."
        ) from None
    return info.commit_url


class HubMixin:
    """Saving, the model card and pushing, for `UnlearningTrainer` and the baselines' trainers (mix in before
    `Trainer`). The trainer sets `history`; `lotus_hf.unlearn` (or you) set `forget_fingerprint`, `report`
    and `dataset_name` so that the card records the request and the metrics.

    - `save_model` writes the unlearning history into the config (`lotus_hf_unlearning`) and no
      `training_args.bin` (a pickle);
    - `create_model_card` renders templates/model_card.md through `huggingface_hub.ModelCard`;
    - `push_to_hub` saves into `output_dir` and pushes it with `push_folder`, as the CLI does.
    """

    def _init_card(self, model) -> None:
        """What the card and the unlearning history record about where the model comes from: call it in
        `__init__`, before any update."""
        from .provenance import model_history, weights_sha256

        self.base_model = getattr(model.config, "_name_or_path", None) or "unknown"
        self._previous_lineage = model_history(model)
        self._weights_before = weights_sha256(model)
        self.forget_fingerprint: dict = {}
        self.report: dict = {}
        self.dataset_name: str | None = None

    def unlearning_lineage(self, model=None) -> list[dict]:
        """The model's unlearning history: the steps it came with, plus this run, with the SHA-256 of `model`'s
        weights (default: the trainer's, gathered when sharded; every process must call it then)."""
        from .distributed import whole_model
        from .provenance import history_step, weights_sha256

        settings = self.args.method_hyperparameters()
        after = weights_sha256(model if model is not None else whole_model(self))
        step = history_step(self.forget_fingerprint, method=settings["method"], settings=settings,
                            base_model=self.base_model, before=self._weights_before, after=after,
                            seed=self.args.seed, dataset=self.dataset_name)  # fmt: skip
        return [*self._previous_lineage, step]

    def model_card(self, model_name: str | None = None, lineage: list[dict] | None = None):
        """This run's `huggingface_hub.ModelCard`."""
        return unlearning_card(
            model_name=model_name or Path(self.args.output_dir).name,
            base_model=self.base_model,
            config=self.args,
            forget=self.forget_fingerprint,
            report=self.report,
            lineage=lineage or self.unlearning_lineage(),
            dataset=self.dataset_name,
            history=self.history,
        )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save as `Trainer` does, with the unlearning history in the config and without
        `training_args.bin` (a pickle: lotus-hf writes none)."""
        self.model.config.lotus_hf_unlearning = self.unlearning_lineage()  # every process: it may gather
        super().save_model(output_dir, _internal_call)
        pickled = Path(output_dir or self.args.output_dir) / "training_args.bin"
        if self.args.should_save and pickled.exists():
            pickled.unlink()

    def create_model_card(self, model_name: str | None = None, **kwargs) -> None:
        """Write README.md, the model card, into `args.output_dir` (`push_to_hub` calls it too)."""
        from .provenance import model_history

        if self.is_world_process_zero():
            # `save_model` has put this run's step into the config (gathering a sharded model on every process)
            history = model_history(self.model)
            saved = len(history) == len(self._previous_lineage) + 1
            lineage = history if saved else self.unlearning_lineage(self.model)
            Path(self.args.output_dir).mkdir(parents=True, exist_ok=True)
            self.model_card(model_name, lineage).save(Path(self.args.output_dir) / "README.md")

    def push_to_hub(self, commit_message: str | None = None, blocking: bool = True, token: str | None = None,
                    revision: str | None = None, private: bool | None = None, **kwargs) -> str | None:  # fmt: skip
        """Push the unlearned model to `args.hub_model_id` in one commit, as the CLI and the Space do: the whole
        model (gathered when sharded) with its unlearning history, image processor, card and report.json are
        written into a new folder (`save_model_folder`) and pushed with `push_folder`. Returns the commit URL.
        The push is always blocking; `revision` names the branch to push to."""
        import tempfile

        from .distributed import whole_model

        repo_id = self.args.hub_model_id
        if not repo_id:
            raise HubError(
                "`hub_model_id` must be set in the config to push: the repo to push to, as ORG/NAME."
            )
        model = whole_model(self)  # every process takes part in gathering a sharded model
        if not self.is_world_process_zero():
            return None
        lineage = self.unlearning_lineage(model)
        model.config.lotus_hf_unlearning = lineage
        name = kwargs.get("model_name") or repo_id.split("/")[-1]
        private = self.args.hub_private_repo if private is None else private
        with tempfile.TemporaryDirectory(prefix="lotus-hf-push-") as scratch:
            folder = save_model_folder(Path(scratch) / name, model, self.processing_class,
                                       self.model_card(name, lineage), self.report or None)  # fmt: skip
            return push_folder(folder, repo_id, private=bool(private), token=token or self.args.hub_token,
                               message=commit_message, revision=revision)  # fmt: skip
