"""The run manifest names the codec libraries behind the numbers, as the libraries themselves report them."""

from __future__ import annotations


def test_manifest_records_codec_library_versions():
    from PIL import features

    from cdc_bench.provenance import build_manifest

    manifest = build_manifest("test-run", {}, "cpu")
    libs = manifest["codec_libraries"]
    assert libs["libjpeg"] == features.version("jpg") and libs["libwebp"] == features.version("webp")
    assert libs["openjpeg"] == features.version("jpg_2000")
    assert set(libs) >= {"libjpeg-turbo", "libavif", "libheif", "x265", "libde265"}
    try:
        import pillow_heif
    except ImportError:
        return
    assert libs["x265"] == pillow_heif.libheif_info()["encoders"].get("x265")
    assert libs["libde265"] == pillow_heif.libheif_info()["decoders"].get("libde265")
