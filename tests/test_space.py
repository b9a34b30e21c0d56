"""The Space (spaces/app.py): its pure functions, then the app in headless Chromium with Playwright."""

import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "spaces" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["space_app"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_resolve_choice_and_requests(app):
    assert app.resolve_choice("Fashion-MNIST ViT (bundled)", "", "") == ("fashion-mnist-vit", "fashion_mnist")
    assert app.resolve_choice("Hub", " me/model ", "me/data") == ("me/model", "me/data")
    with pytest.raises(app.SpaceError, match="Type a Hub model id and a Hub data set id"):
        app.resolve_choice("Hub", "me/model", "")
    assert app.make_request("classes", ["Sandal"], 10, []).describe() == "classes=Sandal"
    assert app.make_request("fraction", [], 5, []).describe() == "fraction=0.05"
    assert app.make_request("samples", [], 10, [7, 3, 7]).value == (3, 7)
    for mode, classes, fraction, picked, message in [
        ("classes", [], 10, [], "Pick at least one class"),
        ("fraction", [], 0, [], "between 0 and 50"),
        ("samples", [], 10, [], "Click some images"),
        ("samples", [], 10, list(range(app.MAX_PICKED + 1)), "at most"),
    ]:
        with pytest.raises(app.SpaceError, match=message):
            app.make_request(mode, classes, fraction, picked)


def test_the_preset_sample_request_needs_no_click(app):
    """A hundred seeded training images of each class, the same for everyone: a sample request that runs as it is."""
    n = app.PRESET_PER_CLASS
    labels = np.repeat(np.arange(3), [3 * n, n + 2, n // 2])  # the last class has fewer: all of them
    request = app.make_request("preset", [], 10, [], labels)
    chosen = np.asarray(request.value)
    assert [int((labels[chosen] == c).sum()) for c in range(3)] == [n, n, n // 2]
    assert request.value == app.make_request("preset", [], 10, [], labels).value


def test_the_form_names_the_models_default_method_at_its_budget(app):
    """Each request runs the model's own default for its kind (unlearning_config.json: the budgeted benchmark's
    pick), with its settings, within the Space's budget, and the page says which."""
    from lotus_hf.methods import default_method
    from lotus_hf.requests import ForgetRequest

    for model in app.BUNDLED.values():
        for mode, request in (
            ("classes", ForgetRequest.classes(["x"])),
            ("samples", ForgetRequest.first_percent(10)),
        ):
            method = app.method_for(mode, model)
            assert method["method"] == default_method(request, model)
            assert method["settings"]["budget"] == app.BUDGET / 100
            note = app.describe_method(method)
            assert method["name"] in note and f"within {app.BUDGET}% of a retraining" in note


def test_gallery_picks_toggle(app):
    shown = app.gallery_indices(60_000)
    assert len(shown) == app.GALLERY_SIZE and shown == app.gallery_indices(60_000)  # the same for everyone
    picked = app.toggle_pick(shown, [], 3)
    picked = app.toggle_pick(shown, picked, 0)
    assert picked == sorted([shown[0], shown[3]])
    picked = app.toggle_pick(shown, picked, 3)
    assert picked == [shown[0]]  # a second click un-picks
    assert app.make_request("samples", [], 10, picked).value == (shown[0],)
    images = [np.zeros((2, 2), dtype=np.uint8)] * 5
    train = [{"image": images[i], "label": i % 2} for i in range(5)]
    captions = [c for _, c in app.gallery_items(train, ["a", "b"], [0, 1, 2], [1])]
    assert captions == ["#0 a", "✓ picked · #1 b", "#2 a"]  # what is picked is marked


def test_tables_and_histograms_by_hand(app):
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    table = app.per_class_accuracy(logits, labels, ["a", "b"])
    assert table["accuracy"].tolist() == [1.0, 0.5]
    probs = {"forget": np.array([[1.0, 0.0], [0.5, 0.5]]), "test": np.array([[0.5, 0.5], [0.5, 0.5]])}
    histogram = app.entropy_histogram(probs, bins=2)
    shares = histogram.set_index(["images", "entropy"])["share"]
    assert shares["forget"].tolist() == [0.5, 0.5] and shares["test"].tolist() == [0.0, 1.0]
    shared = app.entropy_histogram(probs, bins=2, top=2 * np.log(2))  # a shared axis: the same bins for both plots
    assert shared["entropy"].unique().tolist() == pytest.approx([np.log(2) / 2, 3 * np.log(2) / 2], abs=1e-3)
    assert app.top_predictions(torch.tensor([0.0, 0.0, 10.0]), ["x", "y", "z"], k=1) == pytest.approx(
        {"z": 1.0}, abs=1e-3
    )
    keys = ("acc_forget", "acc_retain", "acc_test", "mia", "rf_jsd", "rf_jsd_reference")
    report = {"rows": {"original": dict.fromkeys(keys, 0.123456), "unlearned": dict.fromkeys(keys, 0.5)}}
    table = app.metrics_table(report)
    assert list(table.columns) == list(app.empty_table().columns) == ["model", *(n for n, _ in app.COLUMNS.values())]
    assert table.loc[0, "accuracy on the forgotten images"] == 0.1235 and "rf_jsd_reference" not in table
    assert app.column_notes().count("\n- ") == len(app.COLUMNS) - 1  # one line per column


def test_per_class_bars_stand_side_by_side(app):
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    frames = [app.per_class_accuracy(logits, labels, ["a", "b"]).assign(model=m) for m in ("original", "unlearned")]
    bars = app.side_by_side(frames)
    assert bars[app.BAR_X].tolist() == ["a · original", "b · original", "a · unlearned", "b · unlearned"]
    assert bars["accuracy"].tolist() == [1.0, 0.5, 1.0, 0.5]  # one bar each, nothing stacked


def test_the_verdict_reads_as_one_sentence_with_utility_and_cost(app):
    verification = {
        "verdict": "forgotten",
        "advice": "The model knows no more...",
        "evidence": [],
        "utility": {"outcome": "damaged", "accuracy": 0.1, "original_accuracy": 0.9},
    }
    sentence, details = app.verdict_markdown(
        {"verification": verification, "cost": {"share_of_retrain": 0.0412, "wall_share": 0.05}}
    )
    assert sentence.startswith("**Forgotten**") and "no longer works" in sentence
    assert "4.1% of a retraining" in sentence and "The model knows no more" in details


def test_an_inconclusive_verdict_says_why_in_words_the_page_can_act_on(app):
    """Verifier outputs on a hundred forget images, too few for the margins: the sentence says so and names what on
    this page would settle it, not a CLI flag the page has no control for."""
    from lotus_hf.evidence import log_softmax, verify_outputs

    rng = np.random.default_rng(0)

    def outputs(n, boost):
        labels = rng.integers(0, 10, n)
        logits = rng.normal(size=(n, 10))
        logits[np.arange(n), labels] += 2.0 + boost + rng.normal(size=n)
        return log_softmax(logits), labels

    held, held_labels = outputs(400, 0.0)
    few = verify_outputs(*outputs(100, 0.0), held, held_labels, kind="indices").to_dict()
    assert few["verdict"] == "inconclusive"
    sentence, _ = app.verdict_markdown({"verification": few})
    assert "100 forgotten images are too few" in sentence and "Forget more at once" in sentence
    # held-out images the model trained on, told from the test split's other half: no more forgetting would help
    forget, forget_labels = outputs(600, 1.5)
    trained_on, trained_labels = outputs(2000, 1.5)
    twin, twin_labels = outputs(2000, 0.0)
    cheat = verify_outputs(
        forget,
        forget_labels,
        trained_on,
        trained_labels,
        kind="first_percent",
        calibration_log_probs=twin,
        calibration_labels=twin_labels,
    ).to_dict()
    sentence, details = app.verdict_markdown({"verification": cheat})
    assert cheat["verdict"] == "inconclusive" and "better than the test split's other half" in sentence
    assert "too few" not in sentence and "`heldout_unseen_*` compare the held-out images read" in details


def test_compare_and_push_need_a_run(app):
    with pytest.raises(app.SpaceError, match="Run the unlearning first"):
        app.compare_image(None, None)
    with pytest.raises(app.SpaceError, match="Run the unlearning first"):
        app.push(None, "me/x", "token")


# ------------------------------------------------------------------------------------------- browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _row_numbers(page, name: str) -> list[float]:
    """The numbers in row `name` of the metrics table (Gradio 6 renders it as an ARIA grid)."""
    for row in page.locator("#metrics [role=row]").all():
        cells = [c.text_content().strip() for c in row.locator("[role=gridcell]").all()]
        if cells and cells[0] == name:
            return [float(c) for c in cells[1:] if c]
    raise AssertionError(f"no row {name!r} in the metrics table")


def _space_folders() -> set[Path]:
    import tempfile

    return set(Path(tempfile.gettempdir()).glob("lotus-space-*"))


@pytest.fixture(scope="module")
def served(app):
    """The app on a local port, and headless Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            yield demo, browser, sync_api
            browser.close()
    finally:
        demo.close()


def _open(demo, browser):
    page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
    page.goto(demo.local_url)
    page.locator("#pick-gallery img").first.wait_for(timeout=120_000)  # classes and gallery loaded
    return page


def _status(page) -> str:
    return page.locator("#status textarea").input_value()


@pytest.mark.slow
def test_the_preset_requests_reach_their_verdict_with_no_click_and_readable_results(app, served, tmp_path):
    """Headless Chromium: the page opens on a class request (Sandal) at the model's default method and budget;
    Run with no other click reaches the verdict `forgotten`, with plain column names, the verdict in one sentence
    with the model's utility and the run's cost, and the numbers of the downloaded report.json. Then the preset
    sample request (100 images per class), also `forgotten` with no click but the mode. Screenshots before, during
    and after go to $LOTUS_HF_SCREENSHOTS (docs/images/space when refreshed)."""
    demo, browser, sync_api = served
    shots = Path(os.environ.get("LOTUS_HF_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    prepared_at_start = app.prepared.cache_info()
    page = _open(demo, browser)
    assert app.prepared.cache_info().misses == prepared_at_start.misses  # the page load prepared nothing itself
    assert "within 10% of a retraining" in page.locator("#method").inner_text()
    headers = page.locator("#metrics").inner_text()
    assert "accuracy on the forgotten images" in headers and "rf_jsd_reference" not in headers
    page.screenshot(path=str(shots / "1-before.png"), full_page=True)
    page.locator("#run").click()
    # a method that trains says so; one that edits the weights in one pass (SSD, the ResNet's class default) too
    during = re.compile("training, until|one pass of")
    sync_api.expect(page.locator("#status textarea")).to_have_value(during, timeout=120_000)
    page.screenshot(path=str(shots / "2-during.png"), full_page=True)
    sync_api.expect(page.locator("#status textarea")).to_have_value(re.compile("done: "), timeout=600_000)
    status = _status(page)
    assert "classes=Sandal" in status and "evaluating and verifying" in status
    sentence = page.locator("#verdict").inner_text()
    # the defaults are there to give a model that has forgotten: the preset request must end so
    assert sentence.startswith("Forgotten") and "of a retraining" in sentence, sentence
    assert "held-out accuracy" in sentence  # utility beside the verdict
    with page.expect_download() as download:
        row = page.locator("#downloads tr.file", has=page.locator('td[aria-label="report.json"]'))
        row.locator("td.download a").click()
    report = json.loads(Path(download.value.path()).read_text())
    assert report["forget"]["request"] == "classes=Sandal" and report["cost"]["share_of_retrain"] <= 0.1
    expected = app.metrics_table(report)
    for name in ("original", "unlearned"):
        row = expected[expected["model"] == name].iloc[0]
        assert _row_numbers(page, name) == pytest.approx([float(v) for v in row.drop("model")], abs=1e-4), name
    page.screenshot(path=str(shots / "3-after.png"), full_page=True)

    page.get_by_label(f"{app.PRESET_PER_CLASS} training images of each class").check()
    page.locator("#run").click()
    sync_api.expect(page.locator("#verdict")).to_have_text("", timeout=30_000)  # the last run's results go first
    sync_api.expect(page.locator("#status textarea")).to_have_value(re.compile("done: "), timeout=600_000)
    assert f"indices ({10 * app.PRESET_PER_CLASS} given)" in _status(page)
    sentence = page.locator("#verdict").inner_text()
    assert sentence.startswith("Forgotten"), sentence  # the preset sample request too
    page.screenshot(path=str(shots / "4-after-samples.png"), full_page=True)


@pytest.mark.slow
def test_cancel_stops_within_a_few_batches_and_leaves_nothing(app, served):
    """Cancel during training: the page says "cancelled" within seconds, no folder of the run is left, and the next
    request starts at once."""
    demo, browser, sync_api = served
    before = _space_folders()
    page = _open(demo, browser)
    page.get_by_label(f"{app.PRESET_PER_CLASS} training images of each class").check()  # a request that trains
    page.locator("#run").click()
    sync_api.expect(page.locator("#status textarea")).to_have_value(re.compile("preparing"), timeout=120_000)
    page.wait_for_timeout(3_000)  # into training
    page.locator("#cancel").click()
    sync_api.expect(page.locator("#status textarea")).to_have_value(re.compile("cancelled"), timeout=60_000)
    assert "done: " not in _status(page) and page.locator("#verdict").inner_text() == ""
    assert _space_folders() <= before  # nothing of the run on disk
    page.locator("#run").click()  # the next request starts at once
    status = page.locator("#status textarea")
    sync_api.expect(status).not_to_have_value(re.compile("cancelled"), timeout=30_000)  # the last run's log goes first
    sync_api.expect(status).to_have_value(re.compile("preparing"), timeout=60_000)
    page.locator("#cancel").click()
    sync_api.expect(page.locator("#status textarea")).to_have_value(re.compile("cancelled"), timeout=60_000)


@pytest.mark.slow
def test_a_tab_closed_mid_run_leaves_no_folder(app, served):
    demo, browser, sync_api = served
    before = _space_folders()
    page = _open(demo, browser)
    page.locator("#run").click()  # the class request the page opens on (the ResNet's default: SSD's one pass)
    sync_api.expect(page.locator("#status textarea")).to_have_value(
        re.compile("preparing|one pass of"), timeout=120_000
    )
    assert _space_folders() - before  # the run has its folder
    page.context.close()
    import time

    deadline = time.monotonic() + 120
    while _space_folders() - before and time.monotonic() < deadline:
        time.sleep(1)
    assert not _space_folders() - before


@pytest.mark.slow
def test_gallery_clicks_pick_and_un_pick_and_never_open_a_preview(app, served):
    demo, browser, sync_api = served
    page = _open(demo, browser)
    images = page.locator("#pick-gallery button.thumbnail-item, #pick-gallery .thumbnail-item")
    images.nth(0).click()
    images.nth(2).click()
    sync_api.expect(page.locator("#picked textarea, #picked input")).to_have_value(re.compile(r"^#\d+, #\d+$"))
    assert page.locator("#pick-gallery .preview").count() == 0  # no preview opened
    assert page.locator("#pick-gallery").get_by_text("✓ picked").count() == 2  # the picked ones are marked
    page.keyboard.press("ArrowRight")  # keys pick nothing
    images.nth(0).click()  # a second click un-picks
    sync_api.expect(page.locator("#picked textarea, #picked input")).to_have_value(re.compile(r"^#\d+$"))
    assert page.locator("#mode input[value=samples]").is_checked()


def test_cancel_raises_inside_the_run_so_nothing_runs_after_it(app):
    """The Cancel button sets the session's flag; the callback raises at the next step, or the next batch of a
    prediction pass (the original's outputs), or when training ends, so no evaluation or save follows."""
    import queue
    import threading

    from transformers import TrainerControl, TrainerState

    cancel, events = threading.Event(), queue.Queue()
    progress = app._Progress(events, cancel)
    control, state = TrainerControl(), TrainerState(global_step=3, max_steps=12, epoch=0.25)
    progress.on_step_end(None, state, control)
    assert events.get_nowait()[0] == "phase"  # the first step: training has begun
    assert events.get_nowait() == ("train", 0.25)
    state.budget_spent = 0.5  # a budgeted run: the share of its budget spent
    progress.on_step_end(None, state, control)
    assert events.get_nowait() == ("train", 0.5)
    progress.on_log(None, state, control, logs={"tau": 2.0, "forget_accuracy": 0.5})
    assert events.get_nowait() == (
        "probe",
        {"tau": 2.0, "forget_accuracy": 0.5, "step": 3, "probe": 1, "epoch": 1},
    )
    cancel.set()
    for event in (progress.on_step_end, progress.on_prediction_step, progress.on_train_end):
        with pytest.raises(app.Cancelled):
            event(None, state, control)


def test_push_uses_the_users_token_once(app, tmp_path, monkeypatch, capsys):
    """Push a run's folder to the local Hub server with a token typed in the page; nothing keeps it."""
    import huggingface_hub
    from hub_server import TOKEN, HubServer
    from tiny import save_tiny, tiny_model

    folder = save_tiny(tiny_model("resnet"), tmp_path / "unlearned-model")
    run = app.RunResult(folder, folder, {}, None, None, None, [])
    with HubServer() as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # the server speaks LFS
        with pytest.raises(Exception, match="401"):
            app.push(run, "me/space-push", "hf_not_the_token")
        assert app.push(run, "me/space-push", f" {TOKEN} ").startswith("Pushed: ")
        assert {"config.json", "model.safetensors"} <= set(hub.files("me/space-push"))
        assert hub.state.repos[("model", "me/space-push")].private
    printed = capsys.readouterr()
    assert TOKEN not in printed.out + printed.err
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert huggingface_hub.get_token() is None  # nothing was saved as the default token
