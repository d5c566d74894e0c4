"""Harness overhead: wall time of a sweep against the sum of its items' pure encode + decode + metric times.

    python benchmarks/harness_overhead.py --kodak ../shared/datasets/kodak --qualities 10,20,...,100

Runs the same JPEG sweep over Kodak with 1 and then 2 worker processes, each into a fresh store, and prints
overhead = wall / sum(work) - 1 for one worker and the speed-up of two workers over one, measured side by side,
with each run's CPU time (parent and workers) and threads per worker (cores // workers unless
``--threads-per-worker`` is given). ``benchmarks/harness_vs_compressai.py`` alternates the settings over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
from pathlib import Path

from cdc_bench.executors.local import ProcessExecutor
from cdc_bench.datasets.images import IMAGE_SUFFIXES
from cdc_bench.sweep import api


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the pool's workers, once the pool is closed)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/kodak")
    parser.add_argument("--codec", default="jpeg")
    parser.add_argument("--qualities", default="10,20,30,40,50,60,70,80,90,95")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--threads-per-worker", type=int, default=None, help="default: cores // workers")
    args = parser.parse_args()
    import torch  # noqa: F401 - as `cdc-bench run` (--device auto) has it imported before it forks the workers;
    # without it each worker imports torch itself (~1 s CPU), a fixed cost that is not the sweep's.

    images = [(p.stem, p) for p in sorted(args.kodak.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    rates = [int(q) for q in args.qualities.split(",")]
    report = {"codec": args.codec, "images": len(images), "rate_points": rates, "cores": os.cpu_count(), "runs": []}
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as out:
            executor = ProcessExecutor(workers, args.threads_per_worker)
            cpu = _cpu_s()
            # The library call `cdc-bench run` makes: the same plans, keys and store (pre-flight included).
            summary = api.run([f"folder:{args.kodak}"], [args.codec], qualities=rates, out=out, executor=executor,
                              timeout=None).summary
            report["runs"].append({"workers": workers, "threads_per_worker": executor.threads, "items": summary.ok,
                                   "failed": summary.failed, "wall_s": summary.wall_s, "cpu_s": _cpu_s() - cpu,
                                   "work_s": summary.work_s, "overhead": summary.wall_s / summary.work_s - 1.0})
    one = report["runs"][0]
    for run in report["runs"]:
        run["speedup_vs_first"] = one["wall_s"] / run["wall_s"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
