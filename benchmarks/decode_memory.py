"""Peak memory of a learned codec's decode, per pixel: the figures behind ``decode_bytes_per_pixel``.

    python benchmarks/decode_memory.py --json results/decode_memory.json          # every codec below, ~15 min
    python benchmarks/decode_memory.py --codec compressai:mbt2018 --sizes 128,256  # one codec

For each codec (random weights, ``smoke_options``: the architecture, not the weights, sets the memory) and each
size, this process encodes a synthetic image, then a fresh child process decodes a 64x64 stream (which loads the
network) and then the stream of that size. The child reports its resident set before the network (``rss_start``)
and after the small decode (``rss_loaded``: the network); it then resets the kernel's peak-RSS mark (``5`` into
``/proc/self/clear_refs``, so the model build's transient peak does not hide the decode's), takes the resident
set (``baseline``), decodes the big stream and reads ``VmHWM`` of ``/proc/self/status`` (``peak``: the kernel's
own high-water mark, so no sampling misses a spike; ``ru_maxrss`` would not do, it keeps the parent's peak across
fork and exec). ``(peak - baseline) / pixels`` is the decode's own cost per pixel; the JSON keeps
every number, the fit (least-squares slope over the sizes) and the declared figure = ``margin x max(slope,
cost/pixel at the largest size)``, rounded up to 10 bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: (codec, extra options, rate point, sizes): the architectures whose declared figures cite this file. The
#: CompressAI zoo models at their highest quality (the widest N, M of the model; lower qualities are narrower).
PLAN: list[tuple[str, dict[str, str], Any, tuple[int, ...]]] = [
    ("cdc", {"steps": "1"}, None, (128, 192, 256)),
    ("cdc-eps", {"steps": "1"}, None, (128, 192, 256)),
    ("compressai:bmshj2018-factorized", {}, 8, (192, 256, 384)),
    ("compressai:bmshj2018-hyperprior", {}, 8, (192, 256, 384)),
    ("compressai:mbt2018-mean", {}, 8, (192, 256, 384)),
    ("compressai:mbt2018", {}, 8, (128, 192, 256)),
    ("compressai:cheng2020-anchor", {}, 6, (128, 192, 256)),
    ("compressai:cheng2020-attn", {}, 6, (128, 192, 256)),
    ("compressai:bmshj2018-hyperprior-vbr", {}, 1.0, (192, 256, 384)),
    ("compressai:mbt2018-mean-vbr", {}, 1.0, (192, 256, 384)),
    ("compressai:mbt2018-vbr", {}, 1.0, (128, 192, 256)),
    ("msillm", {}, 6, (128, 192, 256)),
]
MARGIN = 1.5
SMALL = 64


def synthetic_image(size: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: a stream of realistic length (pure noise would be far longer)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _codec(name: str, options: dict[str, str]):
    from cdc_bench.codecs.registry import create_codec, get_codec_class

    cls = get_codec_class(name)
    return create_codec(name, {**getattr(cls, "smoke_options", {}), **options})


def _rate(codec, rate: Any) -> Any:
    return codec.rate_points[0] if rate is None else rate


def peak_rss() -> int:
    """This process's peak resident set since its start or the last reset: ``VmHWM`` in ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(args: argparse.Namespace) -> None:
    """Decode the small stream, then the big one; print the resident-set figures as JSON."""
    import psutil

    proc = psutil.Process()
    codec = _codec(args.codec[0], json.loads(args.options))
    small, big = Path(args.small).read_bytes(), Path(args.big).read_bytes()
    rss_start = proc.memory_info().rss
    codec.decode(small)
    rss_loaded = proc.memory_info().rss
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS (Linux >= 4.0)
    baseline = peak_rss()
    started = time.perf_counter()
    image = codec.decode(big)
    seconds = time.perf_counter() - started
    peak = peak_rss()
    print(json.dumps({"rss_start": rss_start, "rss_loaded": rss_loaded, "baseline": baseline, "peak": peak,
                      "decoded": list(image.shape), "decode_seconds": round(seconds, 2)}))


def measure(name: str, options: dict[str, str], rate: Any, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """For each size, one decode of a ``size`` x ``size`` stream in a fresh child process; the child's figures."""
    codec = _codec(name, options)
    rate = _rate(codec, rate)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp, "small.bin")
        small.write_bytes(codec.encode(synthetic_image(SMALL), rate).data)
        streams = {size: codec.encode(synthetic_image(size), rate).data for size in sizes}
        del codec
        for size, data in streams.items():
            big = Path(tmp, f"{size}.bin")
            big.write_bytes(data)
            out = subprocess.run([sys.executable, __file__, "--child", "--codec", name, "--options",
                                  json.dumps(options), "--small", str(small), "--big", str(big)],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                raise RuntimeError(f"{name} at {size}: child failed ({out.returncode}): {out.stderr[-2000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(size=size, pixels=size * size, rate=rate, stream_bytes=len(data),
                          bytes_per_pixel=round((result["peak"] - result["baseline"]) / (size * size), 1))
            results.append(result)
    return results


def fit(points: list[dict[str, Any]], margin: float = MARGIN) -> dict[str, Any]:
    """Least-squares slope of the decode's own peak over pixels, and the declared figure with its margin."""
    px = np.array([p["pixels"] for p in points], dtype=float)
    cost = np.array([p["peak"] - p["baseline"] for p in points], dtype=float)
    slope = float(np.polyfit(px, cost, 1)[0]) if len(points) > 1 else float(cost[0] / px[0])
    largest = points[int(np.argmax(px))]["bytes_per_pixel"]
    model = max(p["rss_loaded"] - p["rss_start"] for p in points)
    return {"slope_bytes_per_pixel": round(slope, 1), "largest_bytes_per_pixel": largest, "margin": margin,
            "declared_bytes_per_pixel": int(math.ceil(margin * max(slope, largest) / 10) * 10),
            "model_bytes": model, "declared_model_bytes": int(math.ceil(margin * model / 2**20)) * 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", action="append", help="only these codecs (repeatable)")
    parser.add_argument("--sizes", help="comma-separated square sizes, instead of the plan's")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--small", help=argparse.SUPPRESS)
    parser.add_argument("--big", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import torch

    header = {"command": "python " + " ".join(sys.argv), "method": __doc__.split("\n\n", 2)[2].strip(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                         f"torch {torch.__version__}, torch threads {torch.get_num_threads()}",
              "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    results = []
    for name, options, rate, sizes in PLAN:
        if args.codec and name not in args.codec:
            continue
        sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else sizes
        points = measure(name, options, rate, sizes)
        entry = {"codec": name, "options": options, "points": points, **fit(points)}
        print(json.dumps({k: v for k, v in entry.items() if k != "points"}), flush=True)
        results.append(entry)
        if args.json:  # after every codec: a long run that stops keeps what it measured
            args.json.write_text(json.dumps({**header, "codecs": results}, indent=1) + "\n")

if __name__ == "__main__":
    main()
