"""cdc-bench's runner against CompressAI's ``bench`` on the same Kodak JPEG sweep: wall time, ratio, equal numbers.

    python benchmarks/harness_vs_compressai.py                    # 4 Kodak images x 19 qualities, 5 rounds
    python benchmarks/harness_vs_compressai.py --smoke            # 1 image x 2 qualities, 1 round (a check only)
    python benchmarks/harness_vs_compressai.py --json results/harness_vs_compressai.json
    python benchmarks/harness_vs_compressai.py --cli --no-workers  # also both command lines end to end

Each timed run is a fresh Python process, and the two tools alternate (A B, B A, A B, ...), so neither inherits
the other's warm caches and a slow spell of the machine hits both. Inside a run the clock starts after the imports
(torch, pytorch_msssim, PIL: both tools load the same ones) and stops when every result is in:

- CompressAI: ``compressai.utils.bench.codecs.JPEG.run(path, q, ["psnr-rgb", "ms-ssim-rgb"])`` for every quality
  and image, in the order of its ``collect`` with ``--num-jobs 1`` (what ``python -m compressai.utils.bench jpeg``
  does), in that one process (torch's default threads);
- cdc-bench: ``plan_tasks`` + ``sweep`` into a fresh results store with ``ProcessExecutor(1)`` (what
  ``cdc-bench run --codec jpeg -q ...`` does; its worker's start is inside the clock).

It prints the wall times, their ratio (median over rounds of cdc-bench / CompressAI in the same round), CPU times,
and the largest absolute difference of per-image and per-quality mean PSNR, MS-SSIM and bpp between the tools.
Then it times cdc-bench alone with 1 worker (all cores' threads), 1 worker with 1 thread, and 2 workers (cores // 2
threads each), alternating, and prints the 2-worker speed-up over each 1-worker setting.

With ``--cli`` it also times both command lines end to end, imports included, alternating:
``python -m compressai.utils.bench jpeg DIR -q ...`` against ``cdc-bench run -d folder:DIR -c jpeg -q ...``.

Time it on a quiet machine: the figures are wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_KODAK = REPO.parent / "shared" / "datasets" / "kodak"
DEFAULT_QUALITIES = ",".join(str(q) for q in range(5, 100, 5))  # 19 qualities
METRICS = ["psnr-rgb", "ms-ssim-rgb"]


# --- one timed run, in a child process ------------------------------------------------------------------

def _cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def child_compressai(images: list[Path], qualities: list[int]) -> dict:
    from compressai.utils.bench.codecs import JPEG

    codec = JPEG(argparse.Namespace())
    cpu, start = _cpu_s(), time.perf_counter()
    rows = []
    for q in sorted(qualities):  # collect(): for each quality, every image in sorted order
        for path in sorted(images):
            info = codec.run(str(path), q, METRICS)
            rows.append({"image": path.stem, "quality": q, "bpp": info["bpp"], "psnr": info["psnr-rgb"],
                         "ms_ssim": info["ms-ssim-rgb"]})
    return {"wall_s": time.perf_counter() - start, "cpu_s": _cpu_s() - cpu, "rows": rows}


def child_cdc(images: list[Path], qualities: list[int], workers: int, threads: int | None) -> dict:
    import pytorch_msssim  # noqa: F401 - imported outside the clock, as CompressAI's child imports it
    import torch  # noqa: F401

    from cdc_bench.executors.local import InlineExecutor, ProcessExecutor
    from cdc_bench.metrics import get_metric
    from cdc_bench.codecs.registry import create_codec
    from cdc_bench.sweep import api

    get_metric("ms-ssim")  # the metric modules, as the CLI has them imported before it starts the sweep
    create_codec("jpeg", {})
    executor = InlineExecutor() if workers == 0 else ProcessExecutor(workers, threads)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        cpu, start = _cpu_s(), time.perf_counter()
        folder = Path(out) / "images"  # exactly these images, as one folder dataset
        folder.mkdir()
        for path in images:
            (folder / path.name).symlink_to(path.resolve())
        summary = api.run([f"folder:{folder}"], ["jpeg"], qualities=qualities, out=Path(out) / "results",
                          executor=executor, timeout=None, on_row=rows.append).summary
        wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
    failed = [r.get("error") for r in rows if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"cdc-bench rows failed: {failed[:3]}")
    return {"wall_s": wall, "cpu_s": cpu, "items": summary.ok, "work_s": summary.work_s,
            "rows": [{k: r[k] for k in ("image", "quality", "bpp", "psnr", "ms_ssim")} for r in rows]}


# --- the parent: alternate runs and compare --------------------------------------------------------------

def run_child(tool: str, args: argparse.Namespace, workers: int = 1, threads: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", tool, "--kodak", str(args.kodak), "--images", str(args.images),
           "--qualities", args.qualities, "--workers-child", str(workers), "--threads-child", str(threads or 0)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tool} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def time_clis(images: list[Path], qualities: list[int], rounds: int) -> dict:
    """Wall time of both command lines, each a fresh process, alternating; numbers are compared above."""
    qps = ",".join(map(str, qualities))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    walls: dict[str, list[float]] = {"compressai": [], "cdc": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for path in images:
            shutil.copy(path, folder / path.name)
        commands = {
            "compressai": [sys.executable, "-m", "compressai.utils.bench", "jpeg", str(folder), "-q", qps],
            "cdc": [sys.executable, "-m", "cdc_bench.cli", "run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", qps,
                    "--metrics", "psnr,ms-ssim", "--quiet"],
        }
        for rnd in range(rounds):
            for tool in (("compressai", "cdc") if rnd % 2 == 0 else ("cdc", "compressai")):
                cmd = commands[tool] + (["--out", str(Path(tmp) / f"out{rnd}")] if tool == "cdc" else [])
                start = time.perf_counter()
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                walls[tool].append(time.perf_counter() - start)
                if done.returncode:
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    ratios = [c / a for a, c in zip(walls["compressai"], walls["cdc"])]
    return {"wall_s": walls, "ratio_median": statistics.median(ratios)}


def compare(ref_rows: list[dict], rows: list[dict]) -> dict:
    """Largest absolute differences per image and of per-quality means (CompressAI's reported figures)."""
    ref = {(r["image"], int(r["quality"])): r for r in ref_rows}
    ours = {(r["image"], int(float(r["quality"]))): r for r in rows}
    if ref.keys() != ours.keys():
        raise SystemExit(f"the tools ran different items: {sorted(ref.keys() ^ ours.keys())[:5]}")
    out = {}
    for key in ("psnr", "ms_ssim", "bpp"):
        out[f"max_abs_diff_per_image_{key}"] = max(abs(ref[k][key] - ours[k][key]) for k in ref)
        means = []
        for q in sorted({k[1] for k in ref}):
            items = [k for k in ref if k[1] == q]
            ref_mean, our_mean = (statistics.fmean(rows[k][key] for k in items) for rows in (ref, ours))
            means.append(abs(ref_mean - our_mean))
        out[f"max_abs_diff_mean_{key}"] = max(means)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", type=Path, default=DEFAULT_KODAK)
    parser.add_argument("--images", type=int, default=4, help="the first N Kodak images (sorted)")
    parser.add_argument("--qualities", default=DEFAULT_QUALITIES)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-workers", action="store_true", help="skip the 1 vs 2 workers timing")
    parser.add_argument("--cli", action="store_true", help="also time both command lines end to end")
    parser.add_argument("--smoke", action="store_true", help="1 image, 2 qualities, 1 round: checks the script")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--child", choices=["compressai", "cdc"], help=argparse.SUPPRESS)
    parser.add_argument("--workers-child", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.images, args.qualities, args.rounds = 1, "10,75", 1
    images = sorted(args.kodak.glob("kodim*.png"))[:args.images]
    if len(images) < args.images:
        raise SystemExit(f"found {len(images)} kodim*.png images in {args.kodak}, need {args.images} (--kodak DIR)")
    qualities = [int(q) for q in args.qualities.split(",")]

    if args.child:
        result = (child_compressai(images, qualities) if args.child == "compressai" else
                  child_cdc(images, qualities, args.workers_child, args.threads_child or None))
        print(json.dumps(result))
        return

    cores = os.cpu_count() or 1
    report = {"images": [p.name for p in images], "qualities": qualities, "rounds": args.rounds, "cores": cores,
              "load_avg_start": os.getloadavg()[0], "compressai": [], "cdc_bench": [], "ratios": []}
    diffs = None
    for rnd in range(args.rounds):
        order = ("compressai", "cdc") if rnd % 2 == 0 else ("cdc", "compressai")
        got = {tool: run_child(tool, args) for tool in order}
        report["compressai"].append({k: got["compressai"][k] for k in ("wall_s", "cpu_s")})
        report["cdc_bench"].append({k: got["cdc"][k] for k in ("wall_s", "cpu_s", "work_s")})
        report["ratios"].append(got["cdc"]["wall_s"] / got["compressai"]["wall_s"])
        round_diffs = compare(got["compressai"]["rows"], got["cdc"]["rows"])
        diffs = {k: max(v, (diffs or {}).get(k, 0.0)) for k, v in round_diffs.items()}
        print(f"round {rnd + 1}: CompressAI {got['compressai']['wall_s']:.2f} s, cdc-bench {got['cdc']['wall_s']:.2f} s"
              f" (ratio {report['ratios'][-1]:.3f})", file=sys.stderr)
    report["ratio_median"] = statistics.median(report["ratios"])
    report["cpu_ratio_median"] = statistics.median(
        c["cpu_s"] / a["cpu_s"] for a, c in zip(report["compressai"], report["cdc_bench"]))
    report["differences"] = diffs

    if not args.no_workers:
        settings = {"1 worker": (1, None), "1 worker x 1 thread": (1, 1), "2 workers": (2, None)}
        walls: dict[str, list[float]] = {name: [] for name in settings}
        for rnd in range(args.rounds):
            for name in (list(settings) if rnd % 2 == 0 else list(settings)[::-1]):
                walls[name].append(run_child("cdc", args, *settings[name])["wall_s"])
        report["workers"] = {name: {"wall_s": w, "threads_per_worker": settings[name][1] or
                                    max(1, cores // settings[name][0])} for name, w in walls.items()}
        median = {name: statistics.median(w) for name, w in walls.items()}
        report["speedup_2_workers_vs_1_worker"] = median["1 worker"] / median["2 workers"]
        report["speedup_2_workers_vs_1_worker_1_thread"] = median["1 worker x 1 thread"] / median["2 workers"]
    if args.cli:
        report["cli"] = time_clis(images, qualities, args.rounds)
    report["load_avg_end"] = os.getloadavg()[0]

    print(f"Kodak JPEG sweep: {len(images)} images x {len(qualities)} qualities, {args.rounds} alternating rounds, "
          f"{cores} cores, load average {report['load_avg_start']:.2f} -> {report['load_avg_end']:.2f}")
    print(f"  CompressAI bench   median wall {statistics.median(r['wall_s'] for r in report['compressai']):.2f} s")
    print(f"  cdc-bench run      median wall {statistics.median(r['wall_s'] for r in report['cdc_bench']):.2f} s")
    print(f"  ratio cdc-bench / CompressAI: {report['ratio_median']:.3f} wall (median of rounds), "
          f"{report['cpu_ratio_median']:.3f} CPU time")
    print("  max |difference| " + ", ".join(f"{k.replace('max_abs_diff_', '')} {v:.2e}" for k, v in diffs.items()))
    if "workers" in report:
        for name, info in report["workers"].items():
            print(f"  {name:20s} ({info['threads_per_worker']} threads each) median wall "
                  f"{statistics.median(info['wall_s']):.2f} s")
        print(f"  2-worker speed-up: {report['speedup_2_workers_vs_1_worker']:.2f}x over 1 worker, "
              f"{report['speedup_2_workers_vs_1_worker_1_thread']:.2f}x over 1 worker x 1 thread")
    if "cli" in report:
        cli_walls = {tool: statistics.median(w) for tool, w in report["cli"]["wall_s"].items()}
        print(f"  command lines end to end: CompressAI median {cli_walls['compressai']:.2f} s, cdc-bench median "
              f"{cli_walls['cdc']:.2f} s, ratio {report['cli']['ratio_median']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
