"""The base of learned codecs (CDC, the CompressAI zoo, MS-ILLM/No-GAN, HiFiC and their kin): one ``weights``
option, one size check (``max_pixels``, then the memory a decode of that size needs), one model cache, one
image <-> tensor conversion.

The memory gate: each codec declares ``decode_bytes_per_pixel`` (peak resident bytes per decoded pixel, measured
by ``benchmarks/decode_memory.py`` into ``results/decode_memory.json`` and rounded up with a margin) and
``decode_model_bytes`` (the loaded network). A size whose estimate exceeds :func:`available_memory` is refused
before anything is allocated, so a 54-byte header claiming 8192 x 8192 costs nothing.

``weights=pretrained`` uses the published weights (``released``, CDC's older word, is accepted as an alias and
stored as ``pretrained``); ``weights=random`` builds the same architecture with seeded random weights, for tests
and speed work: every table, figure and report marks such rows. A decoder never downloads weights.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import BitstreamError, CodecError, ConfigError
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
#: A cgroup limit at or above this is "no limit" (cgroup v1 writes 2^63 rounded down to a page).
_NO_LIMIT = 1 << 60
GIB = float(1 << 30)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2's no limit) -> None


def _inactive_file(stat: Path, key: str) -> int:
    """Reclaimable page cache in a cgroup's memory.stat (counted in its usage, but not in the way of a decode)."""
    try:
        for line in stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_room(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Room under this process's cgroup memory limit (v2 ``memory.max``, else v1 ``memory.limit_in_bytes``)."""
    for limit_file, usage_file, stat_key in (("memory.max", "memory.current", "inactive_file"),
                                             ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
                                              "total_inactive_file")):
        limit = _read_int(root / limit_file)
        usage = _read_int(root / usage_file)
        if limit is not None and usage is not None and limit < _NO_LIMIT:
            stat = (root / limit_file).parent / "memory.stat"
            return max(0, limit - usage + _inactive_file(stat, stat_key))
    return None


MEMORY_CHECK_ENV = "CDC_BENCH_MEMORY_CHECK"


def memory_check_enabled() -> bool:
    """``$CDC_BENCH_MEMORY_CHECK``: ``on`` (default) refuses a decode that would not fit; ``off`` decodes anyway
    (a machine with swap, or an estimate too cautious for it); anything else is a :class:`ConfigError`."""
    text = os.environ.get(MEMORY_CHECK_ENV, "").strip().lower()
    if text in ("", "on", "1", "true", "yes"):
        return True
    if text in ("off", "0", "false", "no"):
        return False
    raise ConfigError(f"{MEMORY_CHECK_ENV}={text!r}: give on (refuse a decode that would not fit in memory) or off")


def available_memory() -> tuple[int, str]:
    """Bytes this process can still allocate, and what bounds it: the least of the system's available memory
    (psutil), room under a cgroup memory limit, and room under this process's address-space rlimit."""
    import psutil

    found = [(int(psutil.virtual_memory().available), "available system memory")]
    room = _cgroup_room()
    if room is not None:
        found.append((room, "room under the cgroup memory limit"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        found.append((max(0, soft - psutil.Process(os.getpid()).memory_info().vms),
                      "room under the address-space limit (RLIMIT_AS)"))
    return min(found)


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

    #: peak resident bytes per decoded pixel on the CPU, measured (results/decode_memory.json) and rounded up;
    #: None: not measured for this codec, only ``max_pixels`` bounds a header. Subclasses whose cost depends on
    #: their options override :meth:`decode_cost`.
    decode_bytes_per_pixel: float | None = None
    #: resident bytes the loaded network adds (counted while no network is loaded yet)
    decode_model_bytes: int = 0

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

    def check_size(self, h: int, w: int, error: type[CodecError] = BitstreamError, images: int = 1) -> None:
        """Refuse sizes beyond ``max_pixels``, then sizes whose decode would not fit in the memory available
        (a corrupt or hostile header must not allocate gigabytes). ``images``: a batch decoded at once."""
        if h < 1 or w < 1 or h * w > self.options["max_pixels"]:
            raise error(f"{self.name}: image size {h}x{w} is {'invalid' if min(h, w) < 1 else 'too large'} "
                        f"(max_pixels={self.options['max_pixels']}; raise it with "
                        f"-o {self.name}.max_pixels=N)")
        self.check_memory(h, w, error, images)

    def decode_cost(self) -> tuple[float | None, int]:
        """(bytes per decoded pixel, bytes of the loaded network) under this codec's options."""
        return self.decode_bytes_per_pixel, self.decode_model_bytes

    def check_memory(self, h: int, w: int, error: type[CodecError] = BitstreamError, images: int = 1) -> None:
        """Refuse a size whose decode needs more memory than this process has (device="cpu"; a CUDA decode
        holds its tensors on the GPU, which this estimate does not describe)."""
        per_pixel, model_bytes = self.decode_cost()
        if per_pixel is None or not str(self.device).startswith("cpu") or not memory_check_enabled():
            return
        pixels = h * w * images
        need = pixels * per_pixel + (model_bytes if self._loaded is None else 0)
        room, source = available_memory()
        if need > room:
            fits = max(0, int((room - (model_bytes if self._loaded is None else 0)) / per_pixel))
            batch = f"{images} images of " if images > 1 else ""
            raise error(f"{self.name}: decoding {batch}{h}x{w} ({pixels} pixels) needs about {need / GIB:.1f} GiB "
                        f"({per_pixel:.0f} bytes/pixel, measured), more than the {room / GIB:.1f} GiB of "
                        f"{source}; refused before allocating. About {fits} pixels fit now; -o "
                        f"{self.name}.max_pixels=N (now {self.options['max_pixels']}) is the hard ceiling; "
                        f"{MEMORY_CHECK_ENV}=off decodes anyway (with swap, say)")

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


