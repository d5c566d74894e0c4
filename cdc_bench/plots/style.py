"""One look for every figure: a fixed colour and marker per codec, paper sizes, fonts.

The colour of a codec never depends on which other codecs are in the figure, so JPEG is the same grey in the RD
plot, the speed plot and the report. Codecs not listed get a colour from a stable hash of their name.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

COLUMN_WIDTH = 3.3   # in: one column of a two-column paper (NeurIPS, CVPR, ICML)
PAGE_WIDTH = 6.9     # in: full text width of the same templates
DPI = 300            # PNG resolution: sharp in print, still small files

# Colours: Okabe-Ito / Paul Tol colour-blind-safe hues for the codecs a figure usually shows together.
_CODECS: dict[str, tuple[str, str]] = {
    "cdc":        ("#D55E00", "o"),
    "cdc-eps":    ("#CC79A7", "h"),
    "hific":      ("#009E73", "s"),
    "msillm":     ("#0072B2", "D"),
    "nogan":      ("#56B4E9", "d"),
    "compressai": ("#882255", "P"),
    "bpg":        ("#E69F00", "v"),
    "hevc":       ("#E69F00", "^"),
    "vtm":        ("#AA4499", "<"),
    "hm":         ("#DDCC77", ">"),
    "av1":        ("#117733", "X"),
    "avif":       ("#117733", "X"),
    "jpegxl":     ("#44AA99", "*"),
    "jpeg2000":   ("#332288", "p"),
    "webp":       ("#999933", "8"),
    "jpeg":       ("#777777", "H"),
}
# Names used by published result files, mapped to the codec they show (so published BPG wears BPG's colour).
_ALIASES = {
    "bpg_444_x265_ycbcr": "bpg", "bpg 8b 444 x265 ycbcr": "bpg", "ms-illm": "msillm", "no-gan": "nogan",
    "cdc-x": "cdc", "x-param": "cdc", "eps-param": "cdc-eps", "jpeg 2000": "jpeg2000", "jpeg-xl": "jpegxl",
}
_PALETTE = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB", "#000000",
            "#EE7733", "#0077BB", "#33BBEE", "#EE3377", "#CC3311", "#009988")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")
# Line styles for several option sets of one codec; dashed is reserved for published curves.
OPTION_LINESTYLES = ("-", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 2)))
PUBLISHED_LINESTYLE = "--"


def codec_key(name: str) -> str:
    """The style key of a codec or published curve name: ``compressai:mbt2018`` keeps its variant."""
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def codec_style(name: str) -> dict[str, str]:
    """``{"color", "marker"}`` of a codec: fixed for known codecs, a stable hash for the rest."""
    key = codec_key(name)
    if key in _CODECS:
        color, marker = _CODECS[key]
        return {"color": color, "marker": marker}
    base = key.split(":", 1)[0]
    digest = int(hashlib.sha1(key.encode()).hexdigest(), 16)
    if base in _CODECS and base != key:  # a family variant: the family's marker, its own colour
        return {"color": _PALETTE[digest % len(_PALETTE)], "marker": _CODECS[base][1]}
    return {"color": _PALETTE[digest % len(_PALETTE)], "marker": _MARKERS[(digest // 7) % len(_MARKERS)]}


def rc_params(width: float = COLUMN_WIDTH) -> dict:
    """Matplotlib settings sized for print: 8 pt text in a column figure, 9 pt across a page.

    Type 42 (TrueType) fonts keep text selectable in the PDF and are what conference checkers accept
    (Type 3 fonts are rejected by several of them).
    """
    base = 8 if width <= 4 else 9
    return {
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
        "font.size": base,
        "axes.titlesize": base,
        "axes.labelsize": base,
        "xtick.labelsize": base - 1,
        "ytick.labelsize": base - 1,
        "legend.fontsize": base - 1.5,
        "legend.frameon": False,
        "lines.linewidth": 1.0,
        "lines.markersize": 3.5,
        "axes.linewidth": 0.6,
        "axes.grid": True,
        "grid.linewidth": 0.4,
        "grid.alpha": 0.4,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "none",
        "savefig.dpi": DPI,
        "figure.dpi": 100,
    }


@contextmanager
def paper_style(width: float = COLUMN_WIDTH) -> Iterator[None]:
    """Apply :func:`rc_params` for the figures made inside the block (headless backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with plt.rc_context(rc_params(width)):
        yield


def save_figure(fig, stem, formats: tuple[str, ...] | list[str], caption: str | None = None) -> list:
    """Save ``fig`` as ``stem.<fmt>`` for each format at its exact size (no tight bbox: the width is the
    width the paper asked for) and close it. Returns the paths written (the figures). A ``caption`` is written
    beside them as ``stem.caption.txt`` (:mod:`cdc_bench.plots.captions`)."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        fmt = fmt.strip().lower().lstrip(".")
        if fmt not in ("pdf", "png", "svg"):
            raise ValueError(f"unknown figure format {fmt!r}; use pdf, png or svg")
        path = stem.parent / f"{stem.name}.{fmt}"  # not with_suffix: stems may hold dots ("0.1bpp")
        fig.savefig(path, format=fmt, dpi=DPI)
        paths.append(path)
    plt.close(fig)
    if caption:
        from .captions import write_caption

        write_caption(stem, caption)
    return paths
