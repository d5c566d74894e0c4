"""Dask against the local pool, side by side in one run: pebble 1 and 2 workers, Dask local 1 and 2 workers.

    python benchmarks/dask_overhead.py --kodak ../shared/datasets/kodak            # the measurement (quiet machine)
    python benchmarks/dask_overhead.py --smoke                                      # 2 images, 2 rate points

Each engine sweeps the same JPEG rate points over Kodak into a fresh store. Per run it prints the sweep's wall
time (cluster start-up excluded, reported apart), the sum of the items' own encode + decode + metric times, the
harness overhead per item ``(wall * workers - work) / items`` (time a worker slot spends on anything but the
item), Dask's wall time over pebble's at the same worker count, and each engine's 2-worker speed-up over its
1-worker run (the goal: Dask's within 10% of pebble's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cdc_bench.executors.dask import DaskExecutor
from cdc_bench.executors.local import ProcessExecutor
from cdc_bench.datasets.images import IMAGE_SUFFIXES
from cdc_bench.sweep import api


def _run(engine: str, workers: int, sweep_args: dict, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        if engine == "pebble":
            executor, startup = ProcessExecutor(workers, threads_per_worker=threads), 0.0
        else:
            executor = DaskExecutor(workers=workers, threads_per_worker=threads, dashboard=False).start()
            startup = time.perf_counter() - start
        try:
            summary = api.run(**sweep_args, out=out, executor=executor, timeout=None).summary
        finally:
            if engine == "dask":
                executor.close()
    items = max(1, summary.ok)
    return {"engine": engine, "workers": workers, "items": summary.ok, "failed": summary.failed,
            "startup_s": round(startup, 3), "wall_s": round(summary.wall_s, 3), "work_s": round(summary.work_s, 3),
            "overhead_per_item_ms": round(1000 * (summary.wall_s * workers - summary.work_s) / items, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/kodak")
    parser.add_argument("--codec", default="jpeg")
    parser.add_argument("--qualities", default="10,20,30,40,50,60,70,80,90,95")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (the same for both engines)")
    parser.add_argument("--smoke", action="store_true", help="2 images, 2 rate points: checks the script runs")
    args = parser.parse_args()
    images = [(p.stem, p) for p in sorted(args.kodak.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    rates = [int(q) for q in args.qualities.split(",")]
    if args.smoke:
        images, rates = images[:2], rates[:2]
    # The library call `cdc-bench run` makes: the same plans and keys as the command line.
    sweep_args = {"datasets": [f"folder:{args.kodak}"], "codecs": [args.codec], "qualities": rates,
                  "limit": len(images)}
    counts = [int(w) for w in args.workers.split(",")]
    runs = [_run(engine, n, sweep_args, args.threads) for n in counts for engine in ("pebble", "dask")]
    by = {(r["engine"], r["workers"]): r for r in runs}
    for n in counts:
        by["dask", n]["wall_vs_pebble"] = round(by["dask", n]["wall_s"] / by["pebble", n]["wall_s"], 3)
    for engine in ("pebble", "dask"):
        for n in counts[1:]:
            first = by[engine, counts[0]]["wall_s"]
            by[engine, n]["speedup_vs_%d" % counts[0]] = round(first / by[engine, n]["wall_s"], 3)
    print(json.dumps({"codec": args.codec, "images": len(images), "rate_points": rates, "tasks": len(images) * len(rates),
                      "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
