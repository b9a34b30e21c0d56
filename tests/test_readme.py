"""The README's Python example runs as printed: the bundled ResNet, Fashion-MNIST, LoTUS, save, verify."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python() -> str:
    """The code block under the README's "From Python" heading."""
    section = README.read_text().split("## From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md's 'From Python' section has no python code block"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_python_example_unlearns_saves_and_verifies(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from lotus_hf import load_model

    monkeypatch.chdir(tmp_path)  # the example writes to ./out
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_python(), "README.md", "exec"), {"__name__": "readme"})
    assert printed.getvalue().strip().splitlines()[-1] in {"forgotten", "not_forgotten", "inconclusive"}
    saved = tmp_path / "out" / "final"
    assert (saved / "model.safetensors").is_file() and not list(saved.glob("*.bin"))
    unlearned = load_file(saved / "model.safetensors")
    original = load_model("fashion-mnist-resnet")[0].state_dict()
    changed = [k for k, v in unlearned.items() if k in original and not original[k].equal(v)]
    assert changed, "the example's LoTUS run left every weight as it was"
