"""Models to the Hub: one push path (`push_folder`, one commit) for the CLI, the Space and `trainer.push_to_hub()`,
a token check before any work, and `Lineage` (where an unlearned model comes from: the one source of its unlearning
history and its card, for a trainer and for `unlearn()`'s result alike)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .cards import unlearning_card
from .errors import HubError
from .provenance import history_step, model_history, weights_sha256


@dataclass
class Lineage:
    """Where an unlearned model comes from: what its unlearning history (`lotus_hf.provenance`) and its card record.
    Taken from the original before any update (`Lineage.of`); the request's fingerprint, the data set's name and
    the run's report are filled in as they become known (`lotus_hf.unlearn` does; with a trainer alone, set
    `trainer.lineage.forget = data.fingerprint` and `trainer.lineage.dataset`)."""

    base_model: str
    previous: list[dict]  # the unlearning history the original came with
    weights_before: str  # SHA-256 of the original's weights
    forget: dict = field(default_factory=dict)  # the request's fingerprint (`UnlearningData.fingerprint`)
    dataset: str | None = None
    report: object = None  # the run's `UnlearningReport`, once evaluated: the card reads it as it is then

    def report_dict(self) -> dict:
        """The report as it is now (notes added after the run included), `{}` before the run is evaluated."""
        return self.report.to_dict() if self.report is not None else {}

    @classmethod
    def of(cls, model, base_model: str | None = None) -> Lineage:
        """The lineage of `model` (the original, before any update), named `base_model` (default: its own name)."""
        name = base_model or getattr(model.config, "name_or_path", None) or "unknown"
        return cls(name, model_history(model), weights_sha256(model))

    def steps(self, config, model) -> list[dict]:
        """The unlearned `model`'s history: the steps the original came with, plus this run's (`config`'s
        settings), with the SHA-256 of `model`'s weights."""
        settings = config.method_hyperparameters()
        step = history_step(
            self.forget,
            method=settings["method"],
            settings=settings,
            base_model=self.base_model,
            before=self.weights_before,
            after=weights_sha256(model),
            seed=config.seed,
            dataset=self.dataset,
        )
        return [*self.previous, step]

    def card(self, model_name: str, config, history: list[dict], steps: list[dict]):
        """The unlearned model's `huggingface_hub.ModelCard`, `steps` being its history (`steps`)."""
        return unlearning_card(
            model_name=model_name,
            base_model=self.base_model,
            config=config,
            forget=self.forget,
            report=self.report_dict(),
            lineage=steps,
            dataset=self.dataset,
            history=history,
        )


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
