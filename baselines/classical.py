"""Classical image codecs through Pillow and its plug-ins: JPEG, WebP, JPEG 2000, JPEG XL, AVIF and HEVC intra.

Each adapter is a few lines of settings over :class:`baselines._pillow.PillowCodec` (CompressAI's
``utils/bench/codecs.py`` style). The bitstream is the file the library writes, so the byte count (and bpp)
includes the container: that is what a user would store. JPEG and WebP reproduce CompressAI's ``jpeg.json`` /
``webp.json`` settings (Pillow defaults at quality 5..95); ``hevc`` reproduces BPG 0.9.8's x265 settings through
libheif (pillow-heif) and is checked against CompressAI's ``bpg_444_x265_ycbcr.json`` on Kodak.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from cdc_bench.codecs.base import Availability, BitstreamError, Option, Rate

from ._pillow import DECODE_ERRORS, PillowCodec, check_decoded_size

#: CompressAI's 19 quality points for Pillow codecs (jpeg.json, webp.json)
QUALITIES_5_TO_95 = tuple(range(5, 100, 5))
#: CompressAI's BPG points (bpg_444_x265_ycbcr.json): -q 47, 42, ..., 12, low rate first
BPG_QPS = (47, 42, 37, 32, 27, 22, 17, 12)

_SUBSAMPLING = {"420": "4:2:0", "422": "4:2:2", "444": "4:4:4"}


class JPEG(PillowCodec):
    name = "jpeg"
    description = "JPEG (libjpeg-turbo via Pillow), as CompressAI's jpeg.json"
    rate = Rate.ints(1, 100, points=QUALITIES_5_TO_95)
    option_specs = {
        "subsampling": Option("420", "chroma subsampling (420 is Pillow's and CompressAI's default)",
                              choices=tuple(_SUBSAMPLING)),
        "optimize": Option(False, "optimised Huffman tables (off in CompressAI's bench)"),
    }
    details = ("Pillow JPEG, baseline sequential, standard Huffman tables, quality q (IJG scaling of the Annex K "
               "tables), YCbCr 4:2:0 unless subsampling is set; no metadata")
    pil_format = "JPEG"
    feature = "jpg"

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"quality": rate, "subsampling": _SUBSAMPLING[self.options["subsampling"]],
                "optimize": self.options["optimize"]}


class WebP(PillowCodec):
    name = "webp"
    description = "WebP lossy (libwebp via Pillow), as CompressAI's webp.json"
    rate = Rate.ints(0, 100, points=QUALITIES_5_TO_95)
    option_specs = {"method": Option(4, "libwebp effort, fast to slow (4: Pillow's and CompressAI's default)",
                                     range=(0, 6))}
    details = "Pillow WebP, lossy VP8, 4:2:0, quality q, method 4 (libwebp default), no metadata"
    pil_format = "WEBP"
    feature = "webp"

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"quality": rate, "method": self.options["method"], "lossless": False}


class JPEG2000(PillowCodec):
    name = "jpeg2000"
    description = "JPEG 2000 (OpenJPEG via Pillow), 9/7 irreversible wavelet with the ICT colour transform"

    # The ratios of CompressAI's jpeg2000.json (ffmpeg -compression_level 10..190), low rate first.
    rate = Rate.reals(1, None, points=tuple(range(190, 0, -10)), label="compression ratio", log=True,
                      open_low=True, note="uncompressed 24-bit size / coded size = 24/bpp", search=(2.0, 2000.0))
    option_specs = {
        "irreversible": Option(True, "9/7 irreversible wavelet + ICT (true) or 5/3 reversible wavelet + RCT (false)"),
        "num_resolutions": Option(6, "wavelet decomposition levels + 1 (OpenJPEG default 6)", range=(1, 32)),
    }
    details = ("Pillow/OpenJPEG J2K codestream (no JP2 box), irreversible 9/7 DWT, mct=1 (ICT), one quality "
               "layer at quality_mode='rates' with ratio r (target 24/r bpp), 64x64 code blocks, LRCP")
    pil_format = "JPEG2000"
    feature = "jpg_2000"

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        ratio = rate
        # OpenJPEG needs 2**(levels - 1) <= the smaller side: small images get fewer levels (the decoder reads
        # the level count from the codestream, so this needs no side information).
        levels = int(self.options["num_resolutions"])
        while levels > 1 and min(shape[:2]) < 2 ** (levels - 1):
            levels -= 1
        return {
            "quality_mode": "rates",
            "quality_layers": [ratio],
            "irreversible": bool(self.options["irreversible"]),
            "mct": 1,
            "no_jp2": True,
            "num_resolutions": levels,
        }


class JPEGXL(PillowCodec):
    name = "jpegxl"
    description = "JPEG XL lossy (libjxl via pillow-jxl-plugin)"
    rate = Rate.ints(0, 99, points=(10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95), note="libjxl distance mapping")
    option_specs = {"effort": Option(7, "libjxl effort, fast to slow (7: libjxl's default)", range=(1, 10))}
    details = ("pillow-jxl-plugin / libjxl, VarDCT lossy, quality q mapped by libjxl to a Butteraugli distance, "
               "effort 7, bare codestream (no container), XYB colour space")
    pil_format = "JXL"
    plugin = "pillow_jxl"
    install_fix = "pip install pillow-jxl-plugin"

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"quality": rate, "effort": self.options["effort"],
                "lossless": False, "use_container": False}


class AVIF(PillowCodec):
    name = "avif"
    description = "AVIF / AV1 intra (libavif + libaom via Pillow)"
    rate = Rate.ints(0, 100, points=(10, 20, 30, 40, 50, 60, 70, 80, 90))
    option_specs = {
        "speed": Option(6, "libavif speed, slowest/best to fastest (6: Pillow's default)", range=(0, 10)),
        "subsampling": Option("420", "chroma subsampling (420: Pillow's default)", choices=tuple(_SUBSAMPLING)),
    }
    details = ("Pillow AVIF (libavif, AV1 still picture), quality q, speed 6, YUV 4:2:0 unless subsampling is "
               "set, full range, BT.601 matrix, no metadata")
    pil_format = "AVIF"
    feature = "avif"

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"quality": rate, "speed": self.options["speed"],
                "subsampling": _SUBSAMPLING[self.options["subsampling"]], "range": "full"}


class HEVC(PillowCodec):
    """HEVC intra through x265 in libheif (pillow-heif), set up as bpgenc 0.9.8 sets up x265.

    BPG (``-f 444 -e x265 -c ycbcr -b 8 -q QP``) converts RGB to full-range BT.601 YCbCr 4:4:4 and calls x265
    with preset ``veryslow`` (its default level 8), tune ``ssim``, constant QP ``QP + 1`` (bpgenc adds 1 to match
    the HM reference encoder) and one intra frame. libheif's x265 plug-in overrides some preset values (psy-rd
    1.0, psy-rdoq 1.0, tu-intra-depth 2); we set them back to what tune ssim / veryslow give. The rate point is
    BPG's ``-q``, so points are interchangeable with the ``bpg`` codec. The HEIF container adds ~380 bytes
    (counted in bpp) where BPG's header is ~20.
    """

    name = "hevc"
    display_name = "x265 with BPG's settings (HEIF)"
    description = "HEVC intra (x265 via pillow-heif/libheif) with BPG 0.9.8's settings; BPG-equivalent"
    rate = Rate.ints(0, 50, points=BPG_QPS, label="QP", note="BPG -q")
    option_specs = {
        "preset": Option("veryslow", "x265 preset (BPG's default compression level 8 = veryslow)",
                         choices=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                  "slower", "veryslow", "placebo")),
        "chroma": Option("444", "YCbCr chroma format (444: BPG -f 444)", choices=tuple(_SUBSAMPLING)),
        "tu_intra_depth": Option(3, "x265 max intra TU quad-tree depth (veryslow: 3; libheif would force 2)",
                                 range=(1, 4)),
    }
    details = ("pillow-heif/libheif + x265: full-range BT.601 YCbCr 4:4:4 8-bit, one intra frame, preset veryslow, "
               "tune ssim, psy-rd 0, psy-rdoq 0, tu-intra-depth 3, constant QP = q + 1 (as bpgenc), HEIF "
               "container with nclx (1, 13, 6, full range); decoded by libde265")
    pil_format = "HEIF"
    plugin = "pillow_heif"
    install_fix = "pip install --upgrade pillow-heif  (its wheels bundle libheif with x265 and libde265)"

    @classmethod
    def availability(cls) -> Availability:
        try:
            import pillow_heif
        except ImportError as err:
            return Availability(False, f"hevc: cannot import pillow_heif ({err})", cls.install_fix)
        info = pillow_heif.libheif_info()
        if "x265" not in info.get("encoders", {}):
            return Availability(False, "hevc: this libheif build has no x265 encoder", cls.install_fix)
        if not info.get("decoders"):
            return Availability(False, "hevc: this libheif build has no HEVC decoder", cls.install_fix)
        return Availability(True)

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        qp = rate
        return {
            "chroma": str(self.options["chroma"]),
            "tile_size": 0,  # one coded picture, as BPG; a grid would code tiles independently
            # nclx: BT.709 primaries, sRGB transfer, BT.601 matrix, full range (BPG's -c ycbcr, no -limitedrange)
            "save_nclx_profile": True,
            "color_primaries": 1,
            "transfer_characteristics": 13,
            "matrix_coefficients": 6,
            "full_range_flag": 1,
            "enc_params": {
                "preset": str(self.options["preset"]),
                "tune": "ssim",
                "tu-intra-depth": str(int(self.options["tu_intra_depth"])),
                "x265:qp": str(qp + 1),
                "x265:psy-rd": "0",
                "x265:psy-rdoq": "0",
            },
        }

    def _encode(self, image: np.ndarray, rate: Any) -> bytes:
        import pillow_heif

        args = self.save_args(rate, image.shape)

        h, w = image.shape[:2]
        # libheif pads to x265's minimum size itself and records the true size in the container (ispe).
        heif = pillow_heif.from_bytes("RGB", (w, h), np.ascontiguousarray(image).tobytes())
        buf = io.BytesIO()
        heif.save(buf, format="HEIF", **args)
        return buf.getvalue()

    def _decode(self, data: bytes) -> np.ndarray:
        import pillow_heif

        try:
            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
            if len(heif) != 1:
                raise BitstreamError(f"hevc: expected one image in the HEIF file, found {len(heif)}")
            check_decoded_size(self.name, *heif[0].size)
            out = np.asarray(heif[0].to_pillow().convert("RGB"), dtype=np.uint8).copy()
        except BitstreamError:
            raise
        except DECODE_ERRORS as err:
            raise BitstreamError(f"hevc: cannot decode {len(data)} bytes as HEIF/HEVC (truncated or corrupt): "
                                 f"{err}") from err
        return out


__all__ = ["JPEG", "WebP", "JPEG2000", "JPEGXL", "AVIF", "HEVC", "BPG_QPS", "QUALITIES_5_TO_95"]
