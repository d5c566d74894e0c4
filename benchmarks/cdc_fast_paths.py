"""CDC fast paths against the exact fp32 eager decoder, in one process: speed ratio per step, fidelity (PSNR
between the fp32 decode and the fast decode of the same bitstream), and batched-decode throughput.

Rounds are interleaved across configurations (fp32, fast, fp32, fast, ...) so machine load hits all alike. The
bitstream is made once per image by the exact encoder: the fast paths change only the denoiser, never the bytes.

    python benchmarks/cdc_fast_paths.py --smoke                      # seconds: checks that it runs
    python benchmarks/cdc_fast_paths.py --images ../shared/datasets/kodak --crop 256 --steps 4 --rounds 5 \
        --threads 2 --json results/cdc_fast_paths.json                # the README table (quiet machine)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIGS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "fast_norm": {"fast_norm": True},
    "channels_last": {"channels_last": True},
    "bf16": {"dtype": "bf16"},
    "fp16": {"dtype": "fp16"},
    "compile": {"compile": True},
    "best": {"fast_norm": True, "channels_last": True, "dtype": "bf16", "compile": True},
}


def load_images(folder: str | None, size: int, count: int) -> list[np.ndarray]:
    """Centre crops of the first `count` images of `folder` (e.g. Kodak), else distinct synthetic images."""
    if folder:
        from cdc_bench.datasets.images import read_image

        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
        if len(paths) < count:
            raise SystemExit(f"{folder} holds {len(paths)} images, --count asks for {count}")
        crops = []
        for path in paths:
            image = read_image(path)[0]
            top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
            crops.append(np.ascontiguousarray(image[top:top + size, left:left + size]))
        return crops
    from cdc_bench.speed import synthetic_image

    return [np.roll(synthetic_image(size, size), 7 * i, axis=1) for i in range(count)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _timed(fn, device: str) -> tuple[Any, float, float]:
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    sync()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(configs: list[str], images: list[np.ndarray], steps: int, rounds: int, device: str,
            base_options: dict[str, Any], batches: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    """Per-step decode time and PSNR vs fp32 for each configuration; throughput of batched fp32 decodes."""
    from cdc_bench.cdc.codec import CDCXParam
    from cdc_bench.errors import CodecConfigError

    codecs, skipped = {}, {}
    for name in ["fp32", *[c for c in configs if c != "fp32"]]:
        try:
            codecs[name] = CDCXParam({**base_options, "steps": steps, **CONFIGS[name]}, device=device)
        except CodecConfigError as err:  # e.g. bf16 on a CPU without native support: say so, go on
            skipped[name] = str(err)
    streams = [codecs["fp32"].encode(image, 0.0032).data for image in images]
    reference = [codecs["fp32"].decode(s) for s in streams]  # also the warm-up of fp32
    fidelity: dict[str, list[float]] = {}
    for name, codec in codecs.items():
        fidelity[name] = [psnr(ref, codec.decode(s)) for ref, s in zip(reference, streams)]  # warm-up (compile)
    times: dict[str, list[float]] = {name: [] for name in codecs}
    cpu_times: dict[str, list[float]] = {name: [] for name in codecs}
    for _ in range(rounds):
        for name, codec in codecs.items():  # interleaved
            _, wall, cpu = _timed(lambda: codec.decode(streams[0]), device)
            times[name].append(wall / steps)
            cpu_times[name].append(cpu / steps)
    base = statistics.median(times["fp32"])
    rows = [{"config": name, "options": CONFIGS[name], "s_per_step": statistics.median(times[name]),
             "cpu_s_per_step": statistics.median(cpu_times[name]),
             "ratio_vs_fp32": statistics.median(times[name]) / base,
             "psnr_vs_fp32_min_db": min(fidelity[name]), "psnr_vs_fp32_mean_db": statistics.mean(
                 [p for p in fidelity[name] if p != float("inf")] or [float("inf")])} for name in codecs]
    throughput = []
    for size in batches:
        group = (streams * size)[:size]
        codecs["fp32"].decode_batch(group)  # warm-up at this batch size
        walls = [_timed(lambda: codecs["fp32"].decode_batch(group), device)[1] for _ in range(rounds)]
        throughput.append({"batch": size, "images_per_s": size / statistics.median(walls),
                           "s_per_image": statistics.median(walls) / size})
    return {"rows": rows, "skipped": skipped, "batches": throughput, "steps": steps, "images": len(images),
            "size": list(images[0].shape[:2]), "device": device, "rounds": rounds}


def print_table(result: dict[str, Any]) -> None:
    print(f"CDC x-param decode, {result['size'][1]}x{result['size'][0]}, {result['steps']} steps, "
          f"{result['device']}, median of {result['rounds']} interleaved rounds, PSNR over {result['images']} images")
    print(f"{'config':<14} {'s/step':>9} {'cpu s/step':>10} {'× fp32':>7} {'PSNR min':>9} {'PSNR mean':>9}")
    for r in result["rows"]:
        print(f"{r['config']:<14} {r['s_per_step']:>9.4f} {r['cpu_s_per_step']:>10.4f} {r['ratio_vs_fp32']:>7.3f} "
              f"{r['psnr_vs_fp32_min_db']:>9.2f} {r['psnr_vs_fp32_mean_db']:>9.2f}")
    for name, why in result["skipped"].items():
        print(f"{name:<14} skipped: {why}")
    print(f"{'batch':<6} {'images/s':>9} {'s/image':>9}")
    for b in result["batches"]:
        print(f"{b['batch']:<6} {b['images_per_s']:>9.3f} {b['s_per_image']:>9.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="64x64, 1 step, 1 round, no compile: seconds")
    parser.add_argument("--images", help="folder of images to crop (e.g. Kodak); default synthetic images")
    parser.add_argument("--count", type=int, default=4, help="images (crops) for the PSNR column")
    parser.add_argument("--crop", type=int, default=256, help="crop side (multiple of 64)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--configs", default="fp32,fast_norm,channels_last,bf16,compile,best")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--weights", default="random", help="random, or released (needs the weights cached)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.crop, args.steps, args.rounds, args.count = 64, 1, 1, 1
        args.configs = "fp32,fast_norm,channels_last"
    options = {"weights": "random"} if args.weights == "random" else {}
    result = measure(args.configs.split(","), load_images(args.images, args.crop, args.count), args.steps,
                     args.rounds, args.device, options, batches=(1, 2) if args.smoke else (1, 2, 4))
    result.update(weights=args.weights, threads=torch.get_num_threads(), torch=torch.__version__)
    print_table(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
