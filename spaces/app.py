"""lotus-hf Space: make an image classifier forget part of its training data with LoTUS, in a browser.

Pure functions on top (tested without a browser), the gr.Blocks app below, launch under __main__.
Runs go one at a time (a Trainer is not made to share a process with another running beside it, and two
trainings on a Space's 2 CPU cores would only slow each other down); later ones wait in the queue. Every run lives
in its own temporary folder, referenced only from that session's state; tokens are passed straight to the Hub
client and never stored or logged.

    python spaces/app.py            # http://127.0.0.1:7860
"""

from __future__ import annotations

import functools
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback

from lotus_hf import ForgetRequest, load_image_dataset, load_model, push_folder, save_unlearned, unlearn
from lotus_hf.data import class_names_of, split_unlearning_data
from lotus_hf.evaluation import entropy, predict_logits
from lotus_hf.hooks import probe_line
from lotus_hf.images import preprocess
from lotus_hf.loading import check_labels
from lotus_hf.methods import default_method, method_config
from lotus_hf.names import hub_id
from lotus_hf.requests import DEFAULT_SEED

BUNDLED = {
    "Fashion-MNIST ResNet (bundled)": "fashion-mnist-resnet",
    "Fashion-MNIST ViT (bundled)": "fashion-mnist-vit",
}
MAX_EPOCHS = (
    20  # the most any bundled model's picks run (the ViT's: 20), so every request starts at its defaults
)
MAX_TRAIN_SAMPLES = 60_000  # bounds a Hub data set's training split (a seeded subsample beyond it)
MAX_PICKED = 200
CONCURRENT_RUNS = 1  # runs at once; more wait in the queue
MAX_WAITING = 7  # runs waiting in the queue: 8 sessions at once in all, later ones are told the queue is full
GALLERY_SIZE = 48
SEED = DEFAULT_SEED
INTRO = """# Make an image classifier forget
LoTUS (CVPR 2025) removes what a model learned from chosen training samples without retraining it; whole classes
go with Belief Relabel, lotus-hf's own method. Pick a model, choose what to forget, run; then see whether the
model now treats the forgotten images as data it never saw, and compare it with the original."""


class SpaceError(ValueError):
    """A bad input; the message is shown to the user as it is."""


# ------------------------------------------------------------------------------------ pure functions
def resolve_choice(model_choice: str, model_id: str, dataset_id: str) -> tuple[str, str]:
    """(model, data set) to load: a bundled pick uses Fashion-MNIST; 'Hub' needs both ids."""
    if model_choice in BUNDLED:
        return BUNDLED[model_choice], "fashion_mnist"
    model_id, dataset_id = (model_id or "").strip(), (dataset_id or "").strip()
    if not hub_id(model_id) or not hub_id(dataset_id):
        raise SpaceError(
            "Type a Hub model id and a Hub data set id, both as ORG/NAME (e.g. me/my-vit, me/my-data)."
        )
    return model_id, dataset_id


@functools.lru_cache(maxsize=4)
def prepared(model_name: str, dataset_name: str):
    """Model files, data set and preprocessed splits, shared read-only by all sessions (models are copied)."""
    model, processor = load_model(model_name)
    dataset = load_image_dataset(dataset_name)
    class_names = class_names_of(dataset)
    check_labels(model, class_names)
    train_split = dataset["train"]
    if len(train_split) > MAX_TRAIN_SAMPLES:
        rows = np.sort(np.random.default_rng(SEED).choice(len(train_split), MAX_TRAIN_SAMPLES, replace=False))
        train_split = train_split.select(rows)
    train = preprocess(train_split, processor)
    held_out = preprocess(dataset["test"], processor)
    return model.eval(), processor, class_names, train_split, train, held_out


def make_request(
    mode: str, classes: list[str] | None, fraction: float, picked: list[int] | None
) -> ForgetRequest:
    """The forget request from the form, with clear messages for empty choices."""
    if mode == "classes":
        if not classes:
            raise SpaceError("Pick at least one class to forget.")
        return ForgetRequest.classes(list(classes))
    if mode == "fraction":
        if not 0 < float(fraction) <= 50:
            raise SpaceError("The random fraction must be between 0 and 50 percent.")
        return ForgetRequest.fraction(float(fraction) / 100, seed=SEED)
    if mode == "samples":
        if not picked:
            raise SpaceError("Click some images in the gallery first.")
        if len(picked) > MAX_PICKED:
            raise SpaceError(f"Pick at most {MAX_PICKED} samples.")
        return ForgetRequest.indices(sorted(set(int(i) for i in picked)))
    raise SpaceError(f"Unknown forget mode {mode!r}.")


def method_controls(mode: str, model_name: str) -> dict:
    """What a request of `mode` runs on `model_name`, and its controls' starting values: LoTUS (alpha and epochs,
    from the model's unlearning_config.json) for samples, Belief Relabel (epochs only) for whole classes."""
    request = ForgetRequest.classes(["x"]) if mode == "classes" else ForgetRequest.first_percent(10)
    method = default_method(request)
    config = method_config(method, model_name, request, output_dir=tempfile.gettempdir(), use_cpu=True)
    epochs = int(min(config.num_train_epochs, MAX_EPOCHS))
    if method == "lotus":
        return {"method": method, "name": "LoTUS", "alpha": config.alpha, "epochs": epochs}
    return {
        "method": method,
        "name": "Belief Relabel, lotus-hf's class forgetting (not the paper's)",
        "alpha": None,
        "epochs": epochs,
    }


def gallery_indices(n_train: int, size: int = GALLERY_SIZE) -> list[int]:
    """The training samples offered in the gallery (seeded, the same for everyone)."""
    return sorted(
        np.random.default_rng(SEED).choice(n_train, size=min(size, n_train), replace=False).tolist()
    )


def add_pick(shown: list[int], picked: list[int], position: int) -> list[int]:
    """The gallery click at `position` adds that training sample to the picked ones (once)."""
    return sorted(set(picked) | {shown[position]})


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> pd.DataFrame:
    """Accuracy of each class: rows (class, accuracy)."""
    hits = (logits.argmax(-1) == labels).float()
    values = [
        float(hits[labels == c].mean()) if (labels == c).any() else float("nan")
        for c in range(len(class_names))
    ]
    return pd.DataFrame({"class": class_names, "accuracy": values})


def entropy_histogram(probs_by_split: dict[str, np.ndarray], bins: int = 12) -> pd.DataFrame:
    """Share of samples per entropy bin for each split: memorised samples sit at entropy ~0."""
    top = max(float(entropy(p).max()) for p in probs_by_split.values()) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    rows = []
    for split, probs in probs_by_split.items():
        counts, _ = np.histogram(entropy(probs), bins=edges)
        for left, right, count in zip(edges[:-1], edges[1:], counts, strict=True):
            rows.append({"entropy": round(float(left + right) / 2, 3), "share": count / max(1, len(probs)),
                         "split": split})  # fmt: skip
    return pd.DataFrame(rows)


def metrics_table(report: dict) -> pd.DataFrame:
    """The before/after table as shown on the page, rounded for display only."""
    keys = ["acc_forget", "acc_retain", "acc_test", "mia", "rf_jsd", "rf_jsd_reference"]
    rows = []
    for name, row in report["rows"].items():
        seconds = report["unlearning_seconds"] if name == "unlearned" else None
        rows.append({"model": name, **{k: round(row[k], 4) for k in keys},
                     "seconds": None if seconds is None else round(seconds, 1)})  # fmt: skip
    return pd.DataFrame(rows)


def as_image(value):
    """A data set's image cell (a PIL image, or an array from an `Array2D` column) as a PIL image."""
    from PIL import Image

    return value if hasattr(value, "convert") else Image.fromarray(np.asarray(value, dtype=np.uint8))


def top_predictions(logits: torch.Tensor, class_names: list[str], k: int = 3) -> dict[str, float]:
    probs = torch.softmax(logits.float(), -1)
    values, indices = probs.topk(min(k, len(class_names)))
    return {class_names[int(i)]: float(v) for v, i in zip(values, indices, strict=True)}


class SessionFiles:
    """The folders of each session's runs, removed when the session ends (its tab closed, its client gone) or
    when it starts another run: nothing of one session outlives it or reaches another."""

    def __init__(self):
        self._folders: dict[str, list[Path]] = {}
        self._lock = threading.Lock()

    def new(self, session: str) -> Path:
        """A new folder for `session`'s next run; its earlier runs' folders go."""
        self.end(session)
        folder = Path(tempfile.mkdtemp(prefix="lotus-space-"))
        with self._lock:
            self._folders.setdefault(session, []).append(folder)
        return folder

    def end(self, session: str) -> None:
        with self._lock:
            folders = self._folders.pop(session, [])
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    def folders(self, session: str) -> list[Path]:
        with self._lock:
            return list(self._folders.get(session, []))


SESSION_FILES = SessionFiles()


@dataclass
class RunResult:
    """What one session's run produced; lives in that session's state only."""

    folder: Path  # the saved unlearned model + report.json
    archive: Path  # the same, zipped for download
    report: dict
    original: torch.nn.Module
    unlearned: torch.nn.Module
    processor: object
    class_names: list[str]
    data: object = None  # the run's `UnlearningData` (forget / retain / unseen / test)


class _Progress(TrainerCallback):
    """Sends each probe to the page and stops training when the session cancels."""

    def __init__(self, events: queue.Queue, cancel: threading.Event):
        self.events, self.cancel = events, cancel

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "forget_accuracy" in logs:
            self.events.put(("probe", dict(logs)))

    def on_step_end(self, args, state, control, **kwargs):
        if self.cancel.is_set():
            control.should_training_stop = True
            control.should_epoch_stop = True


def run_unlearning(model_name, dataset_name, request, alpha, epochs, events=None, cancel=None,
                   work: Path | None = None) -> RunResult:  # fmt: skip
    """Unlearn `request` from the model, evaluate it, save model + report into `work` (default: a fresh temp
    folder)."""
    import copy

    model, processor, class_names, _, train, held_out = prepared(model_name, dataset_name)
    data = split_unlearning_data(train, held_out, class_names, request, seed=SEED)
    if not 0 < epochs <= MAX_EPOCHS:
        raise SpaceError(f"Epochs must be between 1 and {MAX_EPOCHS}.")
    original = copy.deepcopy(model)
    student = copy.deepcopy(model)
    work = work or Path(tempfile.mkdtemp(prefix="lotus-space-"))
    method = default_method(request)
    fields = {"alpha": float(alpha)} if method == "lotus" else {}  # Belief Relabel has no alpha
    config = method_config(method, model_name, request, output_dir=str(work / "trainer"),
                           num_train_epochs=float(epochs), seed=SEED, disable_tqdm=True, logging_strategy="no",
                           use_cpu=True, dataloader_pin_memory=False, **fields)  # fmt: skip
    callbacks = [_Progress(events, cancel)] if events is not None else []
    result = unlearn(student, data, config, base_model=model_name, dataset=dataset_name, callbacks=callbacks)
    folder = save_unlearned(result, processor, work / "unlearned-model")
    archive = Path(shutil.make_archive(str(work / "unlearned-model"), "zip", folder))
    return RunResult(folder, archive, result.report.to_dict(), original.eval(), result.model.eval(),
                     processor, class_names, data)  # fmt: skip


def before_after(run: RunResult, model_name: str, dataset_name: str):
    """Per-class accuracy bars, entropy histograms and the forgotten-samples gallery, before and after."""
    _, _, class_names, train_split, train, _ = prepared(model_name, dataset_name)
    data = run.data
    bars, histograms = [], []
    for name, model in (("original", run.original), ("unlearned", run.unlearned)):
        retain = data.retain.select(np.arange(min(len(data.retain), len(data.test))))  # a sample is enough
        logits = {"forget": predict_logits(model, data.forget), "retain": predict_logits(model, retain),
                  "test": predict_logits(model, data.test)}  # fmt: skip
        test = per_class_accuracy(logits["test"], data.test.labels, class_names).assign(model=name)
        bars.append(
            test.assign(bar=test["class"] + " · " + name)
        )  # side by side: one bar per class and model
        retain_sample = logits["retain"][: len(logits["test"])]
        probs = {
            s: torch.softmax(v.double(), -1).numpy() for s, v in {**logits, "retain": retain_sample}.items()
        }
        histograms.append(entropy_histogram(probs).assign(model=name))
    shown = data.forget_indices[:12]
    before = predict_logits(run.original, train.select(shown))
    after = predict_logits(run.unlearned, train.select(shown))
    gallery = [
        (as_image(train_split[int(i)]["image"]), f"{class_names[int(train.labels[i])]}: "
         f"{class_names[int(b.argmax())]} -> {class_names[int(a.argmax())]}")
        for i, b, a in zip(shown, before, after, strict=True)
    ]  # fmt: skip
    histograms = pd.concat(histograms)
    return (pd.concat(bars), histograms[histograms["model"] == "original"],
            histograms[histograms["model"] == "unlearned"], gallery)  # fmt: skip


def compare_image(run: RunResult | None, image) -> tuple[dict, dict]:
    """Both models' top predictions for an uploaded image."""
    if run is None:
        raise SpaceError("Run the unlearning first.")
    if image is None:
        raise SpaceError("Upload an image.")
    image = image.convert("L") if len(run.processor.image_mean) == 1 else image.convert("RGB")
    pixels = run.processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return (top_predictions(run.original(pixel_values=pixels).logits[0], run.class_names),
                top_predictions(run.unlearned(pixel_values=pixels).logits[0], run.class_names))  # fmt: skip


def push(run: RunResult | None, repo_id: str, token: str, private: bool = True) -> str:
    """Push this session's unlearned model with the user's token (used for this call only, never kept)."""
    if run is None:
        raise SpaceError("Run the unlearning first.")
    if not hub_id((repo_id or "").strip()):
        raise SpaceError("Name the repo as ORG/NAME, e.g. your-name/my-model-unlearned.")
    if not (token or "").strip():
        raise SpaceError("Paste a Hugging Face token with write access (it is used for this push only).")
    url = push_folder(run.folder, repo_id.strip(), private=private, token=token.strip(),
                      message="Upload unlearned model (lotus-hf Space)")  # fmt: skip
    return f"Pushed: {url}"


# ------------------------------------------------------------------------------------------- the app
def _bundled_classes() -> list[str]:
    from transformers import AutoConfig

    from lotus_hf.loading import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(next(iter(BUNDLED.values()))))
    return [config.id2label[i] for i in range(config.num_labels)]


def build_demo():
    """The app, queued: `CONCURRENT_RUNS` runs at once and `MAX_WAITING` waiting, later ones told the queue is
    full. The default model's data are prepared here, once, at start-up: the first page load only reads them
    (a Space that prepared them per load showed "processing" for over 15 s)."""
    prepared(*resolve_choice(next(iter(BUNDLED)), "", ""))

    def choices_for(model_choice, model_id, dataset_id):
        try:
            model_name, dataset_name = resolve_choice(model_choice, model_id, dataset_id)
            _, _, class_names, train_split, _, _ = prepared(model_name, dataset_name)
        except (SpaceError, ValueError) as error:
            raise gr.Error(str(error)) from None
        shown = gallery_indices(len(train_split))
        gallery = [
            (as_image(train_split[i]["image"]), f"#{i} {class_names[train_split[i]['label']]}") for i in shown
        ]
        return gr.Dropdown(choices=class_names, value=[]), gallery, shown, []

    def controls_for(mode, model_choice, model_id, dataset_id):
        """Only the controls the request's method uses, at that method's defaults for the model."""
        try:
            model_name, _ = resolve_choice(model_choice, model_id, dataset_id)
            controls = method_controls(mode, model_name)
        except (SpaceError, ValueError):
            controls = method_controls(mode, BUNDLED[next(iter(BUNDLED))])
        lotus = controls["alpha"] is not None
        return (gr.Slider(visible=lotus, value=controls["alpha"] if lotus else 14),
                gr.Slider(value=controls["epochs"]), f"Runs **{controls['name']}**.")  # fmt: skip

    def pick(shown, picked, event: gr.SelectData):
        picked = add_pick(shown, picked, event.index)
        return picked, ", ".join(f"#{i}" for i in picked)

    def run(
        model_choice,
        model_id,
        dataset_id,
        mode,
        classes,
        fraction,
        picked,
        alpha,
        epochs,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008  (Gradio's way to ask for a progress tracker)
    ):
        try:
            model_name, dataset_name = resolve_choice(model_choice, model_id, dataset_id)
            forget = make_request(mode, classes, fraction, picked)
        except (SpaceError, ValueError) as error:
            raise gr.Error(str(error)) from None
        events, cancel, outcome = queue.Queue(), threading.Event(), {}
        folder = SESSION_FILES.new(request.session_hash)

        def work():
            try:
                outcome["run"] = run_unlearning(model_name, dataset_name, forget, alpha, int(epochs), events, cancel,
                                                folder)  # fmt: skip
                outcome["plots"] = before_after(outcome["run"], model_name, dataset_name)
            except Exception as error:  # shown to the user below
                outcome["error"] = error
            events.put(("done", None))

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        controls = method_controls("classes" if forget.kind == "classes" else "samples", model_name)
        settings = f"alpha {alpha}, " if controls["alpha"] is not None else ""
        log = [f"Forgetting {forget.describe()} from {model_name} with {controls['name']} ({settings}at most "
               f"{int(epochs)} epochs)"]  # fmt: skip
        try:
            while True:
                kind, value = events.get()
                if kind == "done":
                    break
                epoch = len(log)
                log.append(probe_line(epoch, value))
                progress(min(epoch / int(epochs), 1.0), desc=log[-1])
                yield {status: "\n".join(log)}
        finally:
            cancel.set()  # a cancelled or closed session stops its own training run
        if "error" in outcome:
            raise gr.Error(str(outcome["error"]))
        result = outcome["run"]
        bars, entropy_original, entropy_unlearned, gallery = outcome["plots"]
        verification = result.report["verification"]
        log.append(f"done in {result.report['unlearning_seconds']:.1f} s")
        log.append(f"verified on held-out images the run did not calibrate on: {verification['verdict']}. "
                   f"{verification['advice']}")  # fmt: skip
        yield {
            status: "\n".join(log),
            table: metrics_table(result.report),
            class_bars: bars,
            entropy_before: entropy_original,
            entropy_after: entropy_unlearned,
            forgotten: gallery,
            downloads: [str(result.archive), str(result.folder / "report.json")],
            session: result,
        }

    def compare(run_state, image):
        try:
            return compare_image(run_state, image)
        except SpaceError as error:
            raise gr.Error(str(error)) from None

    def end_session(request: gr.Request):
        SESSION_FILES.end(request.session_hash)

    def push_click(run_state, repo_id, token, private):
        try:
            return push(run_state, repo_id, token, private)
        except Exception as error:  # the Hub's message, without the token
            raise gr.Error(str(error).replace(token or "\0", "***")) from None

    with gr.Blocks(title="lotus-hf: machine unlearning") as demo:
        session = gr.State(None)
        shown_state, picked_state = gr.State([]), gr.State([])
        gr.Markdown(INTRO)
        with gr.Row():
            model_choice = gr.Radio(
                [*BUNDLED, "Hub"], value=next(iter(BUNDLED)), label="Model", elem_id="model"
            )
            model_id = gr.Textbox(label="Hub model id (with 'Hub')", placeholder="org/model")
            dataset_id = gr.Textbox(label="Hub data set id (with 'Hub')", placeholder="org/dataset")
            load = gr.Button("Load", elem_id="load")
        with gr.Row():
            mode = gr.Radio(
                ["classes", "fraction", "samples"], value="classes", label="Forget", elem_id="mode"
            )
            classes = gr.Dropdown(
                _bundled_classes(), multiselect=True, label="Classes to forget", elem_id="classes"
            )
            fraction = gr.Slider(1, 50, value=10, step=1, label="Random fraction (%)")
            picked_text = gr.Textbox(label="Picked samples", interactive=False)
        gallery = gr.Gallery(
            label="Click samples to forget them", columns=12, height=200, elem_id="pick-gallery"
        )
        with gr.Row():
            opening = method_controls(
                "classes", BUNDLED[next(iter(BUNDLED))]
            )  # the form opens on a class request
            alpha = gr.Slider(1, 32, value=14, step=1, label="alpha (LoTUS)", visible=False, elem_id="alpha")
            epochs = gr.Slider(1, MAX_EPOCHS, value=opening["epochs"], step=1, label="Epochs (at most)",
                               elem_id="epochs")  # fmt: skip
            method_note = gr.Markdown(f"Runs **{opening['name']}**.", elem_id="method")
            start = gr.Button("Run", variant="primary", elem_id="run")
            stop = gr.Button("Cancel", elem_id="cancel")
        status = gr.Textbox(label="Progress", lines=4, elem_id="status")
        table = gr.DataFrame(label="Before and after", elem_id="metrics")
        with gr.Row():
            class_bars = gr.BarPlot(x="bar", y="accuracy", color="model", title="Test accuracy per class",
                                    x_label_angle=-45)  # fmt: skip
        with gr.Row():
            entropy_before = gr.LinePlot(
                x="entropy", y="share", color="split", title="Prediction entropy: original"
            )
            entropy_after = gr.LinePlot(
                x="entropy", y="share", color="split", title="Prediction entropy: unlearned"
            )
        forgotten = gr.Gallery(label="Forgotten samples: true class: original -> unlearned", columns=6)
        with gr.Row():
            upload = gr.Image(type="pil", label="Try an image", elem_id="upload")
            before = gr.Label(label="Original", elem_id="pred-original")
            after = gr.Label(label="Unlearned", elem_id="pred-unlearned")
        downloads = gr.File(
            label="Unlearned model (zip) and report.json", file_count="multiple", elem_id="downloads"
        )
        with gr.Row():
            repo = gr.Textbox(label="Push to Hub repo", placeholder="your-name/model-unlearned")
            token = gr.Textbox(label="Your Hugging Face token (used once, never stored)", type="password")
            private = gr.Checkbox(True, label="Private")
            push_button = gr.Button("Push")
        pushed = gr.Markdown()

        load_inputs = [model_choice, model_id, dataset_id]
        for trigger in (mode.change, load.click):
            trigger(controls_for, [mode, *load_inputs], [alpha, epochs, method_note])
        load.click(choices_for, load_inputs, [classes, gallery, shown_state, picked_state])
        demo.load(choices_for, load_inputs, [classes, gallery, shown_state, picked_state])
        gallery.select(pick, [shown_state, picked_state], [picked_state, picked_text])
        outputs = [status, table, class_bars, entropy_before, entropy_after, forgotten, downloads, session]
        running = start.click(
            run, [*load_inputs, mode, classes, fraction, picked_state, alpha, epochs], outputs
        )
        stop.click(None, None, None, cancels=[running])
        upload.change(compare, [session, upload], [before, after])
        push_button.click(push_click, [session, repo, token, private], pushed)
        demo.unload(end_session)
    return demo.queue(default_concurrency_limit=CONCURRENT_RUNS, max_size=MAX_WAITING)


if __name__ == "__main__":
    # The address and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (a Space sets 0.0.0.0:7860).
    build_demo().launch(max_file_size="5mb")
