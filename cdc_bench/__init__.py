"""cdc-bench: an evaluation harness for perceptual image codecs, built around CDC (Yang & Mandt, 2023)."""

__version__ = "0.1.0"
