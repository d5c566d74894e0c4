"""The results store: one SQLite file per output folder, crash-safe and resumable.

SQLite in WAL mode (standard library) gives atomic row writes, so a killed run never leaves a half-written row,
and several runs can write into one store at once. Each result is one row keyed by
``(dataset, image, codec, options, quality)``; metric columns are added on first use, so the table stays tidy
(one column per metric) as metrics are added. ``results.csv`` beside it is rewritten atomically for people who
just want a CSV.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

DB_NAME = "results.sqlite"
CSV_NAME = "results.csv"
KEY = ("dataset", "image", "codec", "options", "quality")
BASE_COLUMNS: dict[str, str] = {
    "dataset": "TEXT NOT NULL",
    "image": "TEXT NOT NULL",
    "codec": "TEXT NOT NULL",
    "options": "TEXT NOT NULL",
    "quality": "TEXT NOT NULL",
    "preprocess": "TEXT",
    "height": "INTEGER",
    "width": "INTEGER",
    "bytes": "INTEGER",
    "bpp": "REAL",
    "bpp_estimated": "REAL",
    "psnr": "REAL",
    "ms_ssim": "REAL",
    "encode_s": "REAL",
    "decode_s": "REAL",
    "metrics_s": "REAL",
    "status": "TEXT NOT NULL",
    "error": "TEXT",
    "warnings": "TEXT",
    "run_id": "TEXT",
    "finished_at": "TEXT",
}
DATASET_METRIC_KEY = ("dataset", "codec", "options", "quality", "metric", "protocol")
DATASET_METRIC_COLUMNS: dict[str, str] = {
    "dataset": "TEXT NOT NULL", "codec": "TEXT NOT NULL", "options": "TEXT NOT NULL", "quality": "TEXT NOT NULL",
    "metric": "TEXT NOT NULL", "protocol": "TEXT NOT NULL", "value": "REAL", "std": "REAL",
    "n_images": "INTEGER", "n_patches": "INTEGER", "feature_extractor": "TEXT", "computed_at": "TEXT",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quality_text(rate: Any) -> str:
    """The stored form of a rate point: ``5``, ``0.0032``, or a checkpoint name."""
    if isinstance(rate, float) and rate.is_integer() and not isinstance(rate, bool):
        return repr(rate)
    return str(rate)


def item_key(dataset: str, image: str, codec: str, options: str, quality: str) -> str:
    """A short stable id of one result row, used to name per-item files (features, reconstructions)."""
    return hashlib.sha1("\x1f".join((dataset, image, codec, options, quality)).encode()).hexdigest()[:16]


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", part)


def recon_path(out_dir: str | Path, dataset: str, codec: str, options: str, quality: str, image: str) -> Path:
    """Where ``--save-recon`` keeps the reconstruction of one item."""
    opts = hashlib.sha1(options.encode()).hexdigest()[:8]
    return Path(out_dir) / "recon" / _safe(dataset) / _safe(codec) / opts / _safe(quality) / f"{_safe(image)}.png"


class ResultsStore:
    """Rows of results under ``out_dir``. Safe to open from several processes at once."""

    def __init__(self, out_dir: str | Path, create: bool = True):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / DB_NAME
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no results in {self.out_dir} (expected {self.path}); run `cdc-bench run --out {self.out_dir}` first")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._create()

    # -- schema ---------------------------------------------------------------------------------------------
    def _create(self) -> None:
        cols = ", ".join(f"{k} {t}" for k, t in BASE_COLUMNS.items())
        dcols = ", ".join(f"{k} {t}" for k, t in DATASET_METRIC_COLUMNS.items())
        with self._write():
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS results ({cols}, PRIMARY KEY ({', '.join(KEY)}))")
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS dataset_metrics ({dcols}, "
                               f"PRIMARY KEY ({', '.join(DATASET_METRIC_KEY)}))")
            self._conn.execute("CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT, "
                               "ended_at TEXT, manifest TEXT NOT NULL)")

    def _columns(self, table: str) -> list[str]:
        return [row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")]

    def _ensure_columns(self, table: str, row: Mapping[str, Any]) -> None:
        existing = set(self._columns(table))
        for name, value in row.items():
            if name in existing:
                continue
            if not _IDENT.match(name):
                raise ValueError(f"invalid column name {name!r}")
            kind = "REAL" if isinstance(value, (int, float)) and not isinstance(value, bool) else "TEXT"
            try:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as err:  # another process added it first
                if "duplicate column" not in str(err):
                    raise

    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type, *_):
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _write(self) -> "_Tx":
        return self._Tx(self._conn)

    # -- rows -----------------------------------------------------------------------------------------------
    def put_row(self, row: Mapping[str, Any]) -> None:
        """Insert or replace one result row (atomic)."""
        self.put_rows([row])

    def put_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = [dict(r) for r in rows]
        if not rows:
            return
        with self._write():
            for row in rows:
                missing = [k for k in KEY + ("status",) if row.get(k) is None]
                if missing:
                    raise ValueError(f"result row lacks {missing}: {row}")
                row = {k: _sql_value(v) for k, v in row.items()}
                self._ensure_columns("results", row)
                names = list(row)
                self._conn.execute(
                    f"INSERT OR REPLACE INTO results ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [row[n] for n in names])

    def finished_keys(self, statuses: tuple[str, ...] = ("ok", "error", "timeout")) -> set[tuple[str, ...]]:
        """Keys of rows that need no recomputation (by default: every row already written)."""
        marks = ", ".join("?" * len(statuses))
        cur = self._conn.execute(f"SELECT {', '.join(KEY)} FROM results WHERE status IN ({marks})", statuses)
        return {tuple(r) for r in cur}

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame (``quality`` numeric where every value is a number)."""
        df = pd.read_sql_query("SELECT * FROM results ORDER BY dataset, codec, options, image", self._conn)
        return _numeric_quality(df)

    # -- dataset-level metrics ------------------------------------------------------------------------------
    def put_dataset_metric(self, row: Mapping[str, Any]) -> None:
        row = {k: _sql_value(v) for k, v in row.items()}
        row.setdefault("computed_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with self._write():
            self._ensure_columns("dataset_metrics", row)
            names = list(row)
            self._conn.execute(
                f"INSERT OR REPLACE INTO dataset_metrics ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names])

    def dataset_metrics_frame(self) -> pd.DataFrame:
        df = pd.read_sql_query("SELECT * FROM dataset_metrics ORDER BY dataset, codec, options, metric", self._conn)
        return _numeric_quality(df)

    # -- runs -----------------------------------------------------------------------------------------------
    def start_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        with self._write():
            self._conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, NULL, ?)",
                               (run_id, manifest.get("started_at"), json.dumps(manifest, default=str)))

    def end_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        with self._write():
            self._conn.execute("UPDATE runs SET ended_at = ?, manifest = ? WHERE run_id = ?",
                               (manifest.get("ended_at"), json.dumps(manifest, default=str), run_id))

    def runs(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT manifest FROM runs ORDER BY started_at")
        return [json.loads(r[0]) for r in cur]

    # -- exports --------------------------------------------------------------------------------------------
    def write_csv(self, path: str | Path | None = None) -> Path:
        """Write all rows to ``results.csv`` (or ``path``) atomically."""
        path = Path(path) if path else self.out_dir / CSV_NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.frame().to_csv(tmp, index=False)
        tmp.replace(path)
        return path

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def _sql_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _numeric_quality(df: pd.DataFrame) -> pd.DataFrame:
    if "quality" in df and len(df):
        numeric = pd.to_numeric(df["quality"], errors="coerce")
        if numeric.notna().all():
            df["quality"] = numeric
    return df
