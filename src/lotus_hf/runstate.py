"""`RunState`: all that an unlearning run of the LoTUS family needs, beyond Trainer's own checkpoint, to continue
from a checkpoint as if it had never stopped. JSON and safetensors only (no pickle).

- per checkpoint (`RunHooks.on_save` writes it after Trainer's files): `lotus_state.json` (the probes so far, tau,
  ...) and one `lotus_state_rank{N}.safetensors` per process (its Gumbel noise generator and counters);
- once per run, in `output_dir`: `lotus_run.safetensors`, what the run fixed before its first update (the
  teacher's logits on the stream, ...), so that a resumed run never needs the original model again.

`StreamTrainer` (lotus_hf.stream_trainer) builds the state, saves it and restores it; `resume_folder` finds the
checkpoint to resume from.
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

    def check_processes(self, processes: int, checkpoint: str | None) -> None:
        """Refuse to resume a run under another number of processes than wrote `checkpoint`: each process's noise
        and counters are its own."""
        if self.values["processes"] != processes:
            raise ArgumentError(
                f"the checkpoint {checkpoint!r} was written by {self.values['processes']} processes: resume it with "
                f"as many (this run has {processes})."
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
