"""Models to the Hub: one push path (`push_folder`, one commit) for the CLI, the Space and `trainer.push_to_hub()`,
a token check before any work, `Lineage` (where an unlearned model comes from: the one source of its unlearning
history and its card, for a trainer and for `unlearn()`'s result alike), and `HubMixin`, which gives every
unlearning trainer the same save, card and push as the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .cards import unlearning_card
from .errors import HubError
from .provenance import history_step, model_history, weights_sha256
from .saving import save_model_folder


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
    report: dict = field(default_factory=dict)  # `UnlearningReport.to_dict()`, once evaluated

    @classmethod
    def of(cls, model, base_model: str | None = None) -> Lineage:
        """The lineage of `model` (the original, before any update), named `base_model` (default: its own name)."""
        name = base_model or getattr(model.config, "_name_or_path", None) or "unknown"
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
            report=self.report,
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


class HubMixin:
    """Saving, the model card and pushing, for `UnlearningTrainer` and the baselines' trainers (mix in before
    `Trainer`). The trainer sets `history`; its `lineage` (`Lineage`) says where the model comes from.

    - `save_model` writes the unlearning history into the config (`lotus_hf_unlearning`) and no
      `training_args.bin` (a pickle);
    - `create_model_card` renders templates/model_card.md through `huggingface_hub.ModelCard`;
    - `push_to_hub` saves into `output_dir` and pushes it with `push_folder`, as the CLI does.
    """

    def _init_card(self, model) -> None:
        """Take the model's lineage: call it in `__init__`, before any update."""
        self.lineage = Lineage.of(model)

    def unlearning_lineage(self, model=None) -> list[dict]:
        """The model's unlearning history: the steps it came with, plus this run, with the SHA-256 of `model`'s
        weights (default: the trainer's, gathered when sharded; every process must call it then)."""
        from .distributed import whole_model

        return self.lineage.steps(self.args, model if model is not None else whole_model(self))

    def model_card(self, model_name: str | None = None, lineage: list[dict] | None = None):
        """This run's `huggingface_hub.ModelCard`."""
        name = model_name or Path(self.args.output_dir).name
        return self.lineage.card(name, self.args, self.history, lineage or self.unlearning_lineage())

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
        if self.is_world_process_zero():
            # `save_model` has put this run's step into the config (gathering a sharded model on every process)
            history = model_history(self.model)
            saved = len(history) == len(self.lineage.previous) + 1
            lineage = history if saved else self.unlearning_lineage(self.model)
            Path(self.args.output_dir).mkdir(parents=True, exist_ok=True)
            self.model_card(model_name, lineage).save(Path(self.args.output_dir) / "README.md")

    def push_to_hub(
        self,
        commit_message: str | None = None,
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs,
    ) -> str | None:
        """Push the unlearned model to `args.hub_model_id` in one commit, as the CLI and the Space do: the whole
        model (gathered when sharded) with its unlearning history, image processor, card and report.json are
        written into a new folder (`save_model_folder`) and pushed with `push_folder`. Returns the commit URL.
        The push is always blocking; `revision` names the branch to push to."""
        import tempfile

        from .distributed import whole_model

        repo_id = self.args.hub_model_id
        if not repo_id:
            raise HubError("`hub_model_id` must be set in the config to push: the repo to push to, as ORG/NAME.")
        model = whole_model(self)  # every process takes part in gathering a sharded model
        if not self.is_world_process_zero():
            return None
        lineage = self.unlearning_lineage(model)
        model.config.lotus_hf_unlearning = lineage
        name = kwargs.get("model_name") or repo_id.split("/")[-1]
        private = self.args.hub_private_repo if private is None else private
        with tempfile.TemporaryDirectory(prefix="lotus-hf-push-") as scratch:
            folder = save_model_folder(
                Path(scratch) / name,
                model,
                self.processing_class,
                self.model_card(name, lineage),
                self.lineage.report or None,
            )
            return push_folder(
                folder,
                repo_id,
                private=bool(private),
                token=token or self.args.hub_token,
                message=commit_message,
                revision=revision,
            )
