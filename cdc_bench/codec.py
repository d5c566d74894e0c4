"""Compatibility alias: the codec interface lives in :mod:`cdc_bench.codecs.base` (plug-ins may keep importing
``cdc_bench.codec.Codec``)."""

from .codecs.base import *  # noqa: F401,F403
from .codecs.base import (Availability, Codec, Encoded, Option, RateDomain, canonical_options,  # noqa: F401
                          check_image, pad_to_multiple, parse_value)
from .errors import BitstreamError, CdcBenchError, CodecConfigError, CodecError, CodecUnavailable  # noqa: F401
