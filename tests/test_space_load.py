"""The Space under load, served by `python spaces/app.py` as a Space runs it: 8 sessions at once through
`gradio_client`, each with its own results; past the queue's limit a clear refusal; each session's files gone
when it ends; a token typed for a push never in the app's output. The model and data set come by Hub id from
tests/hub_server.py (tiny ones, so that 8 runs take seconds)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from hub_server import TOKEN, HubServer

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """The app in its own process, reading the tiny model and data set from a local Hub."""
    with HubServer() as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_TOKEN": TOKEN,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(tmp_path_factory.mktemp("hf_home")),
            "PYTHONPATH": str(TESTS),
        }
        seed = "from tiny import *\nm = tiny_model('resnet'); m.push_to_hub('me/tiny-resnet')\n"
        seed += "tiny_processor().push_to_hub('me/tiny-resnet'); digits_image_dataset().push_to_hub('me/tiny-digits')"
        subprocess.run([sys.executable, "-c", seed], env=env, check=True, capture_output=True, timeout=300)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        tmp = tmp_path_factory.mktemp("app-tmp")
        app_env = {k: v for k, v in env.items() if k not in ("HF_TOKEN", "PYTHONPATH")}  # the user brings a token
        app_env.update(
            GRADIO_SERVER_NAME="127.0.0.1",
            GRADIO_SERVER_PORT=str(port),
            GRADIO_ANALYTICS_ENABLED="False",
            TMPDIR=str(tmp),
        )
        log = tmp_path_factory.mktemp("app-log") / "app.log"
        with log.open("w") as output:
            server = subprocess.Popen(
                [sys.executable, "app.py"], cwd=ROOT / "spaces", env=app_env, stdout=output, stderr=subprocess.STDOUT
            )
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 300
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                try:
                    with urllib.request.urlopen(url, timeout=5):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "the app did not answer within 300 s"
                    time.sleep(0.5)
            try:
                yield {"url": url, "tmp": tmp, "log": log, "hub": hub}
            finally:
                server.terminate()
                server.wait(timeout=30)


def _run_folders(space) -> list[Path]:
    return sorted(space["tmp"].glob("lotus-space-*"))


@pytest.mark.slow
def test_eight_sessions_at_once_each_get_their_own_results_and_more_are_told_the_queue_is_full(space, tmp_path):
    from gradio_client import Client

    classes = [f"digit-{i}" for i in range(8)]
    clients = [Client(space["url"], verbose=False, download_files=str(tmp_path / f"s{i}")) for i in range(12)]
    for client in clients:  # as the page does when it loads: the Hub model's classes become the choices
        client.predict("Hub", "me/tiny-resnet", "me/tiny-digits", api_name="/choices_for")
    jobs = [
        client.submit("Hub", "me/tiny-resnet", "me/tiny-digits", "classes", [cls], 10, api_name="/run")
        for client, cls in zip(clients, classes, strict=False)
    ]
    deadline = time.monotonic() + 60
    while sum(job.status().code.name in ("IN_QUEUE", "PROCESSING", "ITERATING", "FINISHED") for job in jobs) < 8:
        assert time.monotonic() < deadline, [job.status().code.name for job in jobs]
        time.sleep(0.05)
    refused = []

    def submit_more(client):  # the queue now holds 1 run and 7 waiting: more are refused at once
        try:
            client.predict("Hub", "me/tiny-resnet", "me/tiny-digits", "classes", ["digit-9"], 10, api_name="/run")
        except Exception as error:  # noqa: BLE001  (gradio_client's QueueError)
            refused.append(str(error))

    extra = [threading.Thread(target=submit_more, args=(client,)) for client in clients[8:]]
    for thread in extra:
        thread.start()
    for thread in extra:
        thread.join(timeout=120)
    assert refused and all("Queue is full" in message for message in refused), space["log"].read_text()[-4000:]

    for job, cls in zip(jobs, classes, strict=True):
        status, verdict, _, table, *_, downloads = job.result(timeout=600)
        assert f"classes={cls}" in status and "done: " in status and verdict
        report = next(Path(f) for f in downloads if str(f).endswith("report.json"))
        assert json.loads(report.read_text())["forget"]["request"] == f"classes={cls}"  # its own, no other's
    assert len(_run_folders(space)) == 8  # one folder per session's run

    for client in clients:
        client.close()  # the sessions end: their folders go
    deadline = time.monotonic() + 60
    while _run_folders(space):
        assert time.monotonic() < deadline, _run_folders(space)
        time.sleep(0.2)


@pytest.mark.slow
def test_a_pushed_token_never_reaches_the_apps_output(space, tmp_path):
    from gradio_client import Client

    client = Client(space["url"], verbose=False, download_files=str(tmp_path))
    client.predict("Hub", "me/tiny-resnet", "me/tiny-digits", api_name="/choices_for")
    client.predict("Hub", "me/tiny-resnet", "me/tiny-digits", "classes", ["digit-3"], 10, api_name="/run")
    pushed = client.predict("me/space-load-push", TOKEN, True, api_name="/push_click")
    assert pushed.startswith("Pushed: ") and "me/space-load-push" in space["hub"].repo_ids()
    with pytest.raises(Exception, match="401"):  # a wrong token: the Hub's refusal, without the token
        client.predict("me/space-load-push", "hf_not_the_token", True, api_name="/push_click")
    client.close()
    time.sleep(1)
    log = space["log"].read_text()
    assert TOKEN not in log and "hf_not_the_token" not in log
    assert not [p for p in space["tmp"].rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
