"""`RunState`: all that an unlearning run of the LoTUS family needs, beyond Trainer's own checkpoint, to continue
from a checkpoint as if it had never stopped. JSON and safetensors only (no pickle).

- per checkpoint (`RunHooks.on_save` writes it after Trainer's files): `lotus_state.json` (the probes so far, tau,
  ...) and one `lotus_state_rank{N}.safetensors` per process (its Gumbel noise generator and counters);
- once per run, in `output_dir`: `lotus_run.safetensors`, what the run fixed before its first update (the
  teacher's logits on the stream, ...), so that a resumed run never needs the original model again.

`ResumableRun` is the trainers' side: it finds the checkpoint to resume from, builds the state and restores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import ArgumentError

STATE_FILE = "lotus_state.json"
CONSTANTS_FILE = "lotus_run.safetensors"


@dataclass
class RunState:
    """`values` (JSON, the same on every process), `tensors` (this process's own) and `constants` (fixed for the
    whole run; read back by `load`)."""

    values: dict
    tensors: dict[str, torch.Tensor]
    constants: dict[str, torch.Tensor] = field(default_factory=dict)

    def save(self, checkpoint: str | Path, rank: int, accelerator, main: bool) -> None:
        """Write this process's tensors, then (the main process, once all have) the values: a checkpoint holding
        `lotus_state.json` is complete. Every process calls it."""
        checkpoint = Path(checkpoint)
        tensors = {k: v.contiguous() for k, v in self.tensors.items()}
        save_file(tensors, checkpoint / f"lotus_state_rank{rank}.safetensors")
        accelerator.wait_for_everyone()
        if main:
            (checkpoint / STATE_FILE).write_text(json.dumps(self.values, indent=2) + "\n")

    @classmethod
    def load(cls, checkpoint: str | Path, rank: int) -> RunState:
        checkpoint = Path(checkpoint)
        constants = checkpoint.parent / CONSTANTS_FILE
        return cls(
            json.loads((checkpoint / STATE_FILE).read_text()),
            load_file(checkpoint / f"lotus_state_rank{rank}.safetensors"),
            load_file(constants) if constants.is_file() else {},
        )

    @staticmethod
    def save_constants(output_dir: str | Path, constants: dict[str, torch.Tensor], main: bool) -> None:
        """Write what a run fixed before its first update into `output_dir`, once (the main process)."""
        if main and constants:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in constants.items()}, Path(output_dir) / CONSTANTS_FILE)


def resume_folder(output_dir: str | Path, resume_from_checkpoint: str | bool, trainer: str) -> str:
    """The checkpoint a run resumes from: the given folder, or for True the last in `output_dir` (Trainer's own
    `get_last_checkpoint`); it must hold this run's state."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = resume_from_checkpoint
    if folder is True:
        folder = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
        if folder is None:
            raise ArgumentError(f"`output_dir` {str(output_dir)!r} holds no checkpoint to resume from.")
    if not (Path(folder) / STATE_FILE).is_file():
        raise ArgumentError(
            f"`resume_from_checkpoint` {str(folder)!r} holds no {STATE_FILE}: pass a checkpoint an `{trainer}` wrote "
            "whole (`save_steps`); a run stopped while writing its last checkpoint resumes from the one before once "
            "that folder is removed."
        )
    return str(folder)


class ResumableRun:
    """Trainer mixin of the LoTUS family (LoTUS, Belief Relabel): what a run saves into each checkpoint and reads
    back to continue as if it had never stopped. Its state is one `RunState` (`run_state`, `restore`), written by
    `RunHooks.on_save` (`save_run_state`) and read by the trainer's `prepare` from `resumed_from`, which `train`
    sets; subclasses add their own fields by extending `constants`, `run_state` and `restore`."""

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """`Trainer.train`. `resume_from_checkpoint` (a checkpoint folder, or True for the last one in
        `args.output_dir`) continues a run where its checkpoint left it, LoTUS's state included (`RunState`): the
        weights end as those of a run that was never interrupted."""
        if resume_from_checkpoint:
            resume_from_checkpoint = resume_folder(self.args.output_dir, resume_from_checkpoint, type(self).__name__)
        self.resumed_from = resume_from_checkpoint or None
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint,
            trial=trial,
            ignore_keys_for_eval=ignore_keys_for_eval,
            **kwargs,
        )

    def constants(self) -> dict[str, torch.Tensor]:
        """What a run fixes before its first update and a resumed run reads back: the cached teacher logits."""
        logits = self.stream.teacher_logits
        return {} if logits is None else {"teacher_logits": logits}

    def run_state(self) -> RunState:
        """LoTUS's state now: the probes so far, tau, A_u, and this process's noise and counters."""
        values = {
            "history": self.history,
            "tau": self.tau,
            "unseen_accuracy": self.unseen_accuracy,
            "processes": self.accelerator.num_processes,
            "budgets_reached": {str(k): v for k, v in self.cost.reached.items()},
            "cost_parts": dict(self.cost.meter.parts),
        }
        tensors = {
            "noise": self._noise.get_state(),
            "loss_sums": self._loss_sums.cpu(),
            "seen": self._seen.cpu(),
            "epoch_rows": torch.tensor([self.epoch_rows]),
            "cost": torch.tensor([self.cost.meter.units]),
        }
        return RunState(values, tensors)

    def save_run_state(self, checkpoint: Path) -> None:
        """Write `run_state()` into a checkpoint Trainer has just saved (every process calls it)."""
        self.run_state().save(checkpoint, self.args.process_index, self.accelerator, self.is_world_process_zero())

    def restore(self, state: RunState) -> None:
        """Continue from `state` (`RunState.load` of a checkpoint of this run)."""
        if state.values["processes"] != self.accelerator.num_processes:
            raise ArgumentError(
                f"the checkpoint {self.resumed_from!r} was written by {state.values['processes']} processes: resume "
                f"it with as many (this run has {self.accelerator.num_processes})."
            )
        self.history, self.tau = state.values["history"], state.values["tau"]
        self.unseen_accuracy = state.values["unseen_accuracy"]
        self._noise = torch.Generator(device=self.args.device)
        self._noise.set_state(state.tensors["noise"])
        self._loss_sums.copy_(state.tensors["loss_sums"])
        self._seen.copy_(state.tensors["seen"])
        self.epoch_rows = int(state.tensors["epoch_rows"])
        self.cost.resume(int(state.tensors["cost"]), state.values["budgets_reached"], state.values.get("cost_parts"))
        if "teacher_logits" in state.constants:
            self.stream.teacher_logits = state.constants["teacher_logits"]
