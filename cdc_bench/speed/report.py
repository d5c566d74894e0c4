"""Saving and loading speed reports (JSON), with errors that name the file and what is wrong with it.

This module is the one home of the report format (``SCHEMA``) and of :class:`SpeedReportError`; the figures
(``cdc_bench.plots.speed``) read reports through it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import CdcBenchError


#: /2: encode timed once per size (``encode`` list), CPU and CUDA-event clocks beside wall, decode-only fits
SCHEMA = "cdc-bench-speed/2"
REQUIRED = ("schema", "codec", "env", "settings", "encode", "rows")


class SpeedReportError(CdcBenchError, ValueError):
    """A saved speed report cannot be read or is not a cdc-bench speed report; the message names the file."""

    exit_code = 2


def save_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report atomically (a half-written file would break a later ``--compare``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def load_report(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpeedReportError(f"{path}: no such file (write one with cdc-bench speed ... --out {path})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SpeedReportError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(report, dict):
        raise SpeedReportError(f"{path}: not a cdc-bench speed report (top level is not an object)")
    if report.get("schema", SCHEMA) != SCHEMA:
        raise SpeedReportError(f"{path}: report format {report['schema']!r}, this version reads {SCHEMA!r} "
                               "(encode timed once per size, CPU time beside wall time); measure the baseline "
                               "again with this version")
    missing = [key for key in REQUIRED if key not in report]
    if missing:
        raise SpeedReportError(f"{path}: not a cdc-bench speed report (missing {', '.join(missing)})")
    for i, row in enumerate(report["rows"]):
        for key in ("width", "height", "steps", "decode"):
            if key not in row:
                raise SpeedReportError(f"{path}: row {i} has no {key!r}")
    for i, row in enumerate(report["encode"]):
        for key in ("width", "height", "encode"):
            if key not in row:
                raise SpeedReportError(f"{path}: encode row {i} has no {key!r}")
    return report
