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


def _cells(line: str) -> int:
    """The cells of a markdown table row (an escaped pipe, `\\|`, is text, not a border)."""
    return len(re.sub(r"\\\|", "", line.strip()).strip("|").split("|"))


@pytest.mark.parametrize("path", [README, *sorted((README.parent / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_markdown_table_has_as_many_cells_in_each_row_as_in_its_header(path):
    """A row with more or fewer cells than its header does not render as a table (GitHub drops it or the table)."""
    lines, inside_code, problems = path.read_text().splitlines(), False, []
    for i, line in enumerate(lines):
        if line.startswith("```"):
            inside_code = not inside_code
        is_header = line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1])
        if inside_code or not is_header or (i and lines[i - 1].startswith("|")):
            continue
        width = _cells(line)
        for j in range(i + 1, len(lines)):
            if not lines[j].startswith("|"):
                break
            if _cells(lines[j]) != width:
                problems.append(f"line {j + 1}: {_cells(lines[j])} cells under a header of {width}")
    assert not problems, problems
