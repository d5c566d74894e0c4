"""CDC decode throughput at batch sizes 1/2/4 on one set of images, side by side in one process, and how far a
batched decode is from the unbatched one.

Every batch size decodes the same images (batch 1: one call per image, batch 4: one call for four), rounds are
interleaved (1, 2, 4, 1, 2, 4, ...) so machine load hits all sizes alike, and the bitstreams are made once by the
exact encoder. Besides images/s, it compares each batched reconstruction with the image decoded alone: oneDNN
picks convolution kernels by batch size, whose float rounding differs, so a few values may move by one level.

    python benchmarks/batch_throughput.py --smoke                   # seconds: checks that it runs
    python benchmarks/batch_throughput.py --images ../shared/datasets/kodak --crop 128 --count 4 --steps 2 \
        --rounds 5 --threads 2 --json results/batch_throughput.json  # the README figures (quiet machine)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # a sibling script, not a package
from cdc_fast_paths import load_images  # noqa: E402 - the same crops as the fast-path benchmark


def decode_all(codec: Any, streams: list[bytes], batch: int) -> list[np.ndarray]:
    """Every stream, decoded ``batch`` at a time (the last call may hold fewer)."""
    out: list[np.ndarray] = []
    for i in range(0, len(streams), batch):
        out.extend(codec.decode_batch(streams[i:i + batch]))
    return out


def deviation(single: list[np.ndarray], batched: list[np.ndarray]) -> dict[str, Any]:
    """How far batched reconstructions are from the ones decoded alone (uint8 levels)."""
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(single, batched)]
    values = sum(d.size for d in diffs)
    return {"max_levels": int(max(d.max() for d in diffs)),
            "values_differing": int(sum((d > 0).sum() for d in diffs)),
            "fraction_differing": float(sum((d > 0).sum() for d in diffs) / values),
            "identical_images": int(sum(not d.any() for d in diffs))}


def measure(images: list[np.ndarray], steps: int, rounds: int, batches: tuple[int, ...], device: str,
            options: dict[str, Any]) -> dict[str, Any]:
    import torch

    from cdc_bench.cdc.codec import CDCXParam

    codec = CDCXParam({**options, "steps": steps}, device=device)
    streams = [codec.encode(image, 0.0128).data for image in images]
    single = decode_all(codec, streams, 1)  # also the warm-up of batch 1
    dev = {b: deviation(single, decode_all(codec, streams, b)) for b in batches if b > 1}  # warm-ups of the rest
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    walls: dict[int, list[float]] = {b: [] for b in batches}
    cpus: dict[int, list[float]] = {b: [] for b in batches}
    for _ in range(rounds):
        for b in batches:  # interleaved
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            decode_all(codec, streams, b)
            sync()
            walls[b].append(time.perf_counter() - wall)
            cpus[b].append(time.process_time() - cpu)
    base = statistics.median(walls[batches[0]])
    rows = [{"batch": b, "images_per_s": len(streams) / statistics.median(walls[b]),
             "s_per_image": statistics.median(walls[b]) / len(streams),
             "cpu_s_per_image": statistics.median(cpus[b]) / len(streams),
             "speedup_vs_batch1": base / statistics.median(walls[b]),
             "walls_s": walls[b], **({"vs_single": dev[b]} if b in dev else {})} for b in batches]
    return {"rows": rows, "steps": steps, "images": len(images), "size": list(images[0].shape[:2]),
            "rounds": rounds, "device": device, "options": codec.options_key}


def print_table(result: dict[str, Any]) -> None:
    h, w = result["size"]
    print(f"CDC x-param decode of {result['images']} images {w}x{h}, {result['steps']} steps, {result['device']}, "
          f"{result['threads']} threads, median of {result['rounds']} interleaved rounds")
    print(f"{'batch':<6} {'images/s':>9} {'s/image':>9} {'cpu s/img':>9} {'× batch1':>8}   vs decoded alone")
    for r in result["rows"]:
        v = r.get("vs_single")
        alone = (f"max {v['max_levels']} level(s), {v['values_differing']} values "
                 f"({100 * v['fraction_differing']:.4f}%) differ" if v else "(reference)")
        print(f"{r['batch']:<6} {r['images_per_s']:>9.3f} {r['s_per_image']:>9.3f} {r['cpu_s_per_image']:>9.3f} "
              f"{r['speedup_vs_batch1']:>8.2f}   {alone}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 synthetic 64x64 images, 1 step, 1 round, batch 1/2")
    parser.add_argument("--images", help="folder of images to crop (e.g. Kodak); default synthetic images")
    parser.add_argument("--count", type=int, default=4, help="images (crops) decoded at every batch size")
    parser.add_argument("--crop", type=int, default=128, help="crop side (CDC pads to a multiple of 64)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="1,2,4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--weights", default="random", help="random, or released (needs the weights cached)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.images, args.count, args.crop, args.steps, args.rounds, args.batches = None, 2, 64, 1, 1, "1,2"
    batches = tuple(int(b) for b in args.batches.split(","))
    options = {"weights": "random"} if args.weights == "random" else {}
    result = measure(load_images(args.images, args.crop, args.count), args.steps, args.rounds, batches, args.device,
                     options)
    result.update(weights=args.weights, threads=torch.get_num_threads(), torch=torch.__version__,
                  load_average=list(os.getloadavg()))
    print_table(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
