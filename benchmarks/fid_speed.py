"""FID/256 per item, the path issue 22 started from against today's, side by side in one process, on Kodak.

    python benchmarks/fid_speed.py                      # writes results/fid_speed.json
    python benchmarks/fid_speed.py --repeats 3 --images 4 --out results/fid_speed.json

An item is one (image, rate point): the worker's ``item_features`` on the original and its JPEG reconstruction.
Each scenario runs both paths on the same items with fresh per-worker caches, in the order a sweep hands them to a
worker, alternating old and new ``--repeats`` times; the JSON keeps every time, the median ratio, the machine, its
load average before and after, and torch's threads. Scenarios:

* ``sweep``: an image's rate points one after another (``cdc-bench run``'s plan order);
* ``batch``: one rate point over all images, then the next (``cdc-bench run --batch N``'s order), over
  ``--batch-images`` images (the old path kept 4 originals, so it re-extracted them past 4 images);
* ``stored`` and ``batch_stored``: the same two orders when the results store already holds the originals'
  features (a second codec in the same store, or a rerun that adds rate points): today's path extracts only the
  reconstruction's, the old one had no such store;
* ``floor``: Inception alone on each item's reconstruction patches, already resized (what every exact path must
  still compute), as a share of today's item time in the ``stored`` order.

The old path is the one of 90349d5, where issue 22 was measured (87840a6 has the same FID code).

The old path is kept here as it was (the TorchScript file under ``no_grad``, two calls per item, 4 originals
kept); both use the same Inception file, loaded once.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
KODAK = Path(os.environ.get("CDC_BENCH_SHARED", ROOT.parent / "shared")) / "datasets" / "kodak"
QUALITIES = (10, 30, 70)


def old_features(layers, images, batch_size: int = 32) -> np.ndarray:
    """``InceptionExtractor.features`` as of 90349d5 / 87840a6."""
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    out = np.zeros((len(images), 2048), dtype=np.float32)
    for start in range(0, len(images), max(1, batch_size)):
        chunk = images[start:start + batch_size]
        batch = np.stack([resize(np.asarray(im, dtype=np.uint8)) for im in chunk])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2)
        with torch.no_grad():
            feats = layers((x - 128) / 128).reshape(len(chunk), 2048)
        out[start:start + len(chunk)] = feats.float().cpu().numpy()
    return out


def old_item_features(layers, cache: OrderedDict, original, recon):
    """``metrics.fid.item_features`` as of 90349d5 / 87840a6 (no stored originals): the original's features kept
    for 4 images."""
    from cdc_bench.metrics.fid import image_digest
    from cdc_bench.metrics.patches import extract_patches

    key = image_digest(original)
    if key not in cache:
        cache[key] = old_features(layers, extract_patches(original))
        while len(cache) > 4:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return old_features(layers, extract_patches(recon)), cache[key]


def new_item_features(original, recon, stored: str | None = None):
    from cdc_bench.metrics import fid

    item = fid.item_features(original, recon, stored_original=stored)
    return item.features, item.original if item.original is not None else _ORIGINAL_OF[fid.image_digest(original)]


#: stored scenarios: the originals' features as the store holds them (computed once, outside the timing)
_ORIGINAL_OF: dict[str, np.ndarray] = {}


def kodak_items(n_images: int, order: str) -> list[tuple[np.ndarray, np.ndarray]]:
    from PIL import Image

    from cdc_bench.datasets.images import read_image

    paths = sorted(KODAK.glob("kodim*.png"))[:n_images]
    if len(paths) < n_images:
        raise SystemExit(f"need {n_images} Kodak images in {KODAK} (set CDC_BENCH_SHARED)")
    originals = [read_image(path)[0] for path in paths]

    def jpeg(image, quality):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))

    pairs = {(i, q): (im, jpeg(im, q)) for i, im in enumerate(originals) for q in QUALITIES}
    keys = ([(i, q) for i in range(n_images) for q in QUALITIES] if order == "sweep" else
            [(i, q) for q in QUALITIES for i in range(n_images)])
    return [pairs[k] for k in keys]


def time_items(path: str, layers, items, stored: str | None = None) -> tuple[float, list]:
    from cdc_bench.metrics import fid

    fid._ORIGINALS.clear()   # a fresh worker for each run of each path
    cache: OrderedDict = OrderedDict()
    start = time.perf_counter()
    out = [old_item_features(layers, cache, o, r) if path == "old" else new_item_features(o, r, stored)
           for o, r in items]
    return (time.perf_counter() - start) / len(items), out


def store_originals(extractor, items) -> None:
    from cdc_bench.metrics import fid
    from cdc_bench.metrics.patches import extract_patches

    for original, _ in items:
        key = fid.image_digest(original)
        if key not in _ORIGINAL_OF:
            _ORIGINAL_OF[key] = extractor.features(extract_patches(original))


def floor(extractor, items, repeats: int) -> dict:
    """Inception alone on the reconstructions' resized patches (the work no exact path avoids), timed in turn with
    today's stored-order items so both see the same machine."""
    from cleanfid.resize import make_resizer

    from cdc_bench.metrics.patches import extract_patches

    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    batches = [torch.from_numpy(np.stack([resize(p) for p in extract_patches(r)])).permute(0, 3, 1, 2)
               for _, r in items]
    inception, item = [], []
    for _ in range(repeats):
        item.append(time_items("new", extractor.layers, items, extractor.name)[0])
        start = time.perf_counter()
        with torch.inference_mode():
            for x in batches:
                extractor.layers((x - 128) / 128)
        inception.append((time.perf_counter() - start) / len(items))
    share = statistics.median(inception) / statistics.median(item)
    print(f"floor: Inception alone {statistics.median(inception):.3f} s/item, today's stored-order item "
          f"{statistics.median(item):.3f} s: {share:.0%}", flush=True)
    return dict(items=len(items), inception_s_per_item=inception, item_s_per_item=item, share=share,
                patches_per_item=int(batches[0].shape[0]))


def scenario(name: str, layers, items, repeats: int, stored: str | None = None) -> dict:
    times: dict[str, list[float]] = {"old": [], "new": []}
    max_diff = 0.0
    for _ in range(repeats):
        per_old, old = time_items("old", layers, items)
        per_new, new = time_items("new", layers, items, stored)
        times["old"].append(per_old)
        times["new"].append(per_new)
        max_diff = max(max_diff, max(float(np.abs(a - b).max()) for pa, pb in zip(old, new) for a, b in zip(pa, pb)))
    ratios = [o / n for o, n in zip(times["old"], times["new"])]
    result = dict(items=len(items), old_s_per_item=times["old"], new_s_per_item=times["new"], ratios=ratios,
                  median_ratio=statistics.median(ratios), max_abs_feature_diff=max_diff)
    print(f"{name}: {len(items)} items, old {statistics.median(times['old']):.3f} s/item, "
          f"new {statistics.median(times['new']):.3f} s/item, median ratio {result['median_ratio']:.3f} "
          f"(max feature diff {max_diff:.2e})", flush=True)
    return result


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return dict(cpu=model, cores=os.cpu_count(), torch=torch.__version__, torch_threads=torch.get_num_threads(),
                python=platform.python_version(), platform=platform.platform())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batch-images", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "fid_speed.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from cdc_bench.metrics.inception import load_inception

    load_before = os.getloadavg()
    start = time.perf_counter()
    extractor = load_inception("cpu")
    load_s = time.perf_counter() - start
    print(f"{extractor.name}: loaded in {load_s:.1f} s; load {load_before}", flush=True)
    sweep_items = kodak_items(args.images, "sweep")
    warm = sweep_items[:1]
    time_items("old", extractor.layers, warm)   # first calls: the JIT's profiling runs, oneDNN's first packing
    time_items("new", extractor.layers, warm)
    batch_items = kodak_items(args.batch_images, "batch")
    report = dict(
        benchmark="FID/256 item features: the path of 90349d5 (issue 22's start) vs today's, one process, same items",
        dataset=f"kodak (first {args.images} images), JPEG q={','.join(map(str, QUALITIES))}",
        extractor=extractor.name, extractor_load_s=load_s, machine=machine(), load_before=load_before,
        sweep=scenario("sweep", extractor.layers, sweep_items, args.repeats),
        batch=scenario("batch", extractor.layers, batch_items, args.repeats))
    store_originals(extractor, sweep_items + batch_items)
    report["stored"] = scenario("stored", extractor.layers, sweep_items, args.repeats, extractor.name)
    report["batch_stored"] = scenario("batch_stored", extractor.layers, batch_items, args.repeats, extractor.name)
    report["floor"] = floor(extractor, sweep_items, args.repeats)
    report["batch"]["images"] = report["batch_stored"]["images"] = args.batch_images
    report["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"load after {report['load_after']}; wrote {args.out}")


if __name__ == "__main__":
    main()
