"""Models and files out, atomically: a new folder appears whole or not at all (`atomic_output_dir`, the one
staging helper of lotus-hf, used by the CLI, the benchmark and `make space` alike), a new file likewise, and
nothing is ever overwritten. A run that writes checkpoints keeps its folder marked unfinished until its model is
in."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import OutputError


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
def atomic_output_dir(path: str | os.PathLike, replace: bool = False):
    """Yield a hidden temporary folder beside `path` and rename it to `path` only when the block succeeds.

    An interrupted or failed run leaves no folder at `path`, so nothing half-written looks complete. `path` must be
    absent or empty, unless `replace`: then a folder there (a build the caller may replace) gives way to the new one
    only once the new one is whole.
    """
    path = Path(path) if replace else check_output_dir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.incomplete-", dir=path.parent))
    previous = path.with_name(f".{path.name}.previous")
    try:
        yield staging
        if replace and path.exists():
            shutil.rmtree(previous, ignore_errors=True)
            path.rename(previous)
        elif path.exists():
            path.rmdir()  # an empty folder, checked above
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)


def write_new_file(path: str | os.PathLike, text: str, what: str = "output") -> Path:
    """Write `text` into the new file `path` atomically (a temporary file beside it, then a rename): it appears
    whole or not at all, and an existing file is never overwritten."""
    path = Path(path)
    if path.exists():
        raise OutputError(f"`{what}` {str(path)!r} exists: pass a new file name (nothing is ever overwritten).")
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


def write_model_folder(directory: str | os.PathLike, model, image_processor, card, report: dict | None = None) -> None:
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


def save_model_folder(output_dir: str | os.PathLike, model, image_processor, card, report: dict | None = None) -> Path:
    """`write_model_folder` into a new folder `output_dir`, atomically: it appears whole or not at all. A run
    folder (`start_run_folder`) is finished in place instead: the model's files are written beside the
    checkpoints and moved in, everything else the run left (checkpoints, its state) removed, and the mark of an
    unfinished run goes last."""
    output_dir = Path(output_dir)
    if not (output_dir / UNFINISHED_RUN).is_file():
        with atomic_output_dir(output_dir) as staging:
            write_model_folder(staging, model, image_processor, card, report)
        return output_dir
    staging = Path(tempfile.mkdtemp(prefix=".final-", dir=output_dir))
    try:
        write_model_folder(staging, model, image_processor, card, report)
        written = {file.name for file in staging.iterdir()}
        for file in staging.iterdir():
            os.replace(file, output_dir / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for left in output_dir.iterdir():
        if left.name not in written and left.name != UNFINISHED_RUN:
            shutil.rmtree(left) if left.is_dir() else left.unlink()
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


def open_output_dir(output_dir: str | os.PathLike, resume: bool) -> dict | None:
    """Check that `output_dir` can take a run: a new folder, or with `resume` the folder of an unfinished run, whose
    record it returns (None for a new folder)."""
    unfinished = unfinished_run(output_dir)
    if unfinished is not None and not resume:
        raise OutputError(
            f"`output_dir` {str(output_dir)!r} holds an unfinished run ({unfinished['request']} from "
            f"{unfinished['model']}): add `--resume` to continue it from its last checkpoint, or pass a new folder."
        )
    if unfinished is None and resume:
        raise OutputError(
            f"`--resume`: `output_dir` {str(output_dir)!r} holds no unfinished run (one started with `--save-steps`): "
            "name that run's folder, or drop `--resume`."
        )
    if unfinished is None:
        check_output_dir(output_dir)
    return unfinished


def check_same_run(output_dir: str | os.PathLike, unfinished: dict, record: dict) -> None:
    """Refuse to resume an unfinished run with another command than the one that started it."""
    changed = [k for k in record if unfinished.get(k) != record[k]]
    if changed:
        raise OutputError(
            f"`--resume`: the unfinished run in {str(output_dir)!r} differs from this command in {changed} (it "
            f"unlearns {unfinished['request']} from {unfinished['model']}): run the command that started it, or "
            "pass a new folder."
        )
