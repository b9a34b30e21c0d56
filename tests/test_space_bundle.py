"""`make space` (scripts/build_space.py): a folder deployable as is to a Gradio Space, checked on its own
(fast) and installed into a fresh virtual environment from the public index, then served (slow)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # packaging: pip builds and installs the Space's bundle: `make test-slow`

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from build_space import build_space  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return build_space(tmp_path_factory.mktemp("space") / "space")


def test_the_bundle_holds_the_app_its_card_the_package_and_requirements_from_the_index(bundle):
    names = {p.name for p in bundle.iterdir()}
    assert names == {"app.py", "README.md", "screenshots", "requirements.txt", "lotus_hf"}
    card = (bundle / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    lines = [line.strip() for line in (bundle / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    # A Space installs requirements.txt before it copies the app's files: every line is a package of the public
    # index (lotus-hf's own dependencies among them), none a file of the folder
    assert not [r for r in requirements if "lotus" in r or r.startswith((".", "/", "-", "file:"))]
    assert {"gradio>=6", "pandas", "torch>=2.2", "transformers>=5.0", "datasets>=3.0"} <= set(requirements)
    package = {str(p.relative_to(bundle)) for p in (bundle / "lotus_hf").rglob("*") if p.is_file()}
    assert {
        "lotus_hf/__init__.py",
        "lotus_hf/templates/model_card.md",
        "lotus_hf/research/original_card.md",
        "lotus_hf/bundled/fashion-mnist-resnet/model.safetensors",
    } <= package
    assert not [f for f in package if f.endswith((".bin", ".pt", ".pkl", ".pyc"))]


def test_a_folder_that_is_not_a_space_build_is_never_replaced(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not a Space folder built before"):
        build_space(taken)
    assert (taken / "mine.txt").read_text() == "keep"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_the_bundle_installs_into_a_fresh_environment_and_serves_the_app(bundle, tmp_path):
    """A new virtual environment (no lotus-hf, no repository on the path): `pip install -r requirements.txt`
    with nothing else beside it, then `python app.py` in the folder, as a Space runs it; a Gradio client loads
    the bundled model's classes through the app's API. torch is installed first, pinned to this machine's CPU
    build (the Makefile does the same; a Space takes torch from the index)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # as a Space builds: requirements.txt alone in a folder, installed before the app's files are there
    alone = tmp_path / "build"
    alone.mkdir()
    shutil.copy(bundle / "requirements.txt", alone)
    for packages in (["torch==2.13.0"], ["-r", "requirements.txt"]):
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *packages], cwd=alone, env=env, check=True, timeout=1200
        )
    where = subprocess.run(
        [str(python), "-c", "import lotus_hf; print(lotus_hf.__file__)"],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(bundle)) and str(ROOT) not in where  # the folder's package, not this checkout
    port = _free_port()
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
    )
    server = subprocess.Popen(
        [str(python), "app.py"], cwd=bundle, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the app did not answer within 300 s"
            time.sleep(1)
        from gradio_client import Client

        client = Client(url, verbose=False)
        # the page's "Load" handler: the bundled model's classes and the gallery (session state stays server-side)
        # (and the picked images' text, emptied; the session states stay server-side)
        classes, gallery, picked = client.predict("Fashion-MNIST ResNet (bundled)", "", "", api_name="/choices_for")
        assert picked == ""
        names = [c[0] if isinstance(c, (list, tuple)) else c for c in classes["choices"]]
        assert names[:2] == ["T-shirt/top", "Trouser"] and len(names) == 10
        assert len(gallery) == 48
    finally:
        server.terminate()
        server.wait(timeout=30)
