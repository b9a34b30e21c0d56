"""How every unlearning trainer of lotus-hf (LoTUS, Belief Relabel and the baselines) hooks into `Trainer`'s loop,
with public callback events only: `RunHooks` (prepare, probe, save the run's state) and `RunProgress` (what the run
shows while it trains)."""

from __future__ import annotations

from pathlib import Path

from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


class RunHooks(TrainerCallback):
    """Calls an `UnlearningTrainerBase`'s `prepare()` when training starts (after accelerate has prepared the model),
    its `begin_epoch()` before each epoch and its `after_step()` after each optimizer step (stopping training when
    either returns True), and its `save_run_state()` after each checkpoint Trainer writes."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.prepare()

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.trainer.begin_epoch():
            control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_training_stop:  # stopped already (a budget): no probe, which would cost past it
            return
        if self.trainer.after_step():
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        self.trainer.save_run_state(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")


class RunProgress(ProgressCallback):
    """Trainer's progress bar (steps, rate, time left) with each epoch's probe written above it as it happens, and
    no bar for the probes' own passes. `use_run_progress` puts it in place of Trainer's default."""

    def on_step_end(self, args, state, control, **kwargs):
        super().on_step_end(args, state, control, **kwargs)
        spent = getattr(state, "budget_spent", None)  # set by `CostCallback` (before this) when the run has a budget
        bar = self.training_bar
        if state.is_world_process_zero and bar is not None and spent:
            # the steps the budget allows at this rate, not the epochs' count the budget stops long before
            bar.total = min(bar.total, max(bar.n, round(bar.n / spent)))
            bar.refresh()

    def on_train_end(self, args, state, control, **kwargs):
        bar = self.training_bar
        if state.is_world_process_zero and bar is not None and getattr(state, "budget_spent", None):
            bar.total = bar.n  # the run is over: the bar ends full at the step it stopped
            bar.refresh()
        super().on_train_end(args, state, control, **kwargs)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass  # a probe is part of the run: its passes add no bars of their own

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "forget_accuracy" in logs:
            done = logs.get("epoch", 0.0)  # Trainer adds the epochs done so far; a whole number before an epoch
            inside = abs(done - round(done)) > 1e-9
            entry = {**logs, "probe": int(inside), "step": state.global_step}
            self.training_bar.write(probe_line(int(done) + 1, entry))


def use_run_progress(trainer) -> None:
    """Show `RunProgress` unless `disable_tqdm` (then nothing: the probes are in `trainer.history`, the losses in
    `trainer.state.log_history`), instead of Trainer's bar, which prints every log as a dict."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if not trainer.args.disable_tqdm:
        trainer.add_callback(RunProgress)


def probe_line(epoch: int, entry: dict) -> str:
    """One probe, as a line, named for when it ran: before epoch `epoch` (each epoch's first probe, before any of its
    updates), or inside it after a step (the bound rule's); then LoTUS's gap and temperature, or Belief Relabel's
    membership rule.

    >>> probe_line(2, {"probe": 1, "step": 20, "forget_accuracy": 0.9, "unseen_accuracy": 0.88, "delta": 0.02,
    ...                "tau": 1.04, "stop": False})
    'epoch 2, after step 20: forget acc 0.9000, unseen acc 0.8800, delta +0.02, tau 1.040'
    """
    when = f"epoch {epoch}, after step {entry['step']}" if entry.get("probe") else f"before epoch {epoch}"
    if "forget_member_rate" in entry:
        probe = (
            f"forget called members {entry['forget_member_rate']:.4f} (stops at "
            f"{entry['reference_member_rate']:.4f} once forget acc is 0)"
        )
    else:
        probe = f"unseen acc {entry['unseen_accuracy']:.4f}, delta {entry['delta']:+.2f}, tau {entry['tau']:.3f}"
    stop = " -> stop" if entry.get("stop") else ""
    return f"{when}: forget acc {entry['forget_accuracy']:.4f}, {probe}{stop}"


def stop_epoch(history: list[dict]) -> int | None:
    """The epoch (1-based) of the probe that stopped a run, from its history; None if no probe stopped it.

    >>> stop_epoch([{"epoch": 1, "stop": False}, {"epoch": 2, "stop": True}]), stop_epoch([])
    (2, None)
    """
    return next((e["epoch"] for e in history or [] if e.get("stop")), None)
