"""Where `compare` and `report` get the originals: the commands load them and hand them to the plotting code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots.compare import CompareError


def find_original(dataset: str, image: str, preprocess: str | None, original: str | Path | None = None,
                  data_root: str | Path | None = None) -> np.ndarray:
    """The original as the codecs saw it: ``original`` (a file, or a folder holding ``<image>.*``) or the
    dataset's own copy through :mod:`cdc_bench.datasets`, with the row's preprocessing applied."""
    from ..datasets.images import ImageReadError, load_image

    path: Path | None = None
    if original is not None:
        original = Path(original)
        if original.is_dir():
            hits = sorted(p for p in original.iterdir() if p.stem == image)
            if not hits:
                raise CompareError(f"no file named {image}.* in {original}")
            path = hits[0]
        elif original.is_file():
            path = original
        else:
            raise CompareError(f"--original {original}: no such file or folder")
    else:
        try:
            from ..datasets import get_dataset

            items = {item.name: item.path for item in get_dataset(dataset, data_root).images()}
            path = Path(items[image]) if image in items else None
        except Exception as err:  # any failure here has the same fix, given below
            raise CompareError(f"cannot find the original of {dataset}/{image} ({err}); pass --original "
                               "with the image file or its folder") from None
        if path is None:
            raise CompareError(f"dataset {dataset} has no image {image}; pass --original")
    try:
        return load_image(path, preprocess)[0]
    except (ImageReadError, OSError, ValueError) as err:
        raise CompareError(f"cannot read original {path}: {err}") from None
