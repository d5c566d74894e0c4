"""Palette PNG: the README's "Adding a codec" example, a working classical adapter in a few lines of settings.

Not registered by default (no published baseline uses it); a plug-in registers its codec with an entry point in
its own ``pyproject.toml`` (``[project.entry-points."cdc_bench.codecs"]``) or ``cdc_bench.codecs.register``.
"""

from typing import Any

from PIL import Image

from cdc_bench.codecs.base import Option

from ._pillow import PillowCodec


class PalettePNG(PillowCodec):
    name = "png-palette"
    description = "PNG of the image quantised to N colours (Pillow median cut), as pngquant-style tools do"
    rate_label = "colours (2-256)"
    rate_points = (4, 8, 16, 32, 64, 128, 256)
    rate_range = (2, 256)
    option_specs = {"dither": Option(True, "Floyd-Steinberg dithering of the quantised image")}
    details = "Pillow quantize(colors=N, method=median cut), PNG with optimize=True (zlib level 9)"
    pil_format = "PNG"
    feature = "zlib"

    def prepare(self, image: Image.Image, rate: int) -> Image.Image:
        dither = Image.Dither.FLOYDSTEINBERG if self.options["dither"] else Image.Dither.NONE
        return image.quantize(colors=rate, method=Image.Quantize.MEDIANCUT, dither=dither)

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"optimize": True}
