"""hific: the unavailable path (no TensorFlow), its weight files, and, where the [hific] extra is installed, the
TFCI plumbing on a small metagraph built here. The real hific-lo/-mi/-hi metagraphs are never downloaded."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from baselines import hific
from cdc_bench.codecs.base import BitstreamError, CodecError, CodecUnavailable
from cdc_bench.codecs.registry import describe_codecs, get_codec_class
from cdc_bench.weights import WeightsMissing, get_weight

HAS_TF = all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorflow_compression"))
needs_tf = pytest.mark.skipif(not HAS_TF, reason='optional extra not installed: pip install ".[hific]"')


@pytest.fixture()
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (21, 34, 3), dtype=np.uint8)


def test_registered_with_three_models_and_their_metagraphs():
    assert get_codec_class("hific") is hific.HiFiC
    assert hific.HiFiC.rate_points == ("lo", "mi", "hi")
    assert hific.HiFiC().required_weights(["lo", "hi"]) == ["hific/hific-lo.metagraph", "hific/hific-hi.metagraph"]
    weight = get_weight("hific/hific-mi.metagraph")
    assert weight.url == "https://storage.googleapis.com/tensorflow_compression/metagraphs/hific-mi.metagraph"


def test_missing_metagraph_names_file_url_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsMissing) as info:
        get_weight("hific/hific-lo.metagraph").ensure(allow_download=False)
    message = str(info.value)
    assert "hific/hific-lo.metagraph" in message
    assert f"{hific.URL_PREFIX}/hific-lo.metagraph" in message
    assert str(tmp_path / "cache" / "tfc_metagraphs" / "hific-lo.metagraph") in message


def test_bad_rate_point_is_named(image):
    with pytest.raises(CodecError, match="'medium' is not one of lo, mi, hi"):
        hific.HiFiC().validate_rate("medium")  # checked before a sweep, and by encode


@pytest.mark.skipif(HAS_TF, reason="TensorFlow is installed here; this checks the message shown without it")
def test_without_tensorflow_the_codec_says_how_to_add_it(image):
    avail = hific.HiFiC.availability()
    assert not avail.ok and "tensorflow" in avail.reason and 'pip install ".[hific]"' in avail.fix
    listed = {info.name: info for info in describe_codecs()}["hific"]
    assert not listed.availability.ok and ".[hific]" in listed.availability.fix
    with pytest.raises(CodecUnavailable, match=r'pip install "\.\[hific\]"'):
        hific.HiFiC().encode(image, "lo")
    with pytest.raises(CodecUnavailable, match="tensorflow"):
        hific.HiFiC().decode(b"\x0a\x00")


def _write_png_metagraph(path) -> None:
    """A lossless stand-in model with HiFiC's interface (a uint8 image in, rank-1 tensors out, and back),
    exported as tfci.py expects: a MetaGraphDef with 'sender' and 'receiver' signatures."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [1, None, None, 3], name="image")
        png = tf.reshape(tf.image.encode_png(image[0]), [1])
        shape = tf.shape(image, out_type=tf.int32)
        png_in = tf.compat.v1.placeholder(tf.string, [None], name="png_in")
        shape_in = tf.compat.v1.placeholder(tf.int32, [None], name="shape_in")
        decoded = tf.reshape(tf.image.decode_png(png_in[0], channels=3), shape_in)
        metagraph = tf.compat.v1.train.export_meta_graph(graph=graph)
        info = tf.compat.v1.saved_model.build_tensor_info  # graph mode only
        metagraph.signature_def["sender"].inputs["image"].CopyFrom(info(image))
        metagraph.signature_def["sender"].outputs["a_png"].CopyFrom(info(png))
        metagraph.signature_def["sender"].outputs["b_shape"].CopyFrom(info(shape))
        metagraph.signature_def["receiver"].inputs["a_png"].CopyFrom(info(png_in))
        metagraph.signature_def["receiver"].inputs["b_shape"].CopyFrom(info(shape_in))
        metagraph.signature_def["receiver"].outputs["image"].CopyFrom(info(decoded))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(metagraph.SerializeToString())


@needs_tf
def test_tfci_path_round_trips_through_a_metagraph(image):
    """Everything the adapter does with a real metagraph: import, prune to signatures, pack, unpack, decode."""
    import tensorflow_compression as tfc

    _write_png_metagraph(hific.metagraph_dir() / "toy-png.metagraph")
    codec = hific.HiFiC()
    data = codec.encode_with("toy-png", image)
    assert tfc.PackedTensors(data).model == "toy-png"
    assert len(data) > 40
    np.testing.assert_array_equal(hific.HiFiC().decode(data), image)  # a fresh decoder: bytes alone

    with pytest.raises(BitstreamError, match="not a TFCI bitstream"):
        codec.decode(b"\xff\x01garbage")
    packed = tfc.PackedTensors(data)
    packed.model = "hific-xx"
    with pytest.raises(BitstreamError, match="not a HiFiC model"):
        codec.decode(packed.string)
