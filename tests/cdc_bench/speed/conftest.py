"""Small real codecs for the speed tests (registered on import), shared through fixtures.

Timings are never asserted in these tests: only structure, bookkeeping and the logic applied to known
(synthetic) numbers.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from cdc_bench.codecs.base import BitstreamError, Codec, CodecConfigError, CodecUnavailable, Option
from cdc_bench.codecs.registry import register
from cdc_bench.weights import WeightsMissing, get_weight

HEADER = struct.Struct(">HHB")


class ConvStackCodec(Codec):
    """A small real codec whose decoder runs a conv stack ``steps`` times, like a diffusion sampler.

    Encode: subsample by the rate factor, zlib-compress. Decode: inflate, upsample with torch, then refine
    ``steps`` times with a fixed random conv stack (real work that grows with steps).
    """

    name = "speedtoy"
    rate_label = "subsampling factor"
    rate_points = (2, 4)
    option_specs = {"steps": Option(4), "channels": Option(8)}

    def __init__(self, options=None, device="cpu"):
        super().__init__(options, device)
        gen = torch.Generator().manual_seed(0)
        c = self.options["channels"]
        self.w1 = torch.randn(c, 3, 3, 3, generator=gen) * 0.1
        self.w2 = torch.randn(3, c, 3, 3, generator=gen) * 0.1
        self.steps_run = 0

    def check_options(self) -> None:
        if self.options["steps"] < 1:
            raise CodecConfigError("steps must be >= 1")

    def _encode(self, image: np.ndarray, rate) -> bytes:
        factor = int(rate)
        small = np.ascontiguousarray(image[::factor, ::factor])
        return HEADER.pack(image.shape[0], image.shape[1], factor) + zlib.compress(small.tobytes())

    def _decode(self, data: bytes) -> np.ndarray:
        if len(data) < HEADER.size:
            raise BitstreamError(f"{len(data)} bytes is shorter than the {HEADER.size}-byte header")
        h, w, factor = HEADER.unpack_from(data)
        try:
            raw = zlib.decompress(data[HEADER.size:])
        except zlib.error as err:
            raise BitstreamError(f"corrupt payload: {err}") from None
        small = np.frombuffer(raw, np.uint8).reshape(-(-h // factor), -(-w // factor), 3)
        x = torch.from_numpy(small.copy()).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        self.steps_run = 0
        for _ in range(self.options["steps"]):
            hidden = torch.relu(torch.nn.functional.conv2d(x, self.w1, padding=1))
            x = x + 0.01 * torch.tanh(torch.nn.functional.conv2d(hidden, self.w2, padding=1))
            self.steps_run += 1
        return (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

    def extra_metrics(self):
        return {"steps_run": self.steps_run}


class FlatCodec(Codec):
    """A one-point codec (no steps option): zlib on the raw pixels."""

    name = "speedtoy-flat"
    rate_points = (6,)
    option_specs = {}

    def _encode(self, image, rate):
        return HEADER.pack(image.shape[0], image.shape[1], int(rate)) + zlib.compress(image.tobytes(), int(rate))

    def _decode(self, data):
        h, w, _ = HEADER.unpack_from(data)
        return np.frombuffer(zlib.decompress(data[HEADER.size:]), np.uint8).reshape(h, w, 3).copy()


class CheckpointCodec(ConvStackCodec):
    """Like CDC: ``weights=released`` needs a checkpoint that is not here; ``weights=random`` always works."""

    name = "speedtoy-ckpt"
    option_specs = {"steps": Option(2), "channels": Option(4), "weights": Option("released")}

    def check_options(self):
        if self.options["weights"] == "released":
            raise CodecUnavailable("checkpoint toy.pt not found in the cache", "cdc-bench weights fetch")


class DeclaredWeightsCodec(ConvStackCodec):
    """Like CDC: ``required_weights`` names a registered weight file; released weights load it at encode time."""

    name = "speedtoy-declared"
    option_specs = {"steps": Option(2), "channels": Option(4), "weights": Option("released")}

    def required_weights(self, rate_points):
        return [] if self.options["weights"] == "random" else ["speedtoy-declared.pt"]

    def _encode(self, image, rate):
        if self.options["weights"] == "released":
            get_weight("speedtoy-declared.pt").ensure(allow_download=False)
        return super()._encode(image, rate)


class DownloadFailsCodec(ConvStackCodec):
    """Released weights are fetched lazily at the first encode, and the fetch fails (offline)."""

    name = "speedtoy-offline"
    option_specs = {"steps": Option(2), "channels": Option(4), "weights": Option("released")}

    def _encode(self, image, rate):
        if self.options["weights"] == "released":
            raise WeightsMissing("weight file toy-offline.pt is missing: download http://x/toy.pt to /nowhere")
        return super()._encode(image, rate)


CALLS: list[tuple[str, int]] = []


class LoggingCodec(ConvStackCodec):
    """Records the order of its calls, to check how the run loop schedules them."""

    name = "speedtoy-log"

    def _encode(self, image, rate):
        CALLS.append(("encode", self.options["steps"]))
        return super()._encode(image, rate)

    def _decode(self, data):
        CALLS.append(("decode", self.options["steps"]))
        return super()._decode(data)


class StepBitsCodec(ConvStackCodec):
    """Writes its step count into the bitstream: the encoder depends on steps."""

    name = "speedtoy-stepbits"

    def _encode(self, image, rate):
        return bytes([self.options["steps"]]) + super()._encode(image, rate)

    def _decode(self, data):
        return super()._decode(data[1:])


class WrongShapeCodec(ConvStackCodec):
    name = "speedtoy-wrong"

    def _decode(self, data):
        return super()._decode(data)[:-1]


for _cls in (ConvStackCodec, FlatCodec, CheckpointCodec, DeclaredWeightsCodec, DownloadFailsCodec, LoggingCodec,
             StepBitsCodec, WrongShapeCodec):
    register(_cls)




@pytest.fixture
def calls() -> list[tuple[str, int]]:
    """The calls of the ``speedtoy-log`` codec, emptied for each test."""
    CALLS.clear()
    return CALLS
