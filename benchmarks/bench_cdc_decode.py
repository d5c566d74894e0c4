"""CDC decoding time against the number of denoising steps, at sizes small enough for a CPU.

Both CDC variants run with the released architecture and random weights (``weights=random``) unless
``CDC_BENCH_WEIGHTS=released`` is set, so the suite needs no checkpoint: the network's cost does not depend on
the values of its parameters. Each benchmark decodes the same bitstream (made once, outside the timing).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pytest

from cdc_bench.speed import synthetic_image

CODECS = ("cdc", "cdc-eps")
STEPS = (1, 2, 4, 8)
SIZES = ((64, 64), (128, 128))  # (width, height); CDC needs multiples of 64
ROUNDS = 3


@lru_cache(maxsize=None)
def _codec_class(name: str):
    from cdc_bench.codecs.registry import get_codec_class

    return get_codec_class(name)


def _make_codec(name: str, steps: int, device: str):
    try:
        cls = _codec_class(name)
    except Exception as err:  # noqa: BLE001 - the CDC module or a dependency is not installed
        pytest.skip(f"codec {name} cannot be loaded: {type(err).__name__}: {err}")
    options = {"steps": steps}
    if "weights" in cls.option_specs:
        options["weights"] = os.environ.get("CDC_BENCH_WEIGHTS", "random")
    return cls(options, device=device)


def _rate(codec) -> object:
    points = list(codec.rate_points)
    return points[len(points) // 2] if points else None


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("steps", STEPS, ids=lambda s: f"steps{s}")
@pytest.mark.parametrize("name", CODECS)
def test_decode(benchmark, bench_device: str, name: str, steps: int, size: tuple[int, int]) -> None:
    codec = _make_codec(name, steps, bench_device)
    image = synthetic_image(*size)
    data = codec.encode(image, _rate(codec)).data
    benchmark.group = f"{name} decode {size[0]}x{size[1]}"
    benchmark.extra_info.update({"codec": name, "steps": steps, "width": size[0], "height": size[1],
                                 "device": bench_device, "options": codec.options_key, "bytes": len(data)})
    # pedantic: a fixed number of rounds (one decode each) after one warm-up, whatever the decode costs
    recon = benchmark.pedantic(codec.decode, args=(data,), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    assert isinstance(recon, np.ndarray) and recon.shape == image.shape and recon.dtype == np.uint8


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", CODECS)
def test_encode(benchmark, bench_device: str, name: str, size: tuple[int, int]) -> None:
    codec = _make_codec(name, STEPS[0], bench_device)
    image = synthetic_image(*size)
    rate = _rate(codec)
    benchmark.group = f"{name} encode"
    benchmark.extra_info.update({"codec": name, "width": size[0], "height": size[1], "device": bench_device})
    data = benchmark.pedantic(codec.encode, args=(image, rate), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    assert isinstance(data.data, bytes) and len(data.data) > 0
