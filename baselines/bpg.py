"""BPG (Fabrice Bellard's ``bpgenc``/``bpgdec`` 0.9.x) run as subprocesses, with CompressAI's bench settings.

When the binaries are not on PATH the codec reports itself unavailable and points to ``hevc``, which runs the
same x265 intra coding in-process (see :class:`baselines.classical.HEVC`) and matches CompressAI's published
``bpg_444_x265_ycbcr.json`` on Kodak.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cdc_bench.codecs.base import (Availability, BitstreamError, Codec, CodecError, CodecUnavailable, Option,
                             RateDomain)

from ._pillow import decode_with_pillow, int_rate
from .classical import BPG_QPS

BPG_MAGIC = b"BPG\xfb"  # first four bytes of every BPG file
#: a decode that takes longer than this is a hang (bpgdec needs well under a second per Kodak image)
DECODE_TIMEOUT_S = 120

_INSTALL = ("install libbpg's bpgenc and bpgdec (https://bellard.org/bpg/, e.g. build libbpg-0.9.8 with x265) "
            "and put them on PATH, or set -o bpg.encoder=/path/to/bpgenc -o bpg.decoder=/path/to/bpgdec; "
            "or use the in-process, RD-equivalent codec 'hevc'")


def encode_command(encoder: str, qp: int, options: dict[str, Any], source: str, target: str) -> list[str]:
    """The bpgenc command line of CompressAI's bench (``-f 444 -e x265 -c ycbcr -b 8`` by default)."""
    return [encoder, "-o", target, "-q", str(qp), "-f", str(options["subsampling"]), "-e", str(options["hevc"]),
            "-c", str(options["colorspace"]), "-b", str(options["bitdepth"]), source]


def decode_command(decoder: str, source: str, target: str) -> list[str]:
    """The bpgdec command line: decode to an 8-bit PNG."""
    return [decoder, "-o", target, source]


class BPG(Codec):
    name = "bpg"
    description = "BPG 0.9.x (bpgenc/bpgdec binaries), as CompressAI's bpg_444_x265_ycbcr.json"
    rate_label = "QP (bpgenc -q, 0-51)"
    rate_points = BPG_QPS
    option_specs = {
        "subsampling": Option("444", "bpgenc -f (444: CompressAI)", choices=("444", "422", "420")),
        "hevc": Option("x265", "bpgenc -e: HEVC encoder (x265: CompressAI)", choices=("x265", "jctvc")),
        "colorspace": Option("ycbcr", "bpgenc -c (ycbcr: CompressAI)",
                             choices=("ycbcr", "rgb", "ycgco", "ycbcr_bt709", "ycbcr_bt2020")),
        "bitdepth": Option(8, "bpgenc -b (8: CompressAI)", range=(8, 12)),
        "encoder": Option("bpgenc", "bpgenc executable (name on PATH or path)"),
        "decoder": Option("bpgdec", "bpgdec executable (name on PATH or path)"),
    }
    details = ("bpgenc -q QP -f 444 -e x265 -c ycbcr -b 8 (default level 8 = x265 veryslow, tune ssim, CQP); "
               "bpgdec -o out.png; the .bpg file is the bitstream")

    @classmethod
    def availability(cls, encoder: str | None = None, decoder: str | None = None) -> Availability:
        """Whether both binaries run here; without arguments, the default names (what ``cdc-bench codecs`` shows)."""
        specs = cls.option_specs
        missing = [exe for exe in (encoder or specs["encoder"].default, decoder or specs["decoder"].default)
                   if shutil.which(exe) is None]
        if missing:
            return Availability(False, f"bpg: {' and '.join(missing)} not found on PATH", _INSTALL)
        return Availability(True)

    def require_available(self) -> None:
        """Check the binaries this instance is configured with (``-o bpg.encoder=PATH``), not the default names."""
        status = self.availability(self.options["encoder"], self.options["decoder"])
        if not status.ok:
            raise CodecUnavailable(status.reason, status.fix)

    def validate_rate(self, rate: Any) -> int:
        return int_rate(self.name, rate, 0, 51, "QP")

    def rate_domain(self) -> RateDomain:
        return RateDomain("int", 0, 51)

    def _run(self, command: list[str], what: str) -> None:
        try:
            result = subprocess.run(command, capture_output=True, timeout=DECODE_TIMEOUT_S if what == "decode" else 600)
        except subprocess.TimeoutExpired:
            raise (BitstreamError if what == "decode" else CodecError)(
                f"bpg: {Path(command[0]).name} did not finish within the time limit") from None
        if result.returncode != 0:
            message = (result.stderr or result.stdout).decode("utf-8", "replace").strip()
            raise (BitstreamError if what == "decode" else CodecError)(
                f"bpg: {Path(command[0]).name} failed with exit code {result.returncode}: {message[-500:]}")

    def _encode(self, image: np.ndarray, rate: int) -> bytes:
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="cdc-bench-bpg-") as tmp:
            source, target = Path(tmp) / "in.png", Path(tmp) / "out.bpg"
            Image.fromarray(np.ascontiguousarray(image)).save(source)
            self._run(encode_command(self.options["encoder"], rate, self.options, str(source), str(target)),
                      "encode")
            return target.read_bytes()

    def _decode(self, data: bytes) -> np.ndarray:
        """bpgdec in a subprocess: a crash or a hang on corrupt bytes is an exit code, not a dead benchmark."""
        if not data.startswith(BPG_MAGIC):
            raise BitstreamError(f"bpg: {len(data)} bytes do not start with the BPG signature (truncated or not BPG)")
        with tempfile.TemporaryDirectory(prefix="cdc-bench-bpg-") as tmp:
            source, target = Path(tmp) / "in.bpg", Path(tmp) / "out.png"
            source.write_bytes(data)
            self._run(decode_command(self.options["decoder"], str(source), str(target)), "decode")
            if not target.is_file():
                raise BitstreamError(f"bpg: bpgdec wrote no image for {len(data)} bytes (corrupt bitstream)")
            return decode_with_pillow(target.read_bytes(), "PNG", self.name)
