"""Write a folder deployable as is to a Hugging Face Gradio Space: `make space` (default dist/space).

It holds the Space's app, card (README.md with the Spaces YAML) and screenshots from spaces/, the lotus-hf
package, unpacked next to `app.py` from the wheel built from this checkout (lotus-hf is on no package index),
and a requirements.txt of lotus-hf's dependencies and the app's, all from the public index. A Space installs
requirements.txt before it copies the app's files, so the requirements cannot name a file of the folder; the
app imports `lotus_hf` from the folder it runs in. Push it with `hf upload ORG/SPACE dist/space --repo-type space`.

    python scripts/build_space.py [OUTPUT_DIR]
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lotus_hf.saving import atomic_output_dir

ROOT = Path(__file__).resolve().parents[1]
SPACE_FILES = ("app.py", "README.md", "screenshots")


def build_space(output_dir: Path) -> Path:
    """Build the Space folder at `output_dir`, atomically. An earlier build there is replaced whole; any other
    non-empty folder is refused."""
    output_dir = output_dir.resolve()
    if output_dir.exists() and any(output_dir.iterdir()) and not (output_dir / "lotus_hf").is_dir():
        raise SystemExit(f"{output_dir} exists and is not a Space folder built before: pass a new folder.")
    with atomic_output_dir(output_dir, replace=True) as staging:
        for name in SPACE_FILES:
            source = ROOT / "spaces" / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, staging / name)
        with tempfile.TemporaryDirectory() as wheels:
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", wheels, str(ROOT)],
                check=True,
            )
            with zipfile.ZipFile(next(Path(wheels).glob("lotus_hf-*.whl"))) as wheel:
                metadata = email.message_from_bytes(wheel.read(_metadata_name(wheel)))
                wheel.extractall(staging, [n for n in wheel.namelist() if n.startswith("lotus_hf/")])
        needs = [r for r in metadata.get_all("Requires-Dist", []) if "extra ==" not in r]  # not the extras
        app_needs = (ROOT / "spaces" / "requirements.txt").read_text()
        (staging / "requirements.txt").write_text(
            app_needs
            + f"# lotus-hf {metadata['Version']}'s dependencies (the package itself is in lotus_hf/)\n"
            + "".join(f"{need}\n" for need in needs)
        )
    return output_dir


def _metadata_name(wheel: zipfile.ZipFile) -> str:
    return next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))


if __name__ == "__main__":
    folder = build_space(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist" / "space"))
    print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
