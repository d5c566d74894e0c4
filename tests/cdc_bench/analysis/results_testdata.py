"""Real measurements for the figure and table tests: Pillow JPEG and WebP on centre crops of Kodak images.

Nothing is invented: every bpp comes from real encoded bytes and every PSNR / MS-SSIM from the real decode,
written through the real results store exactly as the runner writes it (with reconstructions, as --save-recon).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

CROP = 192            # > 160 px, so MS-SSIM is defined; small, so the tests stay fast
IMAGES = ("kodim23", "kodim01")
QUALITIES = {"jpeg": (10, 30, 50, 70, 90), "webp": (10, 30, 50, 70, 90)}
FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}


def encode_decode(image: np.ndarray, codec: str, quality: int) -> tuple[bytes, np.ndarray]:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=FORMATS[codec], quality=quality)
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def make_results(out_dir: Path, kodak_dir: Path, with_error: bool = True) -> Path:
    """Write a small real results store under ``out_dir`` and return it."""
    from cdc_bench.store.results import ResultsStore

    import torch

    pre = f"center-crop:{CROP}"
    rows = []
    # One thread: on a busy 2-core machine torch's thread pool spins and MS-SSIM of a tiny crop takes seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _measure(out_dir, kodak_dir, pre, rows)
    finally:
        torch.set_num_threads(threads)
    if with_error:  # a failed item, as the runner records it: the figures must leave it out
        rows.append({"dataset": "kodak", "image": IMAGES[0], "codec": "webp", "options": "{}", "quality": "95",
                     "status": "error", "error": "test: simulated crash"})
    with ResultsStore(out_dir) as store:
        store.start_run("test-run", {"run_id": "test-run", "command": ["cdc-bench", "run", "--codecs", "jpeg,webp"],
                                     "started_at": "2026-01-01T00:00:00", "device": "cpu",
                                     "git": {"commit": "0" * 40, "dirty": False}})
        store.put_rows(rows)
        store.write_csv()
    return out_dir


def _measure(out_dir: Path, kodak_dir: Path, pre: str, rows: list) -> None:
    from cdc_bench.datasets.images import load_image, save_png
    from cdc_bench.metrics.distortion import ms_ssim, psnr
    from cdc_bench.store.results import quality_text, recon_path_for

    for name in IMAGES:
        original = load_image(kodak_dir / f"{name}.png", pre)[0]
        for codec, qualities in QUALITIES.items():
            for q in qualities:
                data, recon = encode_decode(original, codec, q)
                recon = np.array(recon)  # writable, as torch wants
                h, w = original.shape[:2]
                row = {"dataset": "kodak", "image": name, "codec": codec, "options": "{}",
                       "quality": quality_text(q), "preprocess": pre, "device": "cpu", "height": h, "width": w,
                       "bytes": len(data), "bpp": 8 * len(data) / (h * w), "psnr": psnr(original, recon),
                       "ms_ssim": ms_ssim(original, recon), "status": "ok", "run_id": "test-run"}
                rows.append(row)
                save_png(recon, recon_path_for(out_dir, row))  # where the runner keeps it (protocol in the path)


def load_frame(out_dir: Path):
    from cdc_bench.store.results import ResultsStore

    with ResultsStore(out_dir, create=False) as store:
        return store.frame()


def write_originals(dest: Path, kodak_dir: Path) -> Path:
    """The crops the codecs saw, as files (the --original folder a user would pass)."""
    from cdc_bench.datasets.images import load_image, save_png

    for name in IMAGES:
        save_png(load_image(kodak_dir / f"{name}.png", f"center-crop:{CROP}")[0], dest / f"{name}.png")
    return dest


def speed_json(path: Path) -> Path:
    """A speed report in the speed command's schema, from real timings of a real workload (JPEG decodes of one
    crop repeated ``steps`` times): decode time grows linearly with steps, as for a diffusion decoder."""
    import time

    from cdc_bench.speed.fit import fit_linear

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data, _ = encode_decode(image, "jpeg", 50)
    rows = []
    for steps in (2, 4, 8):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(steps):
                Image.open(io.BytesIO(data)).convert("RGB").load()
            times.append(time.perf_counter() - t0)
        times.sort()
        rows.append({"width": 64, "height": 64, "steps": steps,
                     "decode": {"median": times[1], "q1": times[0], "q3": times[2]}})
    fit = fit_linear([r["steps"] for r in rows], [r["decode"]["median"] for r in rows])
    report = {"schema": "cdc-bench-speed/1", "codec": "cdc", "rows": rows,
              "fits": [{"width": 64, "height": 64, "phase": "decode", **fit.as_dict()}]}
    path.write_text(json.dumps(report))
    return path


def shared_results(tmp_path_factory, kodak_dir: Path) -> Path:
    """One results folder per test session (building it takes seconds); tests must not write into it except
    under their own sub-folders."""
    out = tmp_path_factory.getbasetemp() / "plots-shared-results"
    if not (out / ".complete").exists():
        make_results(out, kodak_dir)
        (out / ".complete").write_text("ok")
    return out


def add_dataset_metrics(out: Path, n_patches: int = 96) -> None:
    """FID and KID of every (codec, quality) group, computed by the real Fréchet / KID code on stand-in
    feature vectors (the Inception step is tested with the metrics), stored as the FID module stores them."""
    from cdc_bench.metrics.frechet import fid_from_features, kernel_distance
    from cdc_bench.store.results import ResultsStore

    rng = np.random.default_rng(0)
    with ResultsStore(out) as store:  # writes: create=False opens read-only
        frame = store.frame()
        for (dataset, codec, options, quality, preprocess), _ in frame[frame["status"] == "ok"].groupby(
                ["dataset", "codec", "options", "quality", "preprocess"]):
            orig = rng.normal(0, 1, (n_patches, 16))
            recon = orig + rng.normal(0, 200.0 / (float(quality) + 10), orig.shape)
            base = {"dataset": dataset, "codec": codec, "options": options, "quality": str(quality),
                    "preprocess": preprocess, "device": "cpu", "protocol": "fid256", "n_images": 2, "n_patches": n_patches, "feature_extractor": "test"}
            store.put_dataset_metric(dict(base, metric="fid", value=fid_from_features(orig, recon), std=None))
            kid, std = kernel_distance(orig, recon)
            store.put_dataset_metric(dict(base, metric="kid", value=kid, std=std))


def renamed_dataset(src: Path, dest: Path, dataset: str) -> Path:
    """A copy of the results folder ``src`` whose dataset is called ``dataset`` (a hostile store: ``../../x``),
    its reconstructions moved to where the store looks for them under that name."""
    import shutil
    import sqlite3

    from cdc_bench.store.key import file_stem as file_name
    from cdc_bench.store.results import DB_NAME

    shutil.copytree(src, dest)
    with sqlite3.connect(dest / DB_NAME) as conn:
        conn.execute("UPDATE results SET dataset = ?", (dataset,))
    (dest / "recon" / "kodak").rename(dest / "recon" / file_name(dataset))
    return dest
