"""Curve names: a codec's display name in legends (hevc is x265 with BPG's settings), its registry name as the key."""

from __future__ import annotations

import pandas as pd
import pytest

from cdc_bench.analysis.curves import curve_labels, display_name, legend_label, metric_spec
from cdc_bench.codecs.base import Codec
from cdc_bench.codecs.registry import register, unregister

HEVC_LEGEND = "x265 with BPG's settings (HEIF)"


class _ThirdParty(Codec):
    name = "test-display-codec"
    display_name = "My Codec v2"


class _Variant(_ThirdParty):
    name = "test-display-variant"   # sets no display name: shows its own name, not its parent's


@pytest.fixture
def third_party():
    register(_ThirdParty)
    register(_Variant)
    yield
    unregister(_ThirdParty.name)
    unregister(_Variant.name)


def test_a_codec_class_declares_its_display_name_and_defaults_to_its_name(third_party):
    assert display_name("hevc") == HEVC_LEGEND
    assert display_name("jpeg") == "jpeg"                         # default: the registry name
    assert display_name("test-display-codec") == "My Codec v2"
    assert _Variant.display_name == display_name("test-display-variant") == "test-display-variant"
    assert display_name("not-installed-here") == "not-installed-here"   # rows of a codec this install lacks


def test_legends_show_the_display_name_while_the_label_stays_the_key():
    rows = pd.DataFrame({"codec": ["hevc", "hevc", "jpeg"],
                         "options": ['{"preset": "slow"}', '{"preset": "veryslow"}', "{}"]})
    labels = curve_labels(rows)
    assert labels == ["hevc (preset=slow)", "hevc (preset=veryslow)", "jpeg"]   # tables and --anchor use these
    assert legend_label(labels[0], "hevc") == f"{HEVC_LEGEND} (preset=slow)"
    assert legend_label("hevc [random weights]", "hevc") == f"{HEVC_LEGEND} [random weights]"
    assert legend_label("hevcx", "hevc") == "hevcx" and legend_label("jpeg", "jpeg") == "jpeg"


def test_the_rd_legend_names_hevc_as_what_it_is():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cdc_bench.plots.rd import rd_axes

    points = pd.DataFrame({"dataset": "toy", "codec": ["hevc", "hevc", "jpeg", "jpeg"], "label": ["hevc", "hevc",
                           "jpeg", "jpeg"], "bpp": [0.2, 0.5, 0.3, 0.6], "psnr": [30.0, 33.0, 28.0, 31.0]})
    fig, ax = plt.subplots()
    rd_axes(ax, points, metric_spec("psnr"))
    assert sorted(ax.get_legend_handles_labels()[1]) == sorted([HEVC_LEGEND, "jpeg"])
    plt.close(fig)
