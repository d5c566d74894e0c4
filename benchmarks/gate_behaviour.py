"""How the speed regression gate behaves on a busy machine: false alarms on identical code, catches of a slowdown.

    python benchmarks/gate_behaviour.py                       # 10 + 10 compares, a few minutes on 2 cores
    python benchmarks/gate_behaviour.py --iterations 1        # smoke run

Not a timed test: it measures the gate, not the codec. It records one baseline with ``cdc-bench speed --out``
(CDC with random weights, 64x64, steps 1,2,4), then starts a busy-loop process that keeps one core loaded and
runs ``--iterations`` pairs of compares against that baseline, alternating: the identical code, and the code
with the denoiser made ``--slowdown`` times slower through the test hook ``CDC_BENCH_TEST_SLOWDOWN`` (see
``cdc_bench.speed.slowdown``). Each compare is the real command in its own process; its exit status is the
verdict (0 pass, 1 regression). Goal: 0 failures of the identical code, every slowed run caught. It prints a
table (and writes JSON with ``--json``) with the decode interval of every compare and the wall-time ratio the
old gate would have judged.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SLOWDOWN_ENV = "CDC_BENCH_TEST_SLOWDOWN"


def _busy_loop() -> None:
    """Keep one core busy until terminated."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2147483648


def _speed_args(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "cdc_bench.cli", "speed", "-c", args.codec, "-o", f"{args.codec}.weights=random",
            "--steps", args.steps, "--size", args.size, "--repeats", str(args.repeats), "--warmup", "1",
            "--threads", str(args.threads), "--max-slowdown", str(args.max_slowdown), "--quiet"]


def _run(cmd: list[str], slowdown: float | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(SLOWDOWN_ENV, None)
    if slowdown is not None:
        env[SLOWDOWN_ENV] = str(slowdown)
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def _compare(args: argparse.Namespace, base: Path, out: Path, kind: str) -> dict[str, Any]:
    started = time.perf_counter()
    proc = _run(_speed_args(args) + ["--compare", str(base), "--out", str(out)],
                args.slowdown if kind == "slowed" else None)
    record: dict[str, Any] = {"kind": kind, "exit": proc.returncode, "seconds": time.perf_counter() - started}
    if proc.returncode not in (0, 1) or not out.exists():
        record["error"] = (proc.stdout + proc.stderr)[-2000:]
        return record
    report = json.loads(out.read_text())
    gate = {r["phase"]: r for r in report["comparison"]["rows"]}
    record.update({
        "clock": report["comparison"]["clock"],
        "decode_ratio": gate["decode"]["interval"]["ratio"],
        "decode_interval": [gate["decode"]["interval"]["low"], gate["decode"]["interval"]["high"]],
        "decode_wall_ratio": gate["decode"]["wall_ratio"],
        "encode_interval": [gate["encode"]["interval"]["low"], gate["encode"]["interval"]["high"]],
        "failed_units": [r["phase"] for r in report["comparison"]["rows"] if r["regressed"]],
        "load_peak": report["load"]["peak_1min"],
    })
    out.unlink()
    return record


def _table(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"{'compares':<28}{'n':>3}{'exit 1':>8}{'errors':>8}  {'decode ratio (cpu) median [min, max]':<38}"
             f"{'interval low [min, max]':<26}{'wall ratio median [min, max]':<30}{'load peak':>9}"]
    for kind, label in (("identical", "identical code, 1 core busy"),
                        ("slowed", f"denoiser x{args.slowdown:g}, 1 core busy")):
        rows = [r for r in records if r["kind"] == kind]
        ok = [r for r in rows if "error" not in r]
        fails = sum(r["exit"] == 1 for r in ok)
        errors = len(rows) - len(ok)

        def span(values: list[float]) -> str:
            return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]" if values else "-"

        lines.append(f"{label:<28}{len(rows):>3}{fails:>8}{errors:>8}  {span([r['decode_ratio'] for r in ok]):<38}"
                     f"{span([r['decode_interval'][0] for r in ok]):<26}"
                     f"{span([r['decode_wall_ratio'] for r in ok]):<30}"
                     f"{max((r['load_peak'] or 0 for r in ok), default=0):>9.2f}")
    lines.append(f"gate: fail when the 95% bootstrap interval's lower bound > {args.max_slowdown:g}; goal: identical "
                 f"0 x exit 1, slowed {sum(r['kind'] == 'slowed' for r in records)} x exit 1")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10, help="compares of each kind (10 for the README)")
    parser.add_argument("--codec", default="cdc")
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--steps", default="1,2,4")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads: 1 keeps CPU time free of OpenMP spin-waiting under contention")
    parser.add_argument("--slowdown", type=float, default=1.3, help="factor injected into the denoiser")
    parser.add_argument("--max-slowdown", type=float, default=1.10)
    parser.add_argument("--json", type=Path, default=None, help="write every compare's record here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gate-behaviour-") as tmp:
        base, out = Path(tmp) / "baseline.json", Path(tmp) / "new.json"
        print(f"baseline: {' '.join(_speed_args(args)[1:])} --out {base}", flush=True)
        proc = _run(_speed_args(args) + ["--out", str(base)], None)
        if proc.returncode != 0:
            sys.exit(f"the baseline run failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
        loader = multiprocessing.get_context("spawn").Process(target=_busy_loop, daemon=True)
        loader.start()
        records = []
        try:
            for i in range(args.iterations):
                for kind in ("identical", "slowed"):
                    record = _compare(args, base, out, kind)
                    records.append(record)
                    print(f"[{i + 1}/{args.iterations}] {kind:<9} exit {record['exit']}  "
                          + (f"decode {record['decode_ratio']:.3f} [{record['decode_interval'][0]:.3f}, "
                             f"{record['decode_interval'][1]:.3f}], wall {record['decode_wall_ratio']:.3f}, "
                             f"{record['seconds']:.0f} s" if "error" not in record else record["error"][-500:]),
                          flush=True)
        finally:
            loader.terminate()
            loader.join()
    print()
    print(_table(records, args))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "compares": records},
                                        indent=2) + "\n")
        print(f"records written to {args.json}")


if __name__ == "__main__":
    main()
