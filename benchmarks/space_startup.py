"""How soon the Space's page is usable: start-up (the default model's data prepared once) and the first page
load in headless Chromium, up to the gallery of training images shown with the classes to pick; then each preset
request (the class the page opens on, and 100 training images of each class) from the Run click to its first line on
screen and to its verdict, one after the other, on a quiet machine.

Writes benchmarks/results/space-startup.{md,json}. Needs Debian's chromium (`make browser`).

    .venv/bin/python benchmarks/space_startup.py [--loads 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=3, help="page loads, each in a new browser context")
    parser.add_argument("--no-requests", action="store_true", help="time the page loads only")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from playwright.sync_api import sync_playwright

    spec = importlib.util.spec_from_file_location("space_app", ROOT / "spaces" / "app.py")
    app = importlib.util.module_from_spec(spec)
    sys.modules["space_app"] = app
    spec.loader.exec_module(app)

    start = time.perf_counter()
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    startup = time.perf_counter() - start
    loads = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
            for _ in range(args.loads):
                page = browser.new_context().new_page()
                start = time.perf_counter()
                page.goto(demo.local_url)
                page.locator("#pick-gallery img").first.wait_for(timeout=120_000)
                loads.append(time.perf_counter() - start)
                page.context.close()
            requests = [] if args.no_requests else [time_request(browser, demo, app, m) for m in ("classes", "preset")]
            browser.close()
    finally:
        demo.close()
    result = {
        "command": "python benchmarks/space_startup.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "date": time.ctime(),
        "startup_seconds": startup,
        "page_load_seconds": loads,
        "requests": requests,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "space-startup.json").write_text(json.dumps(result, indent=2) + "\n")
    from lotus_hf.evaluation import markdown_table

    table = markdown_table(["load", "seconds"], [[str(i), f"{s:.2f}"] for i, s in enumerate(loads, 1)])
    (RESULTS / "space-startup.md").write_text(
        f"# The Space's first page: how soon it is usable\n\nCommand: `{result['command']}` ({result['date']}).\n\n"
        f"Start-up (the app built, the bundled ResNet and Fashion-MNIST prepared once, the server started): "
        f"{startup:.1f} s.\n\nEach page load in a new browser context, from `goto` until the gallery of training "
        f"images is shown (the classes to pick come with it):\n\n{table}\n"
        + (
            "\nEach preset request with no other click, from the Run click: its first line on screen, and its "
            "verdict (the model's default method at 10% of a retraining, evaluation and verification included):\n\n"
            + markdown_table(
                ["request", "first line (s)", "verdict shown (s)", "verdict", "cost"],
                [
                    [
                        r["request"],
                        f"{r['first_line_seconds']:.1f}",
                        f"{r['verdict_seconds']:.1f}",
                        r["verdict"],
                        r["cost"],
                    ]
                    for r in requests
                ],
            )
            + "\n"
            if requests
            else ""
        )
    )
    print((RESULTS / "space-startup.md").read_text())


def time_request(browser, demo, app, mode: str) -> dict:
    """One preset request through the page: seconds to its first line and to its verdict, and what it said."""
    import re

    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
    page.goto(demo.local_url)
    page.locator("#pick-gallery img").first.wait_for(timeout=120_000)
    preset = f"{app.PRESET_PER_CLASS} training images of each class"
    if mode == "preset":
        page.get_by_label(preset).check()
    status = page.locator("#status textarea")
    start = time.perf_counter()
    page.locator("#run").click()
    expect(status).to_have_value(re.compile("Forgetting"), timeout=120_000)
    first = time.perf_counter() - start
    expect(status).to_have_value(re.compile("done: "), timeout=900_000)
    done = time.perf_counter() - start
    text = status.input_value()
    verdict = text.rsplit("done: ", 1)[1].split()[0]
    cost = re.search(r"cost ([0-9.]+% of a retraining)", page.locator("#verdict").inner_text())
    page.context.close()
    return {
        "request": "Sandal (a class)" if mode == "classes" else preset,
        "first_line_seconds": first,
        "verdict_seconds": done,
        "verdict": verdict,
        "cost": cost.group(1) if cost else "-",
    }


if __name__ == "__main__":
    main()
