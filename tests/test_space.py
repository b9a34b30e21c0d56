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


def test_the_form_names_the_method_and_shows_only_its_controls(app):
    from lotus_hf.methods import method_config
    from lotus_hf.requests import ForgetRequest

    for model in app.BUNDLED.values():  # each request starts at the model's own tuned settings, none capped
        classes = app.method_controls("classes", model)
        belief = method_config("belief_relabel", model, ForgetRequest.classes(["Bag"]), output_dir="unused",
                               use_cpu=True)  # fmt: skip
        assert (
            classes["method"] == "belief_relabel"
            and classes["alpha"] is None
            and "Belief Relabel" in classes["name"]
        )
        assert classes["epochs"] == belief.num_train_epochs <= app.MAX_EPOCHS
        samples = app.method_controls("samples", model)
        lotus = method_config("lotus", model, output_dir="unused", use_cpu=True)
        assert samples["method"] == "lotus" and samples["alpha"] == lotus.alpha
        assert samples["epochs"] == lotus.num_train_epochs <= app.MAX_EPOCHS


def test_gallery_picks(app):
    shown = app.gallery_indices(60_000)
    assert len(shown) == app.GALLERY_SIZE and shown == app.gallery_indices(60_000)  # the same for everyone
    picked = app.add_pick(shown, [], 3)
    picked = app.add_pick(shown, picked, 0)
    assert app.add_pick(shown, picked, 3) == sorted([shown[0], shown[3]])
    assert app.make_request("samples", [], 10, picked).value == tuple(sorted([shown[0], shown[3]]))


def test_tables_and_histograms_by_hand(app):
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    table = app.per_class_accuracy(logits, labels, ["a", "b"])
    assert table["accuracy"].tolist() == [1.0, 0.5]
    probs = {"forget": np.array([[1.0, 0.0], [0.5, 0.5]]), "test": np.array([[0.5, 0.5], [0.5, 0.5]])}
    histogram = app.entropy_histogram(probs, bins=2)
    shares = histogram.set_index(["split", "entropy"])["share"]
    assert shares["forget"].tolist() == [0.5, 0.5] and shares["test"].tolist() == [0.0, 1.0]
    assert app.top_predictions(torch.tensor([0.0, 0.0, 10.0]), ["x", "y", "z"], k=1) == pytest.approx(
        {"z": 1.0}, abs=1e-3
    )
    report = {"rows": {"original": {k: 0.123456 for k in ("acc_forget", "acc_retain", "acc_test", "mia", "rf_jsd",
              "rf_jsd_reference")}, "unlearned": {k: 0.5 for k in ("acc_forget", "acc_retain", "acc_test", "mia",
              "rf_jsd", "rf_jsd_reference")}}, "unlearning_seconds": 12.34}  # fmt: skip
    table = app.metrics_table(report)
    assert table.loc[0, "acc_forget"] == 0.1235 and table.loc[1, "seconds"] == 12.3


def test_compare_and_push_need_a_run(app):
    with pytest.raises(app.SpaceError, match="Run the unlearning first"):
        app.compare_image(None, None)
    with pytest.raises(app.SpaceError, match="Run the unlearning first"):
        app.push(None, "me/x", "token")


# ------------------------------------------------------------------------------------------- browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]  # fmt: skip


def _row_numbers(page, name: str) -> list[float]:
    """The numbers in row `name` of the metrics table (Gradio 6 renders it as an ARIA grid)."""
    for row in page.locator("#metrics [role=row]").all():
        cells = [c.text_content().strip() for c in row.locator("[role=gridcell]").all()]
        if cells and cells[0] == name:
            return [float(c) for c in cells[1:] if c]
    raise AssertionError(f"no row {name!r} in the metrics table")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_two_browser_sessions_unlearn_compare_and_download(app, tmp_path):
    """Headless Chromium, two sessions at once: each forgets its own class from the bundled ResNet; each page
    shows the numbers of its own report; an uploaded image gets both models' predictions."""
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = Path(os.environ.get("LOTUS_HF_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    prepared_at_start = app.prepared.cache_info()
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            pages = {}
            for cls in ("Sandal", "Trouser"):
                page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
                page.goto(demo.local_url)
                page.get_by_label("Fashion-MNIST ResNet (bundled)").check()
                page.locator("#pick-gallery img").first.wait_for(
                    timeout=120_000
                )  # classes and gallery loaded
                # the page load read what start-up prepared, and prepared nothing itself
                assert app.prepared.cache_info().misses == prepared_at_start.misses
                page.locator("#classes input").fill(cls)
                page.keyboard.press("Enter")
                page.keyboard.press("Escape")
                page.locator("#epochs input[type=number]").fill("1")
                page.locator("#epochs input[type=number]").press("Enter")
                pages[cls] = page
            pages["Sandal"].screenshot(path=str(shots / "1-choose.png"))
            for page in pages.values():
                page.locator("#run").click()
            for page in pages.values():
                sync_api.expect(page.locator("#status textarea")).to_have_value(
                    re.compile("done in"), timeout=400_000
                )
            for cls, other in (("Sandal", "Trouser"), ("Trouser", "Sandal")):
                page = pages[cls]
                status = page.locator("#status textarea").input_value()
                assert f"classes={cls}" in status and other not in status
                with page.expect_download() as download:
                    row = page.locator("#downloads tr.file", has=page.locator('td[aria-label="report.json"]'))
                    row.locator("td.download a").click()
                report = json.loads(Path(download.value.path()).read_text())
                assert report["forget"]["request"] == f"classes={cls}"
                expected = app.metrics_table(report)
                for name in ("original", "unlearned"):
                    row = expected[expected["model"] == name].iloc[0]
                    values = [float(v) for v in row.drop("model").dropna().tolist()]
                    assert _row_numbers(page, name) == pytest.approx(values, abs=1e-4), name
            page = pages["Sandal"]
            page.screenshot(path=str(shots / "2-results.png"), full_page=True)
            image = tmp_path / "sandal.png"
            from PIL import Image

            _, _, _, train_split, _, _ = app.prepared("fashion-mnist-resnet", "fashion_mnist")
            sandal = next(i for i in range(100) if train_split[i]["label"] == 5)
            Image.fromarray(np.asarray(train_split[sandal]["image"], dtype=np.uint8)).save(image)
            page.locator("#upload input[type=file]").set_input_files(str(image))
            page.locator("#pred-unlearned").get_by_text("%").first.wait_for(timeout=60_000)
            original_text = page.locator("#pred-original").inner_text()
            unlearned_text = page.locator("#pred-unlearned").inner_text()
            original_top = [line for line in original_text.splitlines() if line.strip()][1]
            unlearned_top = [line for line in unlearned_text.splitlines() if line.strip()][1]
            assert original_top == "Sandal", original_text  # the original knows this training image
            assert unlearned_top in app._bundled_classes() and unlearned_text != original_text
            page.locator("#upload").scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "3-compare.png"), full_page=True)
            browser.close()
    finally:
        demo.close()


def test_cancel_stops_the_sessions_training(app):
    """The Cancel button closes the run's generator, which sets the session's event; the callback then
    stops training at the next step."""
    import queue
    import threading

    from transformers import TrainerControl

    cancel, events = threading.Event(), queue.Queue()
    progress = app._Progress(events, cancel)
    control = TrainerControl()
    progress.on_step_end(None, None, control)
    assert not control.should_training_stop
    progress.on_log(None, None, control, logs={"tau": 2.0, "forget_accuracy": 0.5})
    assert events.get_nowait() == ("probe", {"tau": 2.0, "forget_accuracy": 0.5})
    cancel.set()
    progress.on_step_end(None, None, control)
    assert control.should_training_stop and control.should_epoch_stop


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
