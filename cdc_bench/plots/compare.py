"""Visual comparison: the same crop of one image across codecs near one bitrate, original first.

For each (codec, options) the row of this image matched to the target bitrate is shown when the sweep ran with
``--target-bpp`` at that target; otherwise the rate point whose bpp is nearest to the target (the nearest of the
points that were run). Each tile says its real bpp and metric values, and the command says which kind it is.
Reconstructions come from the runner's ``--save-recon`` files (:func:`cdc_bench.store.results.recon_path`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import MetricInfo
from ..errors import ConfigError
from ..analysis.curves import curve_label, curve_labels, legend_label, ok_rows
from .captions import RATE_TEXT, preprocess_text, sentences
from .style import PAGE_WIDTH, codec_style, paper_style, save_figure


class CompareError(ConfigError, ValueError):
    """A comparison that cannot be made; the message names the item and the fix."""


@dataclass
class Tile:
    title: str
    image: np.ndarray        # the crop, H x W x 3 uint8
    color: str = "#000000"


def matched_rows(frame: pd.DataFrame, image: str, target_bpp: float, dataset: str | None = None,
                 codecs: Sequence[str] | None = None, out_dir: str | Path | None = None,
                 notes: list[str] | None = None) -> pd.DataFrame:
    """Per (codec, options), the row of ``image`` matched to ``target_bpp`` (``--target-bpp`` rows), else the one
    whose bpp is closest to it; sorted by bpp. Column ``matched`` says which.

    With ``out_dir``, only rows whose reconstruction is saved there are chosen among: where the nearest point has
    none, the nearest one that has is taken (``notes`` says so), and a curve with none at all is left out (its
    note names the command that saves them)."""
    rows, _ = ok_rows(frame)
    rows = rows[rows["image"] == image]
    if rows.empty:
        known = ", ".join(sorted(frame["image"].astype(str).unique())[:10]) if len(frame) else "(no rows)"
        raise CompareError(f"no successful results for image {image!r}; images in the results: {known}")
    datasets = sorted(rows["dataset"].unique())
    if dataset is None and len(datasets) > 1:
        raise CompareError(f"image {image!r} is in several datasets ({', '.join(datasets)}); pass --dataset")
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
        if rows.empty:
            raise CompareError(f"image {image!r} has no results in dataset {dataset!r}; it is in {', '.join(datasets)}")
    rows = rows.assign(_gap=(rows["bpp"] - target_bpp).abs(), label=curve_labels(rows))
    if codecs:  # after labelling, so a tile is named the same with or without the filter
        rows = rows[rows["codec"].isin(codecs)]
        if rows.empty:
            raise CompareError(f"none of {', '.join(codecs)} has results for {image!r}")
    targets = pd.to_numeric(rows["target_bpp"], errors="coerce") if "target_bpp" in rows else None
    matched = (targets.sub(target_bpp).abs() < 1e-9) if targets is not None else pd.Series(False, rows.index)
    rows = rows.assign(matched=matched, _rank=rows["_gap"] + (~matched) * 1e9)
    best = rows.loc[rows.groupby("label", sort=False)["_rank"].idxmin()]
    if out_dir is not None:
        best = _with_saved_recon(rows, best, out_dir, target_bpp, notes if notes is not None else [])
    return best.drop(columns=["_gap", "_rank"]).sort_values(["bpp", "codec"]).reset_index(drop=True)


def _with_saved_recon(rows: pd.DataFrame, best: pd.DataFrame, out_dir, target_bpp: float, notes: list[str]
                      ) -> pd.DataFrame:
    from ..store.results import recon_path_for

    saved = pd.Series([recon_path_for(r.get("_out_dir") or out_dir, r).is_file() for _, r in rows.iterrows()],
                      index=rows.index)
    chosen = []
    for label, first in best.groupby("label", sort=False):
        nearest = first.iloc[0]
        if saved[first.index[0]]:
            chosen.append(first.index[0])
            continue
        mine = rows[(rows["label"] == label) & saved]
        if mine.empty:
            notes.append(f"{label}: left out, no rate point of it has a saved reconstruction of {nearest['image']}; "
                         "re-run its sweep with `cdc-bench run ... --save-recon` into the same --out (finished "
                         "items are not re-measured)")
            continue
        pick = mine["_rank"].idxmin()
        notes.append(f"{label}: its nearest rate point {nearest['quality']} ({nearest['bpp']:.4f} bpp) has no saved "
                     f"reconstruction; shown at {rows.loc[pick, 'quality']} ({rows.loc[pick, 'bpp']:.4f} bpp), the "
                     f"nearest to {target_bpp:g} bpp that has one (`cdc-bench run ... --save-recon` saves the others)")
        chosen.append(pick)
    if not chosen:
        raise CompareError("no codec has a saved reconstruction of this image; re-run the sweep with "
                           "`cdc-bench run ... --save-recon` into the same --out")
    return rows.loc[chosen]


def rate_text(codec: str, quality) -> str:
    """A rate point in the codec's own terms: ``compression ratio 100`` for JPEG 2000, ``quality 50`` for JPEG,
    ``lambda 0.0032`` for CDC (from the codec's ``rate_label``), never a bare ``q=``."""
    try:
        from ..codecs.registry import get_codec_class

        label = get_codec_class(str(codec)).rate_label
    except Exception:  # a codec no longer installed still has its rows
        label = "rate point"
    return f"{label.split(' (')[0].strip() or 'rate point'} {quality}"


def crop_box(shape: tuple[int, ...], size: int, at: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a ``size`` square: centred, or with its top-left corner at ``at`` (x, y)."""
    h, w = shape[:2]
    ch, cw = min(size, h), min(size, w)
    if at is None:
        return (h - ch) // 2, (w - cw) // 2, ch, cw
    x, y = at
    if not (0 <= x <= w - cw and 0 <= y <= h - ch):
        raise CompareError(f"crop {size}px at x={x}, y={y} does not fit in the {w}x{h} image "
                           f"(x must be in 0..{w - cw}, y in 0..{h - ch})")
    return y, x, ch, cw


def load_recon(out_dir: str | Path, row: pd.Series) -> np.ndarray:
    from ..store.results import recon_path_for

    path = recon_path_for(row.get("_out_dir") or out_dir, row)  # the row's whole key names the file
    if not path.is_file():
        raise CompareError(f"no saved reconstruction of {row['dataset']}/{row['image']} by {row['codec']} at "
                           f"{row['quality']} (expected {path}); re-run that sweep with `cdc-bench run ... "
                           "--save-recon` (finished items are kept, add --retry-errors only if needed)")
    from ..datasets.images import ImageReadError, read_image

    try:  # the input pixel limit holds here too: a store's PNG may claim any size
        return read_image(path)[0]
    except ImageReadError as err:
        raise CompareError(f"saved reconstruction not used: {err}") from None


def tile_title(row: pd.Series, metrics: Sequence[MetricInfo]) -> str:
    """Three short lines (name, rate, metrics) so four tiles fit side by side on a 6.9 in page."""
    values = []
    for m in metrics:
        value = row.get(m.column)
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        values.append(f"{value:.{m.precision}f} {m.unit}" if m.unit else f"{m.label} {value:.3f}")
    label = row.get("label") if isinstance(row.get("label"), str) else curve_label(row["codec"], row["options"])
    label = legend_label(label, row["codec"])
    return "\n".join([label, f"{row['bpp']:.3f} bpp", " · ".join(values)]).rstrip()


def comparison_tiles(out_dir: str | Path, rows: pd.DataFrame, original: np.ndarray, size: int,
                     at: tuple[int, int] | None, metrics: Sequence[MetricInfo]) -> list[Tile]:
    top, left, ch, cw = crop_box(original.shape, size, at)
    tiles = [Tile(f"Original\n{original.shape[1]}×{original.shape[0]}\ncrop x={left}, y={top}",
                  original[top:top + ch, left:left + cw])]
    for _, row in rows.iterrows():
        recon = load_recon(out_dir, row)
        if recon.shape != original.shape:
            raise CompareError(f"{row['codec']} reconstruction of {row['image']} is {recon.shape[1]}x"
                               f"{recon.shape[0]} but the original is {original.shape[1]}x{original.shape[0]}; "
                               "is --original the image the run used (same preprocessing)?")
        tiles.append(Tile(tile_title(row, metrics), recon[top:top + ch, left:left + cw],
                          codec_style(row["codec"])["color"]))
    return tiles


def compare_caption(rows: pd.DataFrame, image: str, target_bpp: float, crop: int) -> str:
    """The caption of a comparison: which rate point each tile is, how the crops are shown, the preprocessing."""
    matched = bool(rows["matched"].any()) if "matched" in rows else False
    chosen = ("matched to the target by `cdc-bench run --target-bpp`" if matched
              else "its rate point whose bpp on this image is nearest to the target")
    return sentences([f"{image}: the same crop of at most {crop} x {crop} pixels of the original and of each codec "
                      f"near {target_bpp:g} bpp ({chosen}); each tile names its real bpp", "Crops are shown "
                      "pixel for pixel (nearest neighbour, no resampling) from the reconstructions saved by "
                      "--save-recon (lossless PNG)", preprocess_text(rows.get("preprocess", ())), RATE_TEXT])


def plot_tiles(tiles: Sequence[Tile], stem: str | Path, formats: Sequence[str] = ("png", "pdf"),
               width: float = PAGE_WIDTH, columns: int | None = None, caption: str | None = None) -> list[Path]:
    """A grid of crops, titles above, no resampling blur (nearest neighbour), at exactly ``width`` inches."""
    n = len(tiles)
    cols = columns or min(n, 4 if width > 4 else 2)
    rows = math.ceil(n / cols)
    h, w = tiles[0].image.shape[:2]
    cell = width / cols
    with paper_style(width):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(rows, cols, figsize=(width, rows * (cell * h / w + 0.42)), squeeze=False,
                                 layout="constrained")
        for ax in axes.flat:
            ax.axis("off")
        for ax, tile in zip(axes.flat, tiles):
            ax.imshow(tile.image, interpolation="nearest")
            ax.set_title(tile.title, fontsize=6, color=tile.color, pad=2, linespacing=1.1)
        return save_figure(fig, stem, formats, caption)
