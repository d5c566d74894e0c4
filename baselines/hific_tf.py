"""The TensorFlow side of the ``hific`` codec: what ``models/tfci.py`` does, plus the checks we add.

These functions run where TensorFlow is installed: in the calling process when it has the ``[hific]`` extra, or
in a child process of a separate TensorFlow venv (TensorFlow 2.14 pins packages the main environment has newer
versions of; see :mod:`baselines.hific`). Their arguments and results are plain data (paths, bytes, arrays), and
their errors are cdc-bench's, so they travel through :mod:`cdc_bench.executors.isolated`'s pipe. Only numpy,
TensorFlow, tensorflow-compression and :mod:`cdc_bench.errors` are imported (no torch).

A metagraph is a graph, not pickled code, but a graph can still name TensorFlow ops that read or write files
(``ReadFile``, ``WriteFile``, ``MatchingFiles``, ``Save``/``Restore``, ``ImmutableConst``, ``PrintV2`` to a
file, summary writers, dataset readers), call registered Python (``PyFunc``, ``EagerPyFunc``), loop forever
(``While``) or allocate without bound. So before importing one, every op of its graph and of its function
library must be on :data:`ALLOWED_OPS` (the ops a HiFiC graph needs: convolutions, element-wise math, shapes, and
tensorflow-compression's range-coding ops); anything else is refused by name before TensorFlow sees the graph.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cdc_bench.errors import BitstreamError, CodecError, CodecUnavailable

#: The ops a HiFiC graph may use: those of archs.py's layers (convolutions, ChannelNorm's moments, ReLU, padding,
#: RDFT kernel parameters), of slicing and shape arithmetic, of tf.cond (Switch/Merge), of the entropy models, and
#: tensorflow-compression's range-coding ops (its TF1 ones, which the released graphs were made with, included).
ALLOWED_OPS = frozenset("""
    Const Placeholder PlaceholderWithDefault Identity IdentityN NoOp StopGradient Assert
    Conv2D Conv2DBackpropInput DepthwiseConv2dNative BiasAdd MatMul BatchMatMulV2 Relu LeakyRelu Relu6 Elu Selu
    Softplus Sigmoid Tanh Mean Sum Prod Max Min SquaredDifference Rsqrt Sqrt Square Pow Exp Log Log1p Expm1
    Abs Neg Sign Reciprocal Erf Erfc Add AddV2 AddN Sub Mul RealDiv Div DivNoNan FloorDiv FloorMod Floor Ceil Round
    Rint Maximum Minimum ClipByValue Cast Bitcast Less LessEqual Greater GreaterEqual Equal NotEqual LogicalAnd
    LogicalOr LogicalNot All Any Select SelectV2 Where ZerosLike OnesLike Fill Range Cumsum ArgMax ArgMin
    Shape ShapeN Size Rank Reshape ExpandDims Squeeze Pack Unpack ConcatV2 Concat Split SplitV Slice StridedSlice
    Tile Transpose ReverseV2 GatherV2 GatherNd BroadcastTo BroadcastArgs Pad PadV2 MirrorPad
    ResizeNearestNeighbor ResizeBilinear RFFT2D IRFFT2D RFFT IRFFT Complex Real Imag ComplexAbs Switch Merge
    RangeEncode RangeDecode UnboundedIndexRangeEncode UnboundedIndexRangeDecode PmfToQuantizedCdf
    CreateRangeEncoder CreateRangeDecoder EntropyEncodeChannel EntropyEncodeIndex EntropyEncodeFinalize
    EntropyDecodeChannel EntropyDecodeIndex EntropyDecodeFinalize
""".split())
#: Shown by name when a metagraph uses them: ops that reach outside the graph (files, Python, the network).
DANGEROUS_OPS = frozenset("""
    ReadFile WriteFile MatchingFiles DeleteFile Save SaveV2 SaveSlices Restore RestoreV2 RestoreSlice MergeV2Checkpoints
    ImmutableConst PyFunc PyFuncStateless EagerPyFunc PrintV2 Print WriteSummary WriteScalarSummary
    CreateSummaryFileWriter TFRecordDataset FixedLengthRecordDataset TextLineDataset DebugIdentityV2 While
    StatelessWhile StatefulPartitionedCall PartitionedCall
""".split())
DOWNSAMPLING = 16       # archs.Encoder(num_down=4)
HYPER_DOWNSAMPLING = 4  # archs.Hyperprior: two stride-2 convolutions

_SIGNATURES: dict[str, "Signatures"] = {}  # path -> imported model: this process's model cache


def check_ops(metagraph) -> None:
    """Refuse a metagraph with any op outside :data:`ALLOWED_OPS`, before it is imported."""
    nodes = list(metagraph.graph_def.node)
    for function in metagraph.graph_def.library.function:
        nodes += list(function.node_def)
    found = {node.op for node in nodes}
    bad = sorted(found - ALLOWED_OPS)
    if bad:
        dangerous = [op for op in bad if op in DANGEROUS_OPS]
        why = f" ({', '.join(dangerous)} can reach outside the graph)" if dangerous else ""
        raise CodecUnavailable(f"hific: the metagraph uses ops a HiFiC graph does not need: {', '.join(bad)}{why}; "
                               "it was refused before import", "use the metagraph files tensorflow-compression "
                               "publishes (baselines/hific_tf.py: ALLOWED_OPS lists what is accepted)")


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
        missing = {"sender", "receiver"} - set(self.metagraph.signature_def)
        if missing:
            raise CodecUnavailable(f"hific: the metagraph has no {' or '.join(sorted(missing))} signature",
                                   "use a metagraph made for models/tfci.py")
        check_ops(self.metagraph)
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


def load(spec: dict[str, Any]) -> Signatures:
    """The model of ``spec`` (``{"path": ..., "build": None | {"seed": s, "size": z}}``), from this process's cache;
    a random-weights model missing from the disk cache is built and written there first."""
    path = Path(spec["path"])
    key = str(path)
    if key not in _SIGNATURES:
        if spec.get("build") and not path.is_file():
            build(path, **spec["build"])
        _SIGNATURES[key] = Signatures(path.read_bytes())
    return _SIGNATURES[key]


def build(path: Path, seed: int, size: str) -> None:
    """Build a random-weights metagraph in a process of its own (the full-width build peaks near 10 GB, which
    TensorFlow keeps if it runs here), written atomically: a parallel worker may build the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        done = subprocess.run([sys.executable, "-m", "baselines.hific_model", str(seed), size, tmp],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise CodecError(f"hific: building the random-weights model failed (exit {done.returncode}): "
                             f"{done.stderr.strip()[-500:]}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def encode(request: dict[str, Any]) -> bytes:
    """``tfci.compress_image`` for a fixed-rate model: sender(image) packed with the model name."""
    import tensorflow as tf
    import tensorflow_compression as tfc

    model = request["model"]
    sender = load(request["spec"])("sender")
    if len(sender.inputs) != 1:
        raise CodecError(f"{model}: expected a fixed-rate model with one sender input, got {len(sender.inputs)}")
    tensors = sender(tf.constant(np.ascontiguousarray(request["image"])[None]))
    packed = tfc.PackedTensors()
    packed.model = model
    packed.pack(tensors)
    return packed.string


def _parse(data: bytes):
    import tensorflow_compression as tfc

    try:
        packed = tfc.PackedTensors(bytes(data))
        model = packed.model
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError, IndexError for a missing model name
        raise BitstreamError(f"hific: not a TFCI bitstream ({type(err).__name__}: {err})") from None
    return packed, model


def model_of(data: bytes) -> str:
    """The model a TFCI bitstream names (read first, so the caller can check it and find the model's file)."""
    return _parse(data)[1]


def check_header(packed, dtypes: list, max_pixels: int) -> None:
    """Check a TFCI bitstream against the receiver before any tensor is built from it.

    The fields must be exactly the receiver's inputs, each of its kind (strings or integers), one string per
    entropy model, and the three shapes HiFiC sends (archs.py's ``bitstream_tensors``: image, latent and
    hyper-latent height x width) must agree with each other, with the image within ``max_pixels``: a hostile
    latent shape must not make the decoder allocate gigabytes.
    """
    features = packed._example.features.feature  # noqa: SLF001 - PackedTensors keeps its fields in a tf.train.Example
    expected = {"MD"} | {chr(i + 1) for i in range(len(dtypes))}
    if set(features) != expected:
        raise BitstreamError(f"hific: bitstream has {len(features) - 1} tensors, the receiver takes {len(dtypes)}")
    shapes = []
    for i, dtype in enumerate(dtypes):
        feature = features[chr(i + 1)]
        kind = "bytes_list" if dtype.name == "string" else "int64_list" if dtype.is_integer else "float_list"
        if feature.WhichOneof("kind") not in (kind, None):
            raise BitstreamError(f"hific: bitstream tensor {i + 1} is a {feature.WhichOneof('kind')}, expected {kind}")
        values = list(getattr(feature, kind).value)
        if kind == "bytes_list" and len(values) != 1:
            raise BitstreamError(f"hific: bitstream tensor {i + 1} holds {len(values)} strings, expected 1")
        if kind == "int64_list":
            if len(values) != 2 or not all(1 <= v <= 1 << 20 for v in values):
                raise BitstreamError(f"hific: bitstream shape {values} is not a height and width")
            shapes.append(tuple(values))
    if len(shapes) != 3:
        raise BitstreamError(f"hific: bitstream has {len(shapes)} shapes; HiFiC sends image, latent, hyper-latent")
    image, latent, hyper = sorted(shapes, key=lambda s: s[0] * s[1], reverse=True)
    if image[0] * image[1] > max_pixels:
        raise BitstreamError(f"hific: image size {image[0]}x{image[1]} is too large (max_pixels={max_pixels}; "
                             "raise it with -o hific.max_pixels=N)")
    if latent != tuple(-(-v // DOWNSAMPLING) for v in image) or \
            hyper != tuple(-(-v // HYPER_DOWNSAMPLING) for v in latent):
        raise BitstreamError(f"hific: bitstream shapes disagree (image {image}, latent {latent}, hyper {hyper})")


def decode(request: dict[str, Any]) -> np.ndarray:
    """``tfci.decompress``: the receiver on the unpacked tensors, rounded and saturated to uint8."""
    import tensorflow as tf

    packed, model = _parse(request["data"])
    if model != request["model"]:
        raise CodecError(f"hific: asked to decode {request['model']}, bitstream names {model}")
    receiver = load(request["spec"])("receiver")
    dtypes = [t.dtype for t in receiver.inputs]
    check_header(packed, dtypes, request["max_pixels"])
    try:
        output, = receiver(*packed.unpack(dtypes))
    except (tf.errors.OpError, ValueError, RuntimeError) as err:
        raise BitstreamError(f"hific: could not decode the {model} bitstream ({type(err).__name__}: "
                             f"{str(err)[:300]})") from None
    output = tf.squeeze(output, 0)
    if output.dtype.is_floating:
        output = tf.round(output)
    if output.dtype != tf.uint8:
        output = tf.saturate_cast(output, tf.uint8)
    return output.numpy()
