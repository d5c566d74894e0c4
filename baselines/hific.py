"""HiFiC (Mentzer et al., NeurIPS 2020) as published by tensorflow-compression: ``hific`` at rates lo / mi / hi.

The three released models exist only as TensorFlow metagraphs (``hific-lo``, ``hific-mi``, ``hific-hi``) that
tensorflow-compression's ``models/tfci.py`` runs; this adapter does what ``tfci.py compress`` / ``decompress`` do,
in-process: import the metagraph's ``sender`` / ``receiver`` signatures with ``tf.compat.v1.wrap_function``, and
the bitstream is tfc's ``PackedTensors`` string (the TFCI format, which names the model, so decoding needs the
bytes alone). Metagraph files are fetched on first use into ``<cdc-bench cache>/tfc_metagraphs/`` (no checksum
is published for them).

TensorFlow is an optional extra: ``pip install ".[hific]"`` installs ``tensorflow~=2.14.0`` and
``tensorflow-compression~=2.14.0`` (the last pair built for Python 3.11 with numpy < 2; tensorflow-compression
2.14 pins ``scipy~=1.11.0``, so the extra moves scipy back to 1.11.x). Without it, ``cdc-bench codecs`` shows the
codec as unavailable with that command.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cdc_bench.codecs.base import Availability, BitstreamError, Codec, CodecConfigError, CodecError, CodecUnavailable
from cdc_bench.download import cache_dir
from cdc_bench.weights import WeightFile, get_weight, register_weight

URL_PREFIX = "https://storage.googleapis.com/tensorflow_compression/metagraphs"
RATES = ("lo", "mi", "hi")
TFCI_CACHE = Path("/tmp/tfc_metagraphs")  # models/tfci.py's METAGRAPH_CACHE
EXTRA_FIX = ('pip install ".[hific]"  (or: pip install "tensorflow~=2.14.0" "tensorflow-compression~=2.14.0"; '
             "tensorflow-compression 2.14 pins scipy~=1.11.0)")


def metagraph_dir() -> Path:
    return cache_dir() / "tfc_metagraphs"


def model_name(rate: str) -> str:
    return f"hific-{rate}"


def weight_name(rate: str) -> str:
    return f"hific/{model_name(rate)}.metagraph"


for _rate in RATES:
    _file = f"{model_name(_rate)}.metagraph"
    # In cdc-bench's cache (resolved at each use: CDC_BENCH_CACHE may be set after import); a file that
    # tfci.py itself fetched into its own cache is used as is.
    register_weight(WeightFile(name=weight_name(_rate), url=f"{URL_PREFIX}/{_file}",
                               path=lambda f=_file: metagraph_dir() / f, search=lambda f=_file: [TFCI_CACHE / f],
                               used_by=["hific"], note="tensorflow-compression publishes no checksum for it"))


def tensorflow_available() -> Availability:
    missing = [m for m in ("tensorflow", "tensorflow_compression") if importlib.util.find_spec(m) is None]
    if missing:
        return Availability(False, f"HiFiC runs on TensorFlow; {' and '.join(missing)} not installed", EXTRA_FIX)
    return Availability(True)


class Signatures:
    """The ``sender``/``receiver`` functions of one metagraph, as ``tfci.instantiate_model_signature`` builds them."""

    def __init__(self, metagraph_bytes: bytes):
        import tensorflow as tf
        import tensorflow_compression  # noqa: F401 - registers the range-coding ops the metagraph uses

        self.metagraph = tf.compat.v1.MetaGraphDef()
        try:
            self.metagraph.ParseFromString(metagraph_bytes)
        except Exception as err:  # noqa: BLE001 - protobuf's DecodeError
            raise CodecUnavailable(f"metagraph file is not a TensorFlow MetaGraphDef ({err})",
                                   "delete it and run again to re-download it") from None
        self._imported = tf.compat.v1.wrap_function(
            lambda: tf.compat.v1.train.import_meta_graph(self.metagraph), [])
        self._functions: dict[str, Any] = {}

    def __call__(self, signature: str):
        if signature not in self._functions:
            graph = self._imported.graph
            sig = self.metagraph.signature_def[signature]
            inputs = [graph.as_graph_element(sig.inputs[k].name) for k in sorted(sig.inputs)]
            outputs = [graph.as_graph_element(sig.outputs[k].name) for k in sorted(sig.outputs)]
            self._functions[signature] = self._imported.prune(inputs, outputs)
        return self._functions[signature]


class HiFiC(Codec):
    name = "hific"
    description = "HiFiC (Mentzer et al. 2020), the tensorflow-compression release; needs the [hific] extra"
    rate_label = "model (lo / mi / hi)"
    rate_points = RATES
    details = ("tensorflow-compression metagraphs hific-lo/-mi/-hi run as models/tfci.py does; bitstream = TFCI "
               f"PackedTensors; files from {URL_PREFIX}")

    def __init__(self, options: dict[str, Any] | None = None, device: str = "cpu"):
        super().__init__(options, device)
        self._graphs: dict[str, Signatures] = {}  # the model cache (one per metagraph), not per-call state

    @classmethod
    def availability(cls) -> Availability:
        return tensorflow_available()

    def validate_rate(self, rate: Any) -> str:
        """One of the three released models: lo, mi or hi."""
        if str(rate) not in RATES:
            raise CodecConfigError(f"hific: rate point {rate!r} is not one of {', '.join(RATES)} (the released "
                                   "models hific-lo, hific-mi, hific-hi)")
        return str(rate)

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        return [weight_name(self.validate_rate(r)) for r in rate_points]

    def _require_tf(self) -> None:
        avail = tensorflow_available()
        if not avail.ok:
            raise CodecUnavailable(avail.reason, avail.fix)

    def _signatures(self, model: str, decoding: bool = False) -> Signatures:
        """Signatures of ``model``: ``hific-lo`` etc. from the weights registry, or any ``<name>.metagraph``
        already in the metagraph folder (how tests supply a small graph). A decoder never downloads."""
        if model not in self._graphs:
            rate = model.removeprefix("hific-")
            path = (get_weight(weight_name(rate)).ensure(allow_download=not decoding) if rate in RATES
                    else metagraph_dir() / f"{model}.metagraph")
            if not path.is_file():
                raise BitstreamError(f"bitstream names model {model!r}, which is not a HiFiC model "
                                     f"(expected one of {', '.join(model_name(r) for r in RATES)})")
            self._graphs[model] = Signatures(path.read_bytes())
        return self._graphs[model]

    def _encode(self, image: np.ndarray, rate: str) -> bytes:
        return self.encode_with(model_name(rate), image)

    def encode_with(self, model: str, image: np.ndarray) -> bytes:
        """``tfci.compress_image`` for a fixed-rate model: sender(image) packed with the model name."""
        self._require_tf()
        import tensorflow as tf
        import tensorflow_compression as tfc

        sender = self._signatures(model)("sender")
        if len(sender.inputs) != 1:
            raise CodecError(f"{model}: expected a fixed-rate model with one sender input, got {len(sender.inputs)}")
        tensors = sender(tf.constant(np.ascontiguousarray(image)[None]))
        packed = tfc.PackedTensors()
        packed.model = model
        packed.pack(tensors)
        return packed.string

    def _decode(self, data: bytes) -> np.ndarray:
        """``tfci.decompress``: the model named in the bitstream, its receiver, round and saturate to uint8."""
        import tensorflow as tf
        import tensorflow_compression as tfc

        try:
            packed = tfc.PackedTensors(bytes(data))
            model = packed.model
        except Exception as err:  # noqa: BLE001 - protobuf DecodeError, IndexError for a missing model name
            raise BitstreamError(f"hific: not a TFCI bitstream ({type(err).__name__}: {err})") from None
        if not isinstance(model, str) or "/" in model or model.startswith(".") or not model:
            raise BitstreamError(f"hific: bitstream names an invalid model {model!r}")
        receiver = self._signatures(model, decoding=True)("receiver")
        try:
            tensors = packed.unpack([t.dtype for t in receiver.inputs])
            output, = receiver(*tensors)
        except (tf.errors.OpError, ValueError, RuntimeError) as err:
            raise BitstreamError(f"hific: could not decode the {model} bitstream ({type(err).__name__}: "
                                 f"{str(err)[:300]})") from None
        output = tf.squeeze(output, 0)
        if output.dtype.is_floating:
            output = tf.round(output)
        if output.dtype != tf.uint8:
            output = tf.saturate_cast(output, tf.uint8)
        return output.numpy()
