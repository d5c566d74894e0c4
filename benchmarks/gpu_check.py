"""CDC on a CUDA machine, in under 8 minutes, into one JSON: numerics, cross-device bitstreams, speed, batching.

1. ``cdc-verify --device cuda`` on the official reference tensors (TF32 off).
2. Round trips across devices on the released architecture (random weights: the machine has no network):
   CPU encode → GPU decode and GPU encode → CPU decode. The latents must be identical (the stream's scale-index
   CRC refuses a stream otherwise), the images may differ by float rounding of the sampler: recorded as PSNR
   between the CPU and GPU decodes of the same stream (documented tolerance: ≥ 40 dB), and whether the CPU and
   GPU encoders wrote identical bytes.
3. ``cdc-bench speed`` at 768x512, steps 1,4,16,65, for fp32, bf16, fp16 and compile.
4. Batched decode throughput (batch 1/2/4/8) and fast-path PSNR against fp32, via ``cdc_fast_paths.py``.

    python benchmarks/gpu_check.py --out results/gpu_check.json

Every part has its own time limit; a part that fails or runs out of time is recorded as such and the rest goes on.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 8 * 60 - 20
SPEED_CONFIGS = {"fp32": [], "bf16": ["-o", "cdc.dtype=bf16"], "fp16": ["-o", "cdc.dtype=fp16"],
                 "compile": ["-o", "cdc.compile=true"]}


def default_fixtures() -> Path:
    for candidate in (ROOT / "shared" / "reference" / "cdc" / "fixtures",
                      ROOT.parent / "shared" / "reference" / "cdc" / "fixtures"):
        if candidate.is_dir():
            return candidate
    return ROOT / "shared" / "reference" / "cdc" / "fixtures"


def _cli(args: list[str], timeout: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "cdc_bench.cli", *args], capture_output=True, text=True,
                              timeout=max(timeout, 1), env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"rc": None, "timed_out": True, "seconds": time.perf_counter() - start}
    return {"rc": proc.returncode, "seconds": time.perf_counter() - start,
            "output_tail": (proc.stdout + proc.stderr)[-3000:]}


def check_verify(fixtures: Path, timeout: float) -> dict[str, Any]:
    return _cli(["cdc-verify", str(fixtures), "--device", "cuda", "--failures-only"], timeout)


def check_cross_device(size: int = 256, steps: int = 4) -> dict[str, Any]:
    import numpy as np

    from cdc_bench.cdc.codec import CDCXParam
    from cdc_bench.errors import CodecError
    from cdc_bench.speed import synthetic_image

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from cdc_fast_paths import psnr

    image = synthetic_image(size, size)
    options = {"weights": "random", "steps": steps}
    cpu, gpu = CDCXParam(options, device="cpu"), CDCXParam(options, device="cuda")
    out: dict[str, Any] = {"size": size, "steps": steps, "tolerance": "latents identical (scale CRC); images "
                                                                      ">= 40 dB PSNR between devices"}
    cpu_stream, gpu_stream = cpu.encode(image, 0.0032).data, gpu.encode(image, 0.0032).data
    out["identical_bytes_cpu_vs_gpu_encoder"] = cpu_stream == gpu_stream
    for name, stream, decoders in (("cpu_encode", cpu_stream, (cpu, gpu)), ("gpu_encode", gpu_stream, (cpu, gpu))):
        try:
            on_cpu, on_gpu = (codec.decode(stream) for codec in decoders)
            diff = np.abs(on_cpu.astype(int) - on_gpu.astype(int))
            out[name] = {"psnr_cpu_vs_gpu_decode_db": psnr(on_cpu, on_gpu), "max_abs_diff": int(diff.max()),
                         "ok": psnr(on_cpu, on_gpu) >= 40}
        except CodecError as err:
            out[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    return out


def check_speed(extra: list[str], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "speed.json"
        result = _cli(["speed", "-c", "cdc", "-o", "cdc.weights=random", *extra, "--steps", "1,4,16,65",
                       "--size", "768x512", "--repeats", "3", "--device", "cuda", "-q", "--out", str(report)],
                      timeout)
        if report.is_file():
            result["report"] = json.loads(report.read_text())
    return result


def check_batches(timeout_note: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from cdc_fast_paths import load_images, measure

    result = measure(["fp32", "bf16", "fp16", "channels_last"], load_images(None, 512, 2), steps=4, rounds=3,
                     device="cuda", base_options={"weights": "random"}, batches=(1, 2, 4, 8))
    result["note"] = timeout_note
    return result


def _finite(obj: Any) -> Any:
    """Strict JSON: an infinite PSNR (identical images) is written as the string "inf"."""
    if isinstance(obj, float) and obj != obj or obj in (float("inf"), float("-inf")):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    bf16_supported=torch.cuda.is_bf16_supported())
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu_check.json"), help="the JSON to write")
    parser.add_argument("--fixtures", default=str(default_fixtures()), help="cdc-verify reference directory")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for everything (default 7m40s)")
    args = parser.parse_args(argv)
    import torch

    started = time.perf_counter()
    result: dict[str, Any] = {"environment": environment(), "parts": {}}
    if not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here; nothing to check", file=sys.stderr)
        return 2
    left: Callable[[], float] = lambda: args.budget - (time.perf_counter() - started)  # noqa: E731

    def part(name: str, fn: Callable[[], dict[str, Any]], needs: float) -> None:
        if left() < needs:
            result["parts"][name] = {"skipped": f"out of time ({left():.0f} s left, needs ~{needs:.0f} s)"}
        else:
            t0 = time.perf_counter()
            try:
                result["parts"][name] = fn()
            except Exception as err:  # noqa: BLE001 - record and go on: one JSON with every part
                result["parts"][name] = {"error": f"{type(err).__name__}: {err}"}
            result["parts"][name]["part_seconds"] = time.perf_counter() - t0
        print(f"gpu_check: {name}: {json.dumps(result['parts'][name])[:300]}", flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(_finite(result), indent=1, default=str, allow_nan=False))

    part("cdc_verify_cuda", lambda: check_verify(Path(args.fixtures), min(90, left())), 20)
    part("cross_device_round_trip", check_cross_device, 30)
    for name, extra in SPEED_CONFIGS.items():
        part(f"speed_768x512_{name}", lambda extra=extra: check_speed(extra, min(150, left() - 60)), 60)
    part("batched_decode", lambda: check_batches("512x512 crops of synthetic images, 4 steps"), 45)
    result["total_seconds"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(_finite(result), indent=1, default=str, allow_nan=False))
    print(f"gpu_check: wrote {args.out} in {result['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
