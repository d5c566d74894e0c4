"""Codecs: the interface every codec implements, the registry that finds them, and the plans a sweep runs.

The public face: subclass :class:`Codec` (declaring :class:`Option` s), register it with :func:`register` or an
entry point in the ``cdc_bench.codecs`` group, and build one with :func:`create_codec`.
"""

from .base import (Availability, Codec, Encoded, Option, RateDomain, canonical_options, check_image,  # noqa: F401
                   pad_to_multiple, parse_value)
from .registry import (CODECS, ENTRY_POINT_GROUP, CodecInfo, codec_names, create_codec,  # noqa: F401
                       describe_codecs, get_codec_class, register, unregister)
