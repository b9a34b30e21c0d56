"""Images in: preprocess a data set's images once with the model's image processor (converting grey and colour
to what it takes) into `PixelDataset`, one tensor of pixels and one of labels."""

from __future__ import annotations

import io

import numpy as np
import torch

from .errors import DataError


class PixelDataset(torch.utils.data.Dataset):
    """Preprocessed images held as one tensor, so no image is decoded or transformed twice.

    Items are dicts with `pixel_values` and `labels`, the batch contract of the trainer and evaluation.
    """

    def __init__(self, pixel_values: torch.Tensor, labels: torch.Tensor, converted: str | None = None):
        if len(pixel_values) != len(labels):
            raise ValueError(f"`pixel_values` has {len(pixel_values)} rows but `labels` has {len(labels)}.")
        self.pixel_values = pixel_values
        self.labels = labels.long()
        self.converted = converted  # what `preprocess` did to fit the images to the processor, if anything

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}

    def select(self, indices) -> PixelDataset:
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return PixelDataset(self.pixel_values[index], self.labels[index], self.converted)


def processor_channels(image_processor) -> int | None:
    """How many colour channels `image_processor` normalises (1 or 3), read off its mean; None if it does not say."""
    mean = getattr(image_processor, "image_mean", None)
    if mean is None:  # transformers' wrapper of timm models keeps timm's data config
        mean = (getattr(image_processor, "data_config", None) or {}).get("mean")
    if isinstance(mean, (list, tuple)) and len(mean) in (1, 3):
        return len(mean)
    return None


_MODES = {1: "L", 3: "RGB"}


_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit, 32-bit and float grey images


def _pil_to(image, mode: str):
    """A PIL image in `mode` ("L" or "RGB"): 16-bit and float grey images rescaled to 8 bits first (PIL clips
    them), transparency composited onto white (as transformers' `convert_to_rgb` does)."""
    from PIL import Image

    if image.mode in _DEEP_MODES:
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        top = (
            65535.0
            if image.mode.startswith("I;16") or peak > 255
            else 1.0
            if image.mode == "F" and peak <= 1
            else 255.0
        )
        image = Image.fromarray(np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8), "L")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(mode)


def _to_channels(images: list, channels: int | None) -> tuple[list, set[str]]:
    """Images converted to `channels` colour channels where they have another number (grey images for an RGB
    model, say), and the modes they came in, for the report. PIL images of any mode, and uint8 arrays (H, W, C)
    or channel-first (C, H, W)."""
    from PIL import Image

    if channels is None:
        return images, set()
    mode, converted, found = _MODES[channels], [], set()
    for image in images:
        if isinstance(image, np.ndarray):
            if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
                image = np.moveaxis(image, 0, -1)  # channel-first -> channel-last
            if image.shape[-1] != channels:
                found.add({1: "L", 3: "RGB", 4: "RGBA"}.get(image.shape[-1], f"{image.shape[-1]}-channel"))
                if image.shape[-1] == 1:  # grey -> RGB: the same value in each channel
                    image = np.repeat(image, channels, axis=-1)
                elif image.shape[-1] in (3, 4):
                    image = np.asarray(_pil_to(Image.fromarray(image), mode))
                    image = image[..., None] if image.ndim == 2 else image
        elif image.mode != mode:
            found.add(image.mode)
            image = _pil_to(image, mode)
        converted.append(image)
    return converted, found


def preprocess(dataset, image_processor, batch_size: int = 2048) -> PixelDataset:
    """Run `image_processor` over a `datasets.Dataset` (columns `image`, `label`) once, in batches.

    Images whose number of colour channels differs from the processor's (grey images for a model of RGB images,
    or the other way round) are converted to it first; the result's `converted` then says so."""
    import datasets
    from PIL import UnidentifiedImageError

    if len(dataset) == 0:
        raise DataError("a split of the data set is empty: pass a data set with images in its train and test splits.")
    is_array = not isinstance(dataset.features["image"], datasets.Image)
    source = dataset.with_format("numpy", columns=["image"]) if is_array else dataset
    chunks, modes, channels = [], set(), processor_channels(image_processor)
    for start in range(0, len(dataset), batch_size):
        try:
            images = source[start : start + batch_size]["image"]
        except (UnidentifiedImageError, OSError, SyntaxError) as error:  # PIL's errors for unreadable files
            raise DataError(_unreadable(dataset, range(start, min(start + batch_size, len(dataset))), error)) from None
        if is_array:  # (B, H, W) or (B, H, W, C) uint8: give grey images an explicit channel axis
            images = images[..., None] if images.ndim == 3 else images
            images = list(images.astype(np.uint8, copy=False))
        images, found = _to_channels(list(images), channels)
        modes |= found
        chunks.append(image_processor(images, return_tensors="pt")["pixel_values"])
    labels = torch.as_tensor(np.asarray(dataset["label"]), dtype=torch.long)
    converted = None
    if modes:
        converted = (
            f"images of mode {', '.join(sorted(modes))} were converted to {_MODES[channels]}, the "
            f"{channels} channel{'s' if channels > 1 else ''} the model's image processor takes"
        )
    return PixelDataset(torch.cat(chunks), labels, converted)


def _unreadable(dataset, rows: range, error: Exception) -> str:
    """Which image of `rows` cannot be read, and what to do: the file's name when the data set has one."""
    import datasets
    from PIL import Image

    raw = dataset.cast_column("image", datasets.Image(decode=False))
    for row in rows:
        cell = raw[row]["image"]
        try:
            with Image.open(cell["path"] if cell.get("bytes") is None else io.BytesIO(cell["bytes"])) as image:
                image.load()
        except Exception as reason:  # noqa: BLE001  (PIL raises many kinds; each names the broken file here)
            where = cell.get("path") or f"row {row}"
            return (
                f"the image {where!r} cannot be read ({type(reason).__name__}: {reason}): remove it from the "
                "data set or replace it with a valid image."
            )
    return f"an image in rows {rows.start}-{rows.stop - 1} cannot be read ({type(error).__name__}: {error})."
