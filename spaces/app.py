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
import math
import queue
import shutil
import tempfile
import threading
import time
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
# the preset sample request: this many seeded training images of each class (1,000 on Fashion-MNIST: with 10 a class,
# a retrained model is `inconclusive` too, as 100 images are too few for the verifier's margins)
PRESET_PER_CLASS = 100
MODES = [
    ("a whole class", "classes"),
    (f"{PRESET_PER_CLASS} training images of each class", "preset"),
    ("a random fraction of the training images", "fraction"),
    ("training images I pick", "samples"),
]
BUDGET = 10  # percent of a retraining a run may cost: the budget the bundled models' defaults were picked at
MAX_TRAIN_SAMPLES = 60_000  # bounds a Hub data set's training split (a seeded subsample beyond it)
MAX_PICKED = 200
CONCURRENT_RUNS = 1  # runs at once; more wait in the queue
MAX_WAITING = 7  # runs waiting in the queue: 8 sessions at once in all, later ones are told the queue is full
GALLERY_SIZE = 48
SEED = DEFAULT_SEED
BAR_X = "class · model"  # the per-class bar chart's x: each class's bars, original and unlearned, side by side
INTRO = """# Make an image classifier forget
Pick a model, choose what it should forget, and run. The run fine-tunes the model within a budget (a share of what
retraining it from scratch would cost), then checks, on held-out images the run never used, whether the model now
treats the forgotten images as images it never saw: that check is the verdict. LoTUS (CVPR 2025) is one of the
methods; each model names the one its benchmark verified most often within the budget."""
# The metrics table's columns: a plain name, then what it means and which way is good.
COLUMNS = {
    "acc_forget": (
        "accuracy on the forgotten images",
        "falls towards the test accuracy as the model forgets",
    ),
    "acc_retain": ("accuracy on the kept training images", "should stay high"),
    "acc_test": ("accuracy on test images", "should stay high: the model still works"),
    "mia": (
        "membership attack on the forgotten images",
        "0.5 means an attacker cannot tell them from unseen ones",
    ),
    "rf_jsd": ("RF-JSD", "how differently the model treats forgotten and unseen images: lower is better"),
}


class SpaceError(ValueError):
    """A bad input; the message is shown to the user as it is."""


# ------------------------------------------------------------------------------------ pure functions
def resolve_choice(model_choice: str, model_id: str, dataset_id: str) -> tuple[str, str]:
    """(model, data set) to load: a bundled pick uses Fashion-MNIST; 'Hub' needs both ids."""
    if model_choice in BUNDLED:
        return BUNDLED[model_choice], "fashion_mnist"
    model_id, dataset_id = (model_id or "").strip(), (dataset_id or "").strip()
    if not hub_id(model_id) or not hub_id(dataset_id):
        raise SpaceError("Type a Hub model id and a Hub data set id, both as ORG/NAME (e.g. me/my-vit, me/my-data).")
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
    mode: str,
    classes: list[str] | None,
    fraction: float,
    picked: list[int] | None,
    train_labels: np.ndarray | None = None,
) -> ForgetRequest:
    """The forget request from the form, with clear messages for empty choices (`train_labels`: for the preset)."""
    if mode == "classes":
        if not classes:
            raise SpaceError("Pick at least one class to forget.")
        return ForgetRequest.classes(list(classes))
    if mode == "preset":
        if train_labels is None:
            raise SpaceError("The preset request needs the training labels.")
        return ForgetRequest.indices(preset_indices(train_labels))
    if mode == "fraction":
        if not 0 < float(fraction) <= 50:
            raise SpaceError("The random fraction must be between 0 and 50 percent.")
        return ForgetRequest.fraction(float(fraction) / 100, seed=SEED)
    if mode == "samples":
        if not picked:
            raise SpaceError("Click some images in the gallery first (or pick the preset of 10 images per class).")
        if len(picked) > MAX_PICKED:
            raise SpaceError(f"Pick at most {MAX_PICKED} samples.")
        return ForgetRequest.indices(sorted(set(int(i) for i in picked)))
    raise SpaceError(f"Unknown forget mode {mode!r}.")


def preset_indices(train_labels: np.ndarray, per_class: int = PRESET_PER_CLASS) -> list[int]:
    """The preset sample request: `per_class` seeded training images of each class (the same for everyone)."""
    rng = np.random.default_rng(SEED)
    labels = np.asarray(train_labels)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), min(per_class, int((labels == c).sum())), replace=False)
        for c in np.unique(labels)
    ]
    return sorted(int(i) for i in np.concatenate(chosen))


def method_for(mode: str, model_name: str) -> dict:
    """What a request of `mode` runs on `model_name`: the model's default method for that kind of request (its
    unlearning_config.json: the budgeted benchmark's pick), with its settings as they will run."""
    request = ForgetRequest.classes(["x"]) if mode == "classes" else ForgetRequest.first_percent(10)
    method = default_method(request, model_name)
    config = method_config(
        method,
        model_name,
        request,
        output_dir=tempfile.gettempdir(),
        use_cpu=True,
        **budget_fields(method, model_name, request, BUDGET),
    )
    settings = {**{k: v for k, v in config.method_hyperparameters().items() if k != "method"}, "budget": config.budget}
    return {"method": method, "name": METHOD_NAMES.get(method, method), "settings": settings}


METHOD_NAMES = {
    "lotus": "LoTUS",
    "belief_relabel": "Belief Relabel (lotus-hf's class forgetting)",
    "finetune": "Finetune (fine-tuning on the kept images only)",
    "neggrad_plus": "NegGrad+",
    "random_labels": "Random Labels",
    "salun": "SalUn",
    "bad_teacher": "Bad Teacher",
    "scrub": "SCRUB",
    "ssd": "SSD",
}


def budget_fields(method: str, model_name: str, request: ForgetRequest, budget: float) -> dict:
    """`budget` (percent of a retraining) as a config field, where the model's training recipe says what a
    retraining costs; a model without one (most Hub models) runs its method's own epochs, unbudgeted."""
    from lotus_hf.methods import recommended_fields

    known = recommended_fields(model_name, method, request).get("retrain_epochs") is not None
    return {"budget": budget / 100} if known else {}


def describe_method(method: dict) -> str:
    """The method and the settings that matter, in one line for the page."""
    settings = method["settings"]
    said = [f"learning rate {settings['learning_rate']:g}"] if "learning_rate" in settings else []
    if "alpha" in settings:
        said.append(f"alpha {settings['alpha']:g}")
    if settings.get("stop_rule"):
        said.append("lotus-hf's bound stop" if settings["stop_rule"] == "bound" else "the paper's stop rule")
    if settings.get("stop_when_verified"):
        said.append("stops as soon as the verifier's checks say forgotten")
    if settings.get("budget") is None:
        return f"Runs **{method['name']}** ({', '.join(said)}); no training recipe, so no budget: its own epochs."
    return f"Runs **{method['name']}** ({', '.join(said)}), within {BUDGET}% of a retraining's cost."


def gallery_indices(n_train: int, size: int = GALLERY_SIZE) -> list[int]:
    """The training samples offered in the gallery (seeded, the same for everyone)."""
    return sorted(np.random.default_rng(SEED).choice(n_train, size=min(size, n_train), replace=False).tolist())


def toggle_pick(shown: list[int], picked: list[int], position: int) -> list[int]:
    """A gallery click at `position` picks that training sample, or un-picks it if it was picked."""
    return sorted(set(picked) ^ {shown[position]})


def gallery_items(train_split, class_names: list[str], shown: list[int], picked: list[int]) -> list[tuple]:
    """The gallery's images with captions that mark the picked ones."""
    items = []
    for i in shown:
        mark = "✓ picked · " if i in picked else ""
        items.append((as_image(train_split[i]["image"]), f"{mark}#{i} {class_names[train_split[i]['label']]}"))
    return items


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> pd.DataFrame:
    """Accuracy of each class: rows (class, accuracy)."""
    hits = (logits.argmax(-1) == labels).float()
    values = [
        float(hits[labels == c].mean()) if (labels == c).any() else float("nan") for c in range(len(class_names))
    ]
    return pd.DataFrame({"class": class_names, "accuracy": values})


def entropy_histogram(probs_by_split: dict[str, np.ndarray], bins: int = 12, top: float | None = None) -> pd.DataFrame:
    """Share of samples per entropy bin for each split (memorised samples sit at entropy ~0), on bins from 0 to
    `top` (default: the largest entropy here; give the same to plots that sit side by side)."""
    top = top or max(float(entropy(p).max()) for p in probs_by_split.values()) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    rows = []
    for split, probs in probs_by_split.items():
        counts, _ = np.histogram(np.clip(entropy(probs), 0.0, top), bins=edges)
        for left, right, count in zip(edges[:-1], edges[1:], counts, strict=True):
            rows.append(
                {"entropy": round(float(left + right) / 2, 3), "share": count / max(1, len(probs)), "images": split}
            )
    return pd.DataFrame(rows)


def metrics_table(report: dict) -> pd.DataFrame:
    """The before/after table as shown on the page: plain column names (`COLUMNS`), rounded for display only."""
    rows = []
    for name, row in report["rows"].items():
        rows.append({"model": name, **{COLUMNS[k][0]: round(row[k], 4) for k in COLUMNS}})
    return pd.DataFrame(rows)


def column_notes() -> str:
    """One line per column of the metrics table: what it means and which way is good."""
    return "\n".join(f"- **{name}**: {note}." for name, note in COLUMNS.values())


def verdict_markdown(report: dict) -> tuple[str, str]:
    """The verdict in one sentence (with the model's utility and the run's cost beside it), and its evidence."""
    from lotus_hf.cards import evidence_table

    verification, cost = report["verification"], report.get("cost") or {}
    sentences = {
        "forgotten": "**Forgotten**: the model now treats the forgotten images as images it never saw.",
        "not_forgotten": "**Not forgotten**: the model still treats the forgotten images differently from images "
        "it never saw.",
        "inconclusive": "**Inconclusive**: the held-out images cannot tell either way.",
    }
    sentence = sentences[verification["verdict"]]
    if verification["verdict"] == "inconclusive":
        sentence += " " + why_inconclusive(verification)
    utility = verification.get("utility") or {}
    if utility:
        kept = "still works" if utility["outcome"] == "kept" else "**no longer works** (damaged)"
        sentence += (
            f" It {kept}: held-out accuracy {utility['accuracy']:.3f}, against the original's "
            f"{utility['original_accuracy']:.3f}."
        )
    if cost.get("share_of_retrain") is not None:
        sentence += f" The run cost {cost['share_of_retrain']:.1%} of a retraining"
        sentence += f" ({cost['wall_share']:.1%} of its time)." if cost.get("wall_share") else "."
    return sentence, f"{evidence_table(verification)}\n\n{verification['advice']}"


def why_inconclusive(verification: dict) -> str:
    """Why the tests could not decide, and what on this page would settle it (the CLI's advice names flags the page
    has no control for)."""
    undecided = [e for e in verification["evidence"] if e["outcome"] == "inconclusive"]
    if any(e["test"].startswith("heldout_unseen") for e in undecided):
        return (
            "The model knows the held-out images better than the test split's other half, as a model trained on "
            "them would (or, about once in a hundred, by the luck of the split): they cannot stand for images it "
            "never saw. Held-out images its owner never had (`lotus-hf verify --heldout`) can settle it."
        )
    forget = max((e["n_forget"] for e in undecided), default=0)
    if any(e["heldout_needed"] is None for e in undecided):
        return (
            f"{forget:,} forgotten images are too few for its tests to decide within their margins, whatever the "
            "held-out images: their intervals stay wider than the margin. Forget more at once (a random 10% of the "
            "training images, say) for a verdict either way."
        )
    return (
        f"It read every held-out image this data set has for these classes and still needs about "
        f"{max(e['heldout_needed'] for e in undecided):,} more; an auditor's own held-out images or reference "
        "models trained without the forgotten images (`lotus-hf verify --heldout`, `--reference-models`) would "
        "settle it."
    )


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


class Cancelled(Exception):
    """The session asked to stop: raised from inside training, so that nothing after it runs."""


class _Progress(TrainerCallback):
    """Sends the run's phases, its training progress and each probe to the page, and stops the run within a step
    (or a batch of a prediction pass) when the session cancels: it raises `Cancelled`, so nothing is evaluated or
    written after it."""

    def __init__(self, events: queue.Queue, cancel: threading.Event):
        self.events, self.cancel, self.training = events, cancel, False

    def _check(self):
        if self.cancel.is_set():
            raise Cancelled

    def on_train_begin(self, args, state, control, **kwargs):
        self._check()
        self.training = False
        self.events.put(("phase", "preparing (the original's outputs on the images the method reads first, if any)"))

    def on_prediction_step(self, args, state, control, **kwargs):
        self._check()

    def on_step_end(self, args, state, control, **kwargs):
        self._check()
        if not self.training:
            self.training = True
            self.events.put(("phase", "training, until the run's budget is spent or its stop fires"))
        spent = getattr(state, "budget_spent", None)  # set by the budget's callback (lotus_hf.cost)
        self.events.put(("train", spent if spent is not None else state.global_step / max(1, state.max_steps)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "forget_accuracy" in logs:
            self.events.put(
                (
                    "probe",
                    {
                        **logs,
                        "step": state.global_step,
                        "probe": int(state.global_step > 0),
                        "epoch": max(1, math.ceil(state.epoch or 0)),
                    },
                )
            )

    def on_train_end(self, args, state, control, **kwargs):
        self._check()
        self.events.put(("phase", "evaluating and verifying on held-out images"))


def run_unlearning(
    model_name,
    dataset_name,
    request,
    method: str | None = None,
    budget: float = BUDGET,
    events=None,
    cancel=None,
    work: Path | None = None,
) -> RunResult:
    """Unlearn `request` from the model with `method` (default: the model's own for the request) within `budget`
    percent of a retraining, evaluate and verify it, and save model + report into `work` (default: a fresh temp
    folder). A set `cancel` raises `Cancelled` from inside the run, before anything is saved."""
    import copy

    model, processor, class_names, _, train, held_out = prepared(model_name, dataset_name)
    data = split_unlearning_data(train, held_out, class_names, request, seed=SEED)
    if not 0 < budget <= 100:
        raise SpaceError("The budget must be between 0 and 100 percent of a retraining.")
    original = copy.deepcopy(model)
    student = copy.deepcopy(model)
    work = work or Path(tempfile.mkdtemp(prefix="lotus-space-"))
    method = method or default_method(request, model_name)
    budgeted = budget_fields(method, model_name, request, budget)
    config = method_config(
        method,
        model_name,
        request,
        output_dir=str(work / "trainer"),
        seed=SEED,
        disable_tqdm=True,
        logging_strategy="no",
        use_cpu=True,
        dataloader_pin_memory=False,
        **budgeted,
    )
    callbacks = [_Progress(events, cancel)] if events is not None else []
    if events is not None and not config.trains:  # no trainer, so no callback: say what the one pass does
        events.put(
            (
                "phase",
                f"one pass of {method} over the forget and retain images (no training), then evaluating and "
                "verifying on held-out images",
            )
        )
    result = unlearn(student, data, config, base_model=model_name, dataset=dataset_name, callbacks=callbacks)
    if cancel is not None and cancel.is_set():  # cancelled while it evaluated: nothing is written
        raise Cancelled
    folder = save_unlearned(result, processor, work / "unlearned-model")
    archive = Path(shutil.make_archive(str(work / "unlearned-model"), "zip", folder))
    return RunResult(
        folder, archive, result.report.to_dict(), original.eval(), result.model.eval(), processor, class_names, data
    )


def before_after(run: RunResult, model_name: str, dataset_name: str):
    """Per-class test accuracy before and after, entropy histograms on one shared axis, and the forgotten samples'
    gallery."""
    _, _, class_names, train_split, train, _ = prepared(model_name, dataset_name)
    data = run.data
    bars, probs_of = [], {}
    for name, model in (("original", run.original), ("unlearned", run.unlearned)):
        retain = data.retain.select(np.arange(min(len(data.retain), len(data.test))))  # a sample is enough
        logits = {
            "forgotten": predict_logits(model, data.forget),
            "kept (training)": predict_logits(model, retain),
            "test": predict_logits(model, data.test),
        }
        bars.append(per_class_accuracy(logits["test"], data.test.labels, class_names).assign(model=name))
        probs_of[name] = {s: torch.softmax(v.double(), -1).numpy() for s, v in logits.items()}
    top = max(float(entropy(p).max()) for probs in probs_of.values() for p in probs.values()) or 1.0
    histograms = [entropy_histogram(probs_of[name], top=top) for name in ("original", "unlearned")]
    shown = data.forget_indices[:12]
    before = predict_logits(run.original, train.select(shown))
    after = predict_logits(run.unlearned, train.select(shown))
    gallery = [
        (
            as_image(train_split[int(i)]["image"]),
            f"{class_names[int(train.labels[i])]}: {class_names[int(b.argmax())]} -> {class_names[int(a.argmax())]}",
        )
        for i, b, a in zip(shown, before, after, strict=True)
    ]
    return side_by_side(bars), histograms[0], histograms[1], gallery


def side_by_side(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-class accuracy frames (class, accuracy, model) as one, with the bar chart's x (`BAR_X`): gr.BarPlot
    (gradio 6) stacks the bars that share an x, so each class and model gets its own, side by side."""
    bars = pd.concat(frames, ignore_index=True)
    bars[BAR_X] = bars["class"] + " · " + bars["model"]
    return bars


def compare_image(run: RunResult | None, image) -> tuple[dict, dict]:
    """Both models' top predictions for an uploaded image."""
    if run is None:
        raise SpaceError("Run the unlearning first.")
    if image is None:
        raise SpaceError("Upload an image.")
    image = image.convert("L") if len(run.processor.image_mean) == 1 else image.convert("RGB")
    pixels = run.processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return (
            top_predictions(run.original(pixel_values=pixels).logits[0], run.class_names),
            top_predictions(run.unlearned(pixel_values=pixels).logits[0], run.class_names),
        )


def push(run: RunResult | None, repo_id: str, token: str, private: bool = True) -> str:
    """Push this session's unlearned model with the user's token (used for this call only, never kept)."""
    if run is None:
        raise SpaceError("Run the unlearning first.")
    if not hub_id((repo_id or "").strip()):
        raise SpaceError("Name the repo as ORG/NAME, e.g. your-name/my-model-unlearned.")
    if not (token or "").strip():
        raise SpaceError("Paste a Hugging Face token with write access (it is used for this push only).")
    url = push_folder(
        run.folder,
        repo_id.strip(),
        private=private,
        token=token.strip(),
        message="Upload unlearned model (lotus-hf Space)",
    )
    return f"Pushed: {url}"


# ------------------------------------------------------------------------------------------- the app
def _bundled_classes() -> list[str]:
    from transformers import AutoConfig

    from lotus_hf.loading import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(next(iter(BUNDLED.values()))))
    return [config.id2label[i] for i in range(config.num_labels)]


CANCELS: dict[str, threading.Event] = {}  # session -> its running run's cancel flag


def build_demo():
    """The app, queued: `CONCURRENT_RUNS` runs at once and `MAX_WAITING` waiting, later ones told the queue is
    full. The default model's data are prepared here, once, at start-up: the first page load only reads them
    (a Space that prepared them per load showed "processing" for over 15 s)."""
    prepared(*resolve_choice(next(iter(BUNDLED)), "", ""))

    def loaded(model_choice, model_id, dataset_id):
        try:
            model_name, dataset_name = resolve_choice(model_choice, model_id, dataset_id)
            _, _, class_names, train_split, _, _ = prepared(model_name, dataset_name)
        except (SpaceError, ValueError) as error:
            raise gr.Error(str(error)) from None
        return model_name, class_names, train_split

    def choices_for(model_choice, model_id, dataset_id):
        _, class_names, train_split = loaded(model_choice, model_id, dataset_id)
        shown = gallery_indices(len(train_split))
        first = ["Sandal"] if "Sandal" in class_names else class_names[:1]  # a request that runs with no clicks
        gallery_value = gallery_items(train_split, class_names, shown, [])
        return gr.Dropdown(choices=class_names, value=first), gallery_value, shown, [], ""

    def method_note_for(mode, model_choice, model_id, dataset_id):
        try:
            model_name, _ = resolve_choice(model_choice, model_id, dataset_id)
            return describe_method(method_for(mode, model_name))
        except (SpaceError, ValueError):
            return describe_method(method_for(mode, BUNDLED[next(iter(BUNDLED))]))

    def pick(model_choice, model_id, dataset_id, shown, picked, event: gr.SelectData):
        _, class_names, train_split = loaded(model_choice, model_id, dataset_id)
        picked = toggle_pick(shown, picked, event.index)
        text = ", ".join(f"#{i}" for i in picked) or "none: click images to pick them, click again to un-pick"
        return picked, text, gallery_items(train_split, class_names, shown, picked), "samples"

    def run(
        model_choice,
        model_id,
        dataset_id,
        mode,
        classes,
        fraction,
        picked,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008  (Gradio's way to ask for a progress tracker)
    ):
        try:
            model_name, class_names, train_split = loaded(model_choice, model_id, dataset_id)
            labels = np.asarray(train_split["label"]) if mode == "preset" else None
            forget = make_request(mode, classes, fraction, picked, labels)
        except (SpaceError, ValueError) as error:
            raise gr.Error(str(error)) from None
        events, cancel, outcome = queue.Queue(), threading.Event(), {}
        CANCELS[request.session_hash] = cancel
        folder = SESSION_FILES.new(request.session_hash)
        method = method_for("classes" if forget.kind == "classes" else "samples", model_name)

        def work():
            try:
                outcome["run"] = run_unlearning(
                    model_name,
                    dataset_name_of(model_choice, dataset_id),
                    forget,
                    method["method"],
                    BUDGET,
                    events,
                    cancel,
                    folder,
                )
                if cancel.is_set():
                    raise Cancelled
                outcome["plots"] = before_after(outcome["run"], model_name, dataset_name_of(model_choice, dataset_id))
            except Cancelled:
                outcome["cancelled"] = True
            except Exception as error:  # shown to the user below
                outcome["error"] = error
            finally:
                if cancel.is_set():  # cancelled, or the session ended: nothing of the run stays on disk
                    outcome.pop("run", None)
                    shutil.rmtree(folder, ignore_errors=True)
            events.put(("done", None))

        start = time.perf_counter()
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        log = [f"Forgetting {forget.describe()} from {model_name}: {describe_method(method).replace('**', '')}"]
        cleared = dict.fromkeys([class_bars, entropy_before, entropy_after, downloads, session])
        cleared.update({status: "\n".join(log), verdict: "", evidence: "", table: empty_table(), forgotten: []})
        yield cleared  # the previous run's results go as this one starts
        phase, spent = "starting", None
        try:
            while True:
                try:
                    kind, value = events.get(timeout=1.0)
                except queue.Empty:
                    kind, value = None, None
                if kind == "done":
                    break
                elapsed = time.perf_counter() - start
                if kind == "phase":
                    phase, spent = value, None
                    log.append(f"{elapsed:5.0f} s  {value}")
                elif kind == "train":
                    phase, spent = "training", value
                elif kind == "probe":
                    log.append(f"{elapsed:5.0f} s  probe, {probe_line(value['epoch'], value)}")
                if spent is not None:
                    progress(spent, desc=f"training: {spent:.0%} of its budget spent, {elapsed:.0f} s")
                else:
                    progress((int(elapsed), None), desc=f"{phase}, {elapsed:.0f} s", unit="s")
                if kind in ("phase", "probe"):
                    yield {status: "\n".join(log)}
        finally:
            if "run" not in outcome:  # the page went away mid-run (or it ended without a model): stop it
                cancel.set()
            CANCELS.pop(request.session_hash, None)
        elapsed = time.perf_counter() - start
        if outcome.get("cancelled") or "run" not in outcome and "error" not in outcome:
            log.append(f"{elapsed:5.0f} s  cancelled: training stopped; nothing was evaluated or saved")
            yield {status: "\n".join(log)}
            return
        if "error" in outcome:
            raise gr.Error(str(outcome["error"]))
        result = outcome["run"]
        bars, entropy_original, entropy_unlearned, gallery_after = outcome["plots"]
        sentence, details = verdict_markdown(result.report)
        log.append(f"{elapsed:5.0f} s  done: {result.report['verification']['verdict']}")
        yield {
            status: "\n".join(log),
            verdict: sentence,
            evidence: details,
            table: metrics_table(result.report),
            class_bars: bars,
            entropy_before: entropy_original,
            entropy_after: entropy_unlearned,
            forgotten: gallery_after,
            downloads: [str(result.archive), str(result.folder / "report.json")],
            session: result,
        }

    def cancel_run(request: gr.Request):
        flag = CANCELS.get(request.session_hash)
        if flag is not None:
            flag.set()

    def compare(run_state, image):
        try:
            return compare_image(run_state, image)
        except SpaceError as error:
            raise gr.Error(str(error)) from None

    def end_session(request: gr.Request):
        cancel_run(request)  # a run still going stops, and removes its own folder when it does
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
            model_choice = gr.Radio([*BUNDLED, "Hub"], value=next(iter(BUNDLED)), label="Model", elem_id="model")
            model_id = gr.Textbox(label="Hub model id (with 'Hub')", placeholder="org/model")
            dataset_id = gr.Textbox(label="Hub data set id (with 'Hub')", placeholder="org/dataset")
            load = gr.Button("Load", elem_id="load")
        with gr.Row():
            mode = gr.Radio(MODES, value="classes", label="Forget", elem_id="mode")
            classes = gr.Dropdown(
                _bundled_classes(), value=["Sandal"], multiselect=True, label="Classes to forget", elem_id="classes"
            )
            fraction = gr.Slider(1, 50, value=10, step=1, label="Random fraction (%)")
            picked_text = gr.Textbox(label="Picked images", interactive=False, elem_id="picked")
        gallery = gr.Gallery(
            label="Click images to pick them (click again to un-pick)",
            columns=12,
            height=200,
            allow_preview=False,
            elem_id="pick-gallery",
        )
        with gr.Row():
            method_note = gr.Markdown(method_note_for("classes", next(iter(BUNDLED)), "", ""), elem_id="method")
            start = gr.Button("Run", variant="primary", elem_id="run")
            stop = gr.Button("Cancel", elem_id="cancel")
        status = gr.Textbox(label="Progress", lines=5, elem_id="status")
        verdict = gr.Markdown(elem_id="verdict", min_height=90)  # room for the run's bar while it goes on
        with gr.Accordion("The verifier's evidence", open=False):
            evidence = gr.Markdown(elem_id="evidence")
        table = gr.DataFrame(value=empty_table(), label="Before and after", elem_id="metrics")
        gr.Markdown(column_notes())
        with gr.Row():
            class_bars = gr.BarPlot(
                x=BAR_X,
                y="accuracy",
                color="model",
                title="Test accuracy per class",
                x_title="class, then model",
                y_title="test accuracy",
                x_label_angle=-45,
                y_lim=[0, 1],
            )
        with gr.Row():
            entropy_before = gr.LinePlot(
                x="entropy",
                y="share",
                color="images",
                title="Prediction entropy: original",
                x_title="prediction entropy (nats)",
                y_title="share of images",
                y_lim=[0, 1],
            )
            entropy_after = gr.LinePlot(
                x="entropy",
                y="share",
                color="images",
                title="Prediction entropy: unlearned",
                x_title="prediction entropy (nats)",
                y_title="share of images",
                y_lim=[0, 1],
            )
        forgotten = gr.Gallery(label="Forgotten images: true class: original -> unlearned", columns=6)
        with gr.Row():
            upload = gr.Image(type="pil", label="Try an image", elem_id="upload")
            before = gr.Label(label="Original", elem_id="pred-original")
            after = gr.Label(label="Unlearned", elem_id="pred-unlearned")
        downloads = gr.File(label="Unlearned model (zip) and report.json", file_count="multiple", elem_id="downloads")
        with gr.Row():
            repo = gr.Textbox(label="Push to Hub repo", placeholder="your-name/model-unlearned")
            token = gr.Textbox(label="Your Hugging Face token (used once, never stored)", type="password")
            private = gr.Checkbox(True, label="Private")
            push_button = gr.Button("Push")
        pushed = gr.Markdown()

        load_inputs = [model_choice, model_id, dataset_id]
        for trigger in (mode.change, load.click):
            trigger(method_note_for, [mode, *load_inputs], method_note)
        load.click(choices_for, load_inputs, [classes, gallery, shown_state, picked_state, picked_text])
        demo.load(choices_for, load_inputs, [classes, gallery, shown_state, picked_state, picked_text])
        gallery.select(pick, [*load_inputs, shown_state, picked_state], [picked_state, picked_text, gallery, mode])
        outputs = [
            status,
            verdict,
            evidence,
            table,
            class_bars,
            entropy_before,
            entropy_after,
            forgotten,
            downloads,
            session,
        ]
        # the bar (phase, share of the budget, elapsed time) goes on the verdict's place, empty while a run goes on:
        # on every output it would cover the log and the cleared results
        start.click(run, [*load_inputs, mode, classes, fraction, picked_state], outputs, show_progress_on=[verdict])
        stop.click(cancel_run, None, None, concurrency_limit=None)
        upload.change(compare, [session, upload], [before, after])
        push_button.click(push_click, [session, repo, token, private], pushed)
        demo.unload(end_session)
    return demo.queue(default_concurrency_limit=CONCURRENT_RUNS, max_size=MAX_WAITING)


def dataset_name_of(model_choice: str, dataset_id: str) -> str:
    """The data set a choice runs on: Fashion-MNIST for a bundled model, else the typed Hub id."""
    return "fashion_mnist" if model_choice in BUNDLED else (dataset_id or "").strip()


def empty_table() -> pd.DataFrame:
    """The metrics table before any run: its headers, no rows."""
    return pd.DataFrame(columns=["model", *(name for name, _ in COLUMNS.values())])


if __name__ == "__main__":
    # The address and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (a Space sets 0.0.0.0:7860).
    build_demo().launch(max_file_size="5mb")
