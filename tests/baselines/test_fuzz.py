"""Fuzz every codec that runs here with mutated and truncated bitstreams, each codec in its own subprocess.

A decoder given hostile bytes must end in one of two ways: a :class:`BitstreamError`/:class:`CodecError`, or a
decoded image. A segfault (native code reading past a buffer), a hang or any other exception type fails the test,
and the parent names the mutation that did it (the worker prints each case before decoding it). Learned codecs
run on seeded random weights (nothing is downloaded) in small configurations, with ``max_pixels`` small so that a
mutated size that is still allowed decodes quickly.

Run one codec by hand: ``python tests/baselines/test_fuzz.py jpeg 300``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: codec -> number of mutated streams by default (learned decoders cost 10-100x more per stream; the header bits,
#: where a learned codec's checks live, are all flipped in every run). CDC_BENCH_FUZZ_SCALE=3 runs 3x as many.
CASES = {
    "jpeg": 300, "webp": 300, "jpeg2000": 300, "jpegxl": 300, "avif": 300, "hevc": 300,
    "compressai:bmshj2018-factorized": 150, "compressai:bmshj2018-hyperprior": 150, "compressai:mbt2018": 100,
    "compressai:mbt2018-mean-vbr": 100, "msillm": 120, "bpg": 300,
    # the diffusion codecs' decoders run networks: fewer cases (the header bits are still all flipped)
    "stablecodec": 40, "diffc": 40, "hific": 60, "cdc-eps": 20,
}
#: every other registered codec gets this many cases: no codec goes unfuzzed (test_every_codec_is_fuzzed)
DEFAULT_CASES = 30
#: codecs with a fuzz test of their own
ELSEWHERE = {"cdc": "tests/cdc_bench/cdc/test_cdc_untrusted.py (300 mutated streams)"}


def _registered() -> list[str]:
    from cdc_bench.codecs.registry import codec_names

    return [n for n in codec_names() if not n.startswith("speedtoy")]  # the speed tests' toy codecs


CODECS = sorted(set(CASES) | {n for n in _registered() if n not in ELSEWHERE})
SCALE = float(os.environ.get("CDC_BENCH_FUZZ_SCALE", "1"))
#: seconds one worker may take before its current case counts as a hang
TIMEOUT_S = 180 * SCALE


# -- the worker (runs in the subprocess) ---------------------------------------------------------------------------
def make_codec(name: str):
    """The codec under test: classical ones as configured by default, learned ones on small random networks."""
    from cdc_bench.codecs.registry import get_codec_class

    if name in ("msillm", "nogan"):
        base = get_codec_class(name)
        # A smaller network with the same layers and coding path (the released one has 181 M parameters).
        tiny = type(f"Tiny{base.__name__}", (base,), {"random_config": {
            "latent_features": 32, "hyper_features": 32, "num_residual_blocks": 1}})
        return tiny({"weights": "random", "max_pixels": 64 * 64})
    if name.startswith("compressai:"):
        return get_codec_class(name)({"weights": "random", "max_pixels": 64 * 64})
    smoke = getattr(get_codec_class(name), "smoke_options", None)
    if smoke:  # a learned codec that declares how it runs here cheaply and offline
        return get_codec_class(name)({**smoke, "max_pixels": 64 * 64})
    return get_codec_class(name)()


def sample_image(h: int, w: int):
    import numpy as np

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, 128 + 60 * np.sin((x + y) / 5)], -1) + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def mutations(data: bytes, count: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` damaged copies: every bit of the header flipped, random bit flips and byte changes anywhere,
    and truncations (short ones, at every header byte, and random)."""
    rng = random.Random(seed)
    cases: list[tuple[str, bytes]] = []
    header = min(len(data), 16)
    for bit in range(8 * header):  # header fields: magic, version, codes, sizes, shapes, first lengths
        out = bytearray(data)
        out[bit // 8] ^= 1 << (bit % 8)
        cases.append((f"flip bit {bit % 8} of byte {bit // 8}", bytes(out)))
    for n in range(1, header + 1):
        cases.append((f"truncate to {n} bytes", data[:n]))
    while len(cases) < count:
        kind = rng.randrange(4)
        out = bytearray(data)
        if kind == 0:
            flips = [rng.randrange(8 * len(data)) for _ in range(rng.randint(1, 3))]
            for bit in flips:
                out[bit // 8] ^= 1 << (bit % 8)
            cases.append((f"flip bits {flips}", bytes(out)))
        elif kind == 1:
            pos, value = rng.randrange(len(data)), rng.choice([0, 0xFF, rng.randrange(256)])
            out[pos] = value
            cases.append((f"byte {pos} = {value:#04x}", bytes(out)))
        elif kind == 2:
            n = rng.randrange(len(data))
            cases.append((f"truncate to {n} bytes", data[:n]))
        else:
            pos, n = rng.randrange(len(data)), rng.randint(1, 8)
            del out[pos:pos + n]
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 8)))
            cases.append((f"replace {n} bytes at {pos}", bytes(out)))
    return cases[:count]


def worker(name: str, count: int) -> None:
    """Encode a small image, then decode each mutation; print one line per case (flushed before decoding)."""
    import numpy as np

    from cdc_bench.errors import BitstreamError, CodecError

    codec = make_codec(name)
    learned = name.startswith("compressai:") or name in ("msillm", "nogan") or "max_pixels" in codec.options
    image = sample_image(*((24, 40) if learned else (40, 56)))
    rate = codec.rate_points[0 if learned else len(codec.rate_points) // 2]
    data = codec.encode(image, rate).data
    assert codec.decode(data).shape == image.shape
    for index, (what, damaged) in enumerate(mutations(data, count, seed=len(name))):
        print(f"case {index}: {what}", flush=True)
        start = time.perf_counter()
        try:
            out = codec.decode(damaged)
            assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            outcome = "decoded"
        except (BitstreamError, CodecError) as err:
            outcome = type(err).__name__
        except BaseException as err:  # noqa: BLE001 - exactly what the test must catch
            print(f"BAD {index}: {type(err).__module__}.{type(err).__name__}: {err}", flush=True)
            continue
        print(f"done {index}: {outcome} {time.perf_counter() - start:.3f}s", flush=True)


# -- the test (runs in pytest) -------------------------------------------------------------------------------------
def _unavailable(name: str) -> str | None:
    """Why the codec cannot run on this machine (a missing library or binary, with its fix), or None."""
    from cdc_bench.codecs.registry import get_codec_class

    try:
        status = get_codec_class(name).availability()
    except Exception as err:  # noqa: BLE001 - a codec that cannot even be loaded is not fuzzed here
        return f"cannot load: {type(err).__name__}: {err}"
    return None if status.ok else f"{status.reason} {status.fix}".strip()


def _run_worker(name: str) -> tuple[str, str, int | str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, __file__, name, str(_count(name))], capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=env, cwd=REPO)
        return proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return stdout, "", f"a timeout ({TIMEOUT_S:g} s)"


def _count(name: str) -> int:
    return int(CASES.get(name, DEFAULT_CASES) * SCALE)


@pytest.fixture(scope="module")
def workers():
    """All workers started at once, two at a time (each is single-threaded), so the module takes half as long."""
    names = [name for name in CODECS if _unavailable(name) is None]
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(_run_worker, name) for name in names}


def test_every_registered_codec_is_fuzzed():
    """A codec added to the registry is fuzzed from then on (with its smoke_options), or says where it is."""
    registered = set(_registered())
    assert registered <= set(CODECS) | set(ELSEWHERE), sorted(registered - set(CODECS) - set(ELSEWHERE))
    assert {"stablecodec", "diffc", "hific"} <= registered


@pytest.mark.parametrize("name", CODECS)
def test_mutated_streams_end_in_an_error_or_an_image(name, workers):
    if name not in workers:
        pytest.skip(f"{name} cannot run on this machine: {_unavailable(name)}")
    stdout, stderr, code = workers[name].result()
    lines = stdout.splitlines()
    started = [line for line in lines if line.startswith("case ")]
    last = started[-1] if started else "before the first case"
    assert code == 0, f"{name}: worker ended with {code} during {last!r}\n{stderr[-2000:]}"
    bad = [line for line in lines if line.startswith("BAD ")]
    assert not bad, f"{name}: exceptions of other types:\n" + "\n".join(bad[:10])
    done = [line.split() for line in lines if line.startswith("done ")]
    assert len(done) == _count(name), f"{name}: {len(done)} of {_count(name)} cases finished\n{stderr[-2000:]}"
    outcomes = {kind for _, _, kind, _ in done}
    assert outcomes <= {"decoded", "BitstreamError", "CodecError"}, outcomes
    assert "BitstreamError" in outcomes  # truncations to a few bytes can never decode


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]))
