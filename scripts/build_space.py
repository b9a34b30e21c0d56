"""Write a folder deployable as is to a Hugging Face Gradio Space: `make space` (default dist/space).

It holds the Space's app, card (README.md with the Spaces YAML) and screenshots from spaces/, the lotus-hf
wheel built from this checkout, and a requirements.txt that resolves from the public index plus that wheel.
Push it with `huggingface-cli upload ORG/SPACE dist/space --repo-type space` (or `hf upload`).

    python scripts/build_space.py [OUTPUT_DIR]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE_FILES = ("app.py", "README.md", "screenshots")


def build_space(output_dir: Path) -> Path:
    """Build the Space folder at `output_dir`, atomically. An earlier build there is replaced whole; any other
    non-empty folder is refused."""
    output_dir = output_dir.resolve()
    if output_dir.exists() and any(output_dir.iterdir()) and not list(output_dir.glob("lotus_hf-*.whl")):
        raise SystemExit(f"{output_dir} exists and is not a Space folder built before: pass a new folder.")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.incomplete-", dir=output_dir.parent))
    try:
        for name in SPACE_FILES:
            source = ROOT / "spaces" / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, staging / name)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(staging),
                        str(ROOT)], check=True)  # fmt: skip
        wheel = next(staging.glob("lotus_hf-*.whl"))
        requirements = (ROOT / "spaces" / "requirements.txt").read_text()
        (staging / "requirements.txt").write_text(requirements + f"./{wheel.name}\n")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


if __name__ == "__main__":
    folder = build_space(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist" / "space"))
    print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
