"""Small random models of the image-classifier families people download from the Hub, each with the image
processor its Hub checkpoints ship (shortest-edge resizing and crop_pct, RGB only), for the tests and for
benchmarks/architectures.py. Nothing is downloaded: configs are built here, weights are random.

    >>> model, processor = build_family("regnet", ["a", "b"])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util

from ..errors import ArgumentError

# family -> what it brings to unlearning (the README's table lists these)
FAMILIES = {
    "convnext": "ConvNeXt: LayerNorm, drop-path, shortest-edge resize with crop_pct",
    "swin": "Swin: windowed attention, drop-path",
    "deit": "DeiT, class-token head",
    "deit-distilled": "DeiT with its distillation head (logits are the mean of both heads)",
    "beit": "BEiT: relative positions, mean pooling, drop-path",
    "dinov2": "DINOv2: layer scale, drop-path, BitImageProcessor",
    "efficientnet": "EfficientNet: BatchNorm, depthwise convolutions, dropout",
    "mobilenet_v2": "MobileNetV2: BatchNorm, depthwise convolutions",
    "regnet": "RegNet: grouped convolutions, squeeze-excitation",
    "timm": "a timm model through TimmWrapperForImageClassification (needs the `timm` extra)",
}
CNN_FAMILIES = ("convnext", "efficientnet", "mobilenet_v2", "regnet")


def timm_available() -> bool:
    """timm imports torchvision at import time, so both must be importable."""
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm  # noqa: F401
    except Exception:  # noqa: BLE001  (a torchvision that does not match torch fails in many ways)
        return False
    return True


def build_family(family: str, class_names: list[str], *, image_size: int = 32, width: int = 16, seed: int = 0):
    """`(model, image_processor)`: a randomly initialised classifier of `family` for `class_names` taking RGB
    images of `image_size` pixels, `width` channels wide in its first stage (16 gives models of a few
    thousand parameters; the benchmark uses wider ones)."""
    import torch
    import transformers as tf

    labels = {"id2label": dict(enumerate(class_names)), "label2id": {n: i for i, n in enumerate(class_names)}}
    size, w = image_size, width
    square = {"height": size, "width": size}
    vit = dict(
        image_size=size,
        patch_size=8,
        hidden_size=2 * w,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=4 * w,
    )
    if family == "convnext":
        config = tf.ConvNextConfig(num_stages=2, hidden_sizes=[w, 2 * w], depths=[1, 1], drop_path_rate=0.1, **labels)
        processor = tf.ConvNextImageProcessor(size={"shortest_edge": size}, crop_pct=0.875)
    elif family == "swin":
        config = tf.SwinConfig(
            image_size=size,
            patch_size=4,
            embed_dim=w,
            depths=[1, 1],
            num_heads=[1, 2],
            window_size=4,
            drop_path_rate=0.1,
            **labels,
        )
        processor = tf.ViTImageProcessor(size=square)
    elif family in ("deit", "deit-distilled"):
        head = "DeiTForImageClassificationWithTeacher" if family == "deit-distilled" else "DeiTForImageClassification"
        config = tf.DeiTConfig(**vit, hidden_dropout_prob=0.1, architectures=[head], **labels)
        processor = tf.DeiTImageProcessor(
            size={"height": size + size // 7, "width": size + size // 7}, crop_size=square
        )
    elif family == "beit":
        config = tf.BeitConfig(
            **vit, use_mean_pooling=True, use_relative_position_bias=True, drop_path_rate=0.1, **labels
        )
        processor = tf.BeitImageProcessor(size=square, do_center_crop=False)
    elif family == "dinov2":
        config = tf.Dinov2Config(
            **{k: v for k, v in vit.items() if k != "intermediate_size"}, mlp_ratio=2, drop_path_rate=0.1, **labels
        )
        processor = tf.BitImageProcessor(size={"shortest_edge": size}, crop_size=square)
    elif family == "efficientnet":
        from transformers.models.efficientnet.modeling_efficientnet import round_filters

        config = tf.EfficientNetConfig(
            image_size=size, width_coefficient=w / 64, depth_coefficient=0.1, dropout_rate=0.2, **labels
        )
        config.hidden_dim = round_filters(config, 1280)  # its last BatchNorm's width must match the top layer's
        processor = tf.EfficientNetImageProcessor(size=square)
    elif family == "mobilenet_v2":
        config = tf.MobileNetV2Config(image_size=size, depth_multiplier=w / 64, classifier_dropout_prob=0.2, **labels)
        processor = tf.MobileNetV2ImageProcessor(size={"shortest_edge": size}, crop_size=square)
    elif family == "regnet":
        config = tf.RegNetConfig(
            embedding_size=w // 2, hidden_sizes=[w // 2, w], depths=[1, 1], groups_width=w // 2, **labels
        )
        processor = tf.ConvNextImageProcessor(size={"shortest_edge": size}, crop_pct=0.875)
    elif family == "timm":
        if not timm_available():
            raise ImportError(
                "the timm family needs timm and a torchvision that imports: `pip install lotus-hf[timm]`"
            )
        data = {
            "input_size": [3, size, size],
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
        }
        config = tf.TimmWrapperConfig(
            architecture="test_vit", num_labels=len(class_names), pretrained_cfg=data, **labels
        )
        processor = tf.TimmWrapperImageProcessor(pretrained_cfg=config.pretrained_cfg)
    else:
        raise ArgumentError(f"`family` {family!r} is not one of {list(FAMILIES)}.")
    torch.manual_seed(seed)
    architecture = getattr(config, "architectures", None)
    if architecture:  # DeiT's two heads: transformers 5.24's from_config needs the class named
        model = getattr(tf, architecture[0])(config)
    else:
        model = tf.AutoModelForImageClassification.from_config(config)
    return model, processor
