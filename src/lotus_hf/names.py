"""How lotus-hf reads a name: `ORG/NAME@REVISION` (parsed here and nowhere else), whether it names a Hub repo,
and the Hub id of a data set name."""

from __future__ import annotations

from pathlib import Path

FASHION_MNIST_IDS = ("fashion_mnist", "fashion-mnist", "zalando-datasets/fashion_mnist")
FASHION_MNIST_HUB_ID = "zalando-datasets/fashion_mnist"


def split_revision(name: str) -> tuple[str, str | None]:
    """`ORG/NAME@REV` -> `("ORG/NAME", "REV")`; a name without `@` (or an existing path) has no revision.

    >>> split_revision("me/model@v1"), split_revision("fashion-mnist-resnet")
    (('me/model', 'v1'), ('fashion-mnist-resnet', None))
    """
    if "@" in name and not Path(name).exists():
        bare, revision = name.rsplit("@", 1)
        return bare, revision
    return name, None


def hub_id(name: str | None) -> str | None:
    """`name` without its `@revision` when it names a Hub repo (`ORG/NAME`), else None (a bundled name or
    a local path).

    >>> hub_id("me/tiny-vit@main"), hub_id("fashion-mnist-resnet"), hub_id("./runs/model")
    ('me/tiny-vit', None, None)
    """
    if not name:
        return None
    bare = split_revision(name)[0]
    if bare.count("/") != 1 or bare.startswith((".", "/", "~")) or Path(bare).exists():
        return None
    return bare


def dataset_id(name: str | None) -> str | None:
    """The Hub id of a data set name: `fashion_mnist` (read from the Debian package when installed) is
    zalando-datasets/fashion_mnist."""
    return FASHION_MNIST_HUB_ID if name in FASHION_MNIST_IDS else name
