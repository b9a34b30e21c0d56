"""Write scikit-learn's handwritten digits (1,797 grey 8x8 images, ten classes, shipped inside scikit-learn: no
network) as an image folder that `lotus-hf` reads like any data set: <output-dir>/{train,test}/<digit>/<index>.png.

    .venv/bin/python scripts/digits_folder.py --output-dir benchmarks/data/digits

The split is stratified, 70% training and 30% test, drawn with seed 0; the file names are the images' indices in
`sklearn.datasets.load_digits`, so a split can be traced back. The benchmark's second pretrained-regime model is
fine-tuned on it (docs/pretrained.md): a data set other than the one the bundled ViT was trained on.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from lotus_hf.saving import atomic_output_dir

TEST_SHARE = 0.3
SEED = 0


def write_digits(output_dir) -> dict[str, int]:
    """Write the folder; returns the number of images in each split."""
    digits = load_digits()
    pixels = np.clip(np.rint(digits.images * 255 / 16), 0, 255).astype(np.uint8)  # values 0-16 -> 0-255
    indices = np.arange(len(pixels))
    train, test = train_test_split(indices, test_size=TEST_SHARE, random_state=SEED, stratify=digits.target)
    with atomic_output_dir(output_dir) as staging:
        for split, chosen in (("train", train), ("test", test)):
            for i in sorted(chosen):
                folder = staging / split / str(digits.target[i])
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels[i], mode="L").save(folder / f"{i:04d}.png")
    return {"train": len(train), "test": len(test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True, help="a new folder for the image folder")
    args = parser.parse_args()
    counts = write_digits(args.output_dir)
    print(f"wrote {counts['train']} training and {counts['test']} test images to {args.output_dir}")


if __name__ == "__main__":
    main()
