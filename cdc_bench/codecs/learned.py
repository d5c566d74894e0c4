"""The base of learned codecs (CDC, the CompressAI zoo, MS-ILLM/No-GAN, HiFiC and their kin): one ``weights``
option, one ``max_pixels`` check, one model cache, one image <-> tensor conversion.

``weights=pretrained`` uses the published weights (``released``, CDC's older word, is accepted as an alias and
stored as ``pretrained``); ``weights=random`` builds the same architecture with seeded random weights, for tests
and speed work: every table, figure and report marks such rows. A decoder never downloads weights.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import BitstreamError, CodecError
from .base import Availability, Codec, Option

#: Seed of random-weights models, so an encoder and a decoder in another process build the same network.
RANDOM_SEED = 0
#: Default largest image a learned codec encodes or accepts from a header (a 4K UHD frame, 3840 x 2160, fits);
#: bigger sizes take minutes and many GB on these networks, so a header claiming more is rejected unread.
MAX_PIXELS = 1 << 23

WEIGHTS_OPTION = Option("pretrained", "pretrained (published weights) or random (seeded random init, for tests; "
                                      "numbers are meaningless)", choices=("pretrained", "random"),
                        aliases={"released": "pretrained"})
MAX_PIXELS_OPTION = Option(MAX_PIXELS, "largest image (H x W pixels) to encode, or to accept from a bitstream "
                                       "header before decoding it", range=(1, None))


def image_to_tensor(image: np.ndarray, device: Any = "cpu", dtype: Any = None):
    """An ``H x W x 3`` uint8 image as a ``1 x 3 x H x W`` float tensor in [0, 1] (the one conversion)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=dtype or torch.float32).div_(255.0)


def tensor_to_image(tensor) -> np.ndarray:
    """A ``1 x 3 x H x W`` (or ``3 x H x W``) tensor in [0, 1] as an ``H x W x 3`` uint8 image, rounded."""
    out = tensor.detach().float().clamp(0, 1).mul(255).round().to("cpu")
    out = out[0] if out.dim() == 4 else out
    return out.permute(1, 2, 0).to(dtype=__import__("torch").uint8).numpy().copy()


class LearnedCodec(Codec):
    """A codec running a CompressAI-based network: one network kept loaded, weights never fetched by a decoder."""

    def __init__(self, options: dict[str, Any] | None = None, device: str = "cpu"):
        super().__init__(options, device)
        self._loaded: tuple[Any, Any] | None = None  # (key, network): the model cache, not per-call state

    @classmethod
    def availability(cls) -> Availability:
        try:
            import compressai  # noqa: F401
        except ImportError as err:
            return Availability(False, f"compressai cannot be imported ({err})", 'pip install "compressai==1.2.8"')
        return Availability(True)

    def check_size(self, h: int, w: int, error: type[CodecError] = BitstreamError) -> None:
        """Refuse sizes beyond ``max_pixels`` (a corrupt or hostile header must not allocate gigabytes)."""
        if h < 1 or w < 1 or h * w > self.options["max_pixels"]:
            raise error(f"{self.name}: image size {h}x{w} is {'invalid' if min(h, w) < 1 else 'too large'} "
                        f"(max_pixels={self.options['max_pixels']}; raise it with "
                        f"-o {self.name}.max_pixels=N)")

    def check_flag(self, option: str, found: str) -> None:
        """A header flag must equal this decoder's option: the same bytes under other weights decode to garbage."""
        if found != self.options[option]:
            raise BitstreamError(f"{self.name}: bitstream was made with {option}={found}, decoder has "
                                 f"{option}={self.options[option]}")

    def cached_model(self, key: Any, build: Callable[[], Any]):
        """The network for ``key``, built by ``build`` when another one is loaded (which is freed first)."""
        if self._loaded is not None and self._loaded[0] == key:
            return self._loaded[1]
        self._loaded = None
        net = build().eval().to(self.device)
        self._loaded = (key, net)
        return net


