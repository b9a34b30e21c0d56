"""The RF-JSD metric's Space: paste or upload two tables of probabilities and labels, get the score.

evaluate's own widget (`evaluate.utils.launch_gradio_widget`) is broken with gradio 6 (`gr.inputs` is
gone), so this is a small gr.Blocks app on the math the metric module uses: rf_jsd_math.py, next to this
file (a Space runs `python app.py` in this folder, which puts the folder on sys.path; no lotus-hf needed).

    python metrics/rf_jsd/app.py            # serves on http://127.0.0.1:7860
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from rf_jsd_math import VARIANTS, results

EXAMPLE_FORGET = "0, 0.7, 0.2, 0.1\n0, 0.5, 0.4, 0.1\n1, 0.1, 0.8, 0.1\n2, 0.2, 0.2, 0.6"
EXAMPLE_UNSEEN = "0, 0.6, 0.3, 0.1\n0, 0.9, 0.05, 0.05\n1, 0.2, 0.7, 0.1\n2, 0.3, 0.3, 0.4\n2, 0.1, 0.1, 0.8"
FORMAT = "One sample per line: `label, p_0, p_1, ..., p_(C-1)` (comma-separated; a header line is skipped)."


def parse_table(text: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`label, p_0, ..., p_(C-1)` lines -> (probabilities (n, C), labels (n,)); errors name the table."""
    rows = [row for row in csv.reader(io.StringIO(text or "")) if row and any(cell.strip() for cell in row)]
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]  # a header
    if not rows:
        raise ValueError(f"The {name} table is empty: {FORMAT}")
    widths = {len(row) for row in rows}
    if len(widths) > 1 or min(widths) < 3:
        raise ValueError(f"The {name} table's lines have {sorted(widths)} values: {FORMAT}")
    try:
        values = np.array([[float(cell) for cell in row] for row in rows])
    except ValueError:
        raise ValueError(f"The {name} table holds something that is not a number: {FORMAT}") from None
    return values[:, 1:], values[:, 0]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read(text: str, upload: str | None) -> str:
    return Path(upload).read_text() if upload else text


def score(
    forget_text: str,
    unseen_text: str,
    variant: str = "jsd",
    n_bootstrap: int = 1000,
    seed: int = 0,
    forget_file: str | None = None,
    unseen_file: str | None = None,
) -> tuple[str, pd.DataFrame]:
    """RF-JSD of the two tables: a markdown summary and a per-class table (for the bars)."""
    try:
        forget, forget_labels = parse_table(_read(forget_text, forget_file), "forget")
        unseen, unseen_labels = parse_table(_read(unseen_text, unseen_file), "unseen")
        resamples = int(n_bootstrap) if n_bootstrap and int(n_bootstrap) > 0 else 0
        out = results(
            forget,
            forget_labels,
            unseen,
            unseen_labels,
            variant=variant,
            per_class=True,
            n_bootstrap=resamples,
            seed=int(seed),
        )
        per_class = out["per_class"]
        lines = [f"**RF-JSD ({variant})** = {out['rf_jsd']:.6g}"]
        if resamples:
            lines.append(
                f"95% bootstrap interval ({resamples} resamples, seed {int(seed)}): "
                f"[{out['rf_jsd_low']:.6g}, {out['rf_jsd_high']:.6g}]"
            )
    except ValueError as error:
        raise gr.Error(str(error)) from None
    lines.append(f"{len(forget)} forget and {len(unseen)} unseen samples, {forget.shape[1]} classes.")
    if variant == "reference":
        lines.append("The paper's tables print the `reference` value multiplied by 1e4.")
    bars = pd.DataFrame({"class": [str(c) for c in per_class], "jsd": list(per_class.values())})
    return "\n\n".join(lines), bars


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="RF-JSD") as demo:
        gr.Markdown(
            "# RF-JSD: how much does an unlearned model still know about its forget set?\n"
            "Compare the **unlearned** model's softmax outputs on the forget samples with the **original** "
            "model's on unseen samples, class by class; no retrained model needed. Lower is better. " + FORMAT
        )
        with gr.Row():
            with gr.Column():
                forget_text = gr.Textbox(EXAMPLE_FORGET, lines=8, label="Forget set: unlearned model")
                forget_file = gr.File(label="...or upload a CSV", file_types=[".csv", ".txt"], type="filepath")
            with gr.Column():
                unseen_text = gr.Textbox(EXAMPLE_UNSEEN, lines=8, label="Unseen set: original model")
                unseen_file = gr.File(label="...or upload a CSV", file_types=[".csv", ".txt"], type="filepath")
        with gr.Row():
            variant = gr.Radio(list(VARIANTS), value="jsd", label="Variant")
            n_bootstrap = gr.Number(1000, precision=0, minimum=0, label="Bootstrap resamples (0: none)")
            seed = gr.Number(0, precision=0, label="Seed")
        button = gr.Button("Compute", variant="primary")
        summary = gr.Markdown(elem_id="summary")
        bars = gr.BarPlot(x="class", y="jsd", title="JSD of each forget class", elem_id="bars")
        button.click(
            score,
            [forget_text, unseen_text, variant, n_bootstrap, seed, forget_file, unseen_file],
            [summary, bars],
            api_name="score",
        )
    return demo


if __name__ == "__main__":
    # The address and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (a Space sets 0.0.0.0:7860).
    build_demo().launch()
