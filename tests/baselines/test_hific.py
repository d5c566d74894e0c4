"""hific: its weight files, the message shown without TensorFlow, and, on TensorFlow (in this process or in the
venv ``CDC_BENCH_TF_PYTHON`` names), the released files' code path on the random-weights HiFiC metagraph: real
range coding, decoding from the bytes alone in a fresh process, header checks, hostile streams and graphs.

CI sets ``CDC_BENCH_REQUIRE_TF=1``: there a missing TensorFlow fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from baselines import hific
from cdc_bench.codecs.base import BitstreamError, CodecError, CodecUnavailable
from cdc_bench.codecs.registry import describe_codecs, get_codec_class
from cdc_bench.weights import WeightsMissing, get_weight

REPO = Path(__file__).resolve().parents[2]
HAS_TF = hific.tensorflow_available().ok


@pytest.fixture()
def tf_here():
    """TensorFlow is required from here on: skipped where it is absent, failed in CI (CDC_BENCH_REQUIRE_TF=1)."""
    if not HAS_TF:
        message = f"TensorFlow not available: {hific.tensorflow_available().reason}"
        if os.environ.get("CDC_BENCH_REQUIRE_TF"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture()
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (21, 34, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def test_cache(tmp_path_factory):
    """The tests' cache (tests/conftest.py's) already for module fixtures, which run before its autouse one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDC_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cdc-bench-cache"))
        yield


@pytest.fixture(scope="module")
def stream(test_cache) -> tuple[np.ndarray, bytes, np.ndarray]:
    """A 24 x 40 gradient coded by the tiny random-weights HiFiC at 'lo', and its decoding."""
    if not HAS_TF:
        pytest.skip("TensorFlow not available")
    y, x = np.mgrid[0:24, 0:40]
    img = np.stack([x * 6, y * 10, 128 + 60 * np.sin((x + y) / 5)], -1).astype(np.uint8)
    codec = hific.HiFiC({"weights": "random"})
    data = codec.encode(img, "lo").data
    decoded = hific.HiFiC({"weights": "random"}).decode(data)  # another instance: its own TensorFlow process
    codec.close()
    return img, data, decoded


@pytest.fixture(scope="module")
def decoder(test_cache, stream):
    """One random-weights codec (one TensorFlow process) for the tests that decode many streams."""
    codec = hific.HiFiC({"weights": "random", "max_pixels": 64 * 64})
    yield codec
    codec.close()


#: Edits of the stream's fields, made with tfc.PackedTensors where TensorFlow runs (this process may lack it).
EDITS = {
    "info": "",
    "huge_image": "f[chr(3)].int64_list.value[:] = [1 << 14, 1 << 14]",   # beyond max_pixels
    "bad_latent": "f[chr(4)].int64_list.value[:] = [5, 5]",             # a latent the image does not imply
    "zero_shape": "f[chr(5)].int64_list.value[:] = [0, 1]",
    "long_shape": "f[chr(3)].int64_list.value[:] = [24, 40, 1]",
    "extra_tensor": "f[chr(6)].int64_list.value.extend([1, 1])",
    "two_strings": "f[chr(1)].bytes_list.value.append(b'x')",
    "no_hyper": "f[chr(2)].Clear()",
    "unknown_model": "p.model = 'hific-xx'",
    "pretrained_name": "p.model = 'hific-lo'",
}
_EDIT_SCRIPT = """
import json, sys, tensorflow_compression as tfc
data = open(sys.argv[1], "rb").read()
for name, code in json.loads(sys.argv[2]).items():
    p = tfc.PackedTensors(data)
    f = p._example.features.feature
    exec(code)
    open(sys.argv[1] + "." + name, "wb").write(p.string)
p = tfc.PackedTensors(data)
f = p._example.features.feature
print(json.dumps({"model": p.model, "strings": [len(f[chr(i)].bytes_list.value[0]) for i in (1, 2)],
                  "shapes": [list(f[chr(i)].int64_list.value) for i in (3, 4, 5)]}))
"""


def run_tf(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """A Python command where TensorFlow runs (the TensorFlow venv, or this interpreter)."""
    env = {**os.environ, **hific.child_env()}
    return subprocess.run([hific.tf_python() or sys.executable, *args], capture_output=True, text=True, check=True,
                          timeout=600, env=env, **kwargs)


@pytest.fixture(scope="module")
def edited(stream, tmp_path_factory) -> dict:
    """The stream's fields (``info``) and each of :data:`EDITS` applied to it."""
    path = tmp_path_factory.mktemp("tfci") / "in.tfci"
    path.write_bytes(stream[1])

    info = json.loads(run_tf(["-c", _EDIT_SCRIPT, str(path), json.dumps(EDITS)]).stdout.strip().splitlines()[-1])
    return {"info": info, **{name: Path(f"{path}.{name}").read_bytes() for name in EDITS if name != "info"}}


def test_registered_with_three_models_and_their_metagraphs():
    assert get_codec_class("hific") is hific.HiFiC
    assert hific.HiFiC.rate_points == ("lo", "mi", "hi")
    assert hific.HiFiC.smoke_options == {"weights": "random"}
    assert hific.HiFiC().required_weights(["lo", "hi"]) == ["hific/hific-lo.metagraph", "hific/hific-hi.metagraph"]
    assert hific.HiFiC({"weights": "random"}).required_weights(["lo"]) == []
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


def test_bad_rate_point_is_named():
    with pytest.raises(CodecError, match="'medium' is not one of lo, mi, hi"):
        hific.HiFiC().validate_rate("medium")  # checked before a sweep, and by encode


def test_without_tensorflow_the_codec_says_how_to_add_it(image, monkeypatch):
    monkeypatch.delenv(hific.TF_PYTHON_ENV, raising=False)
    monkeypatch.setattr(hific, "in_process", lambda: False)
    avail = hific.HiFiC.availability()
    assert not avail.ok and "tensorflow" in avail.reason and hific.TF_PYTHON_ENV in avail.fix
    listed = {info.name: info for info in describe_codecs()}["hific"]
    assert not listed.availability.ok and ".[hific]" in listed.availability.fix
    with pytest.raises(CodecUnavailable, match="tensorflow-compression"):
        hific.HiFiC().encode(image, "lo")
    monkeypatch.setenv(hific.TF_PYTHON_ENV, "/nonexistent/python")
    avail = hific.HiFiC.availability()
    assert not avail.ok and "/nonexistent/python cannot be run" in avail.reason


def test_random_weights_round_trip_through_the_tfci_path(tf_here, stream, edited):
    """Sender -> PackedTensors with tfc's range-coded strings -> receiver, in two separate TensorFlow processes."""
    img, data, decoded = stream
    info = edited["info"]
    assert info["model"] == "hific-lo-random-tiny"
    latent, hyper = info["strings"]
    assert latent > 0 and hyper > 0  # the range coder's output, inside the stream we measure
    assert info["shapes"] == [[24, 40], [2, 3], [1, 1]]  # image, latent (1/16), hyper-latent (1/64)
    assert len(data) > latent + hyper + len("hific-lo-random-tiny")
    assert decoded.shape == img.shape and decoded.dtype == np.uint8
    assert decoded.std() > 0  # not a blank image: the random decoder's output of the decoded latents


def test_random_weights_are_seeded_one_model_per_rate(tf_here, stream, decoder):
    img, data, _ = stream
    assert decoder.encode(img, "lo").data == data  # the same seeded model, the same bytes
    specs = [decoder._spec(rate, decoding=False) for rate in hific.RATES]
    assert len({spec["build"]["seed"] for spec in specs}) == 3  # lo, mi, hi are distinct models, as released
    assert len({spec["path"] for spec in specs}) == 3


def test_decodes_in_a_fresh_process_that_rebuilds_the_model(tf_here, stream, tmp_path):
    """A new process with an empty cache rebuilds the seeded model from scratch and gets the same pixels."""
    img, data, decoded = stream
    (tmp_path / "in.tfci").write_bytes(data)
    script = ("import sys, numpy as np; from baselines.hific import HiFiC; "
              "np.save(sys.argv[2], HiFiC({'weights': 'random'}).decode(open(sys.argv[1], 'rb').read()))")
    env = {**os.environ, "CDC_BENCH_CACHE": str(tmp_path / "fresh-cache"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "in.tfci"), str(tmp_path / "out.npy")],
                   env=env, check=True, timeout=600)
    assert list((tmp_path / "fresh-cache" / "tfc_metagraphs" / "random").glob("hific-lo-random-tiny-*"))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), decoded)


@pytest.mark.parametrize("edit, match", [
    ("huge_image", "too large"), ("bad_latent", "shapes disagree"), ("zero_shape", "not a height and width"),
    ("long_shape", "not a height and width"), ("extra_tensor", "tensors, the receiver takes 5"),
    ("two_strings", "holds 2 strings"), ("no_hyper", "holds 0 strings"), ("unknown_model", "not a HiFiC model"),
    ("pretrained_name", "weights=pretrained, decoder has weights=random"),
])
def test_header_checks_refuse_before_decoding(tf_here, edited, decoder, edit, match):
    with pytest.raises(BitstreamError, match=match):
        decoder.decode(edited[edit])


def test_damaged_streams_give_bitstream_errors(tf_here, stream, decoder):
    img, data, decoded = stream
    codec = decoder
    with pytest.raises(BitstreamError, match="not a TFCI bitstream"):
        codec.decode(b"\xff\x01garbage")
    with pytest.raises(BitstreamError):
        codec.decode(data[: len(data) // 2])
    # Fuzz: header bit flips, truncations, random flips: an error of ours or an image, never anything else.
    rng = random.Random(0)
    cases = [data[:n] for n in range(1, 40, 3)] + [data[: rng.randrange(len(data))] for _ in range(10)]
    for _ in range(60):
        out = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            bit = rng.randrange(8 * (40 if rng.random() < 0.5 else len(data)))
            out[bit // 8] ^= 1 << (bit % 8)
        cases.append(bytes(out))
    outcomes = {"decoded": 0, "error": 0}
    for case in cases:
        try:
            out = codec.decode(case)
            assert out.dtype == np.uint8 and out.ndim == 3 and out.size <= 3 * 64 * 64
            outcomes["decoded"] += 1
        except (BitstreamError, CodecError):
            outcomes["error"] += 1
    assert outcomes["error"] > 0
    np.testing.assert_array_equal(codec.decode(data), decoded)  # the worker survived every case


def _hostile_metagraph(path: Path) -> None:
    """A metagraph with HiFiC's signatures whose sender reads a file (tf.io.read_file: a ReadFile op)."""
    script = f"""
import tensorflow as tf
graph = tf.Graph()
with graph.as_default():
    image = tf.compat.v1.placeholder(tf.uint8, [1, None, None, 3], name="image")
    secret = tf.reshape(tf.io.read_file("/etc/hostname"), [1])
    metagraph = tf.compat.v1.train.export_meta_graph(graph=graph)
    info = tf.compat.v1.saved_model.build_tensor_info
    metagraph.signature_def["sender"].inputs["image"].CopyFrom(info(image))
    metagraph.signature_def["sender"].outputs["a"].CopyFrom(info(secret))
    metagraph.signature_def["receiver"].inputs["a"].CopyFrom(info(secret))
    metagraph.signature_def["receiver"].outputs["image"].CopyFrom(info(image))
open({str(path)!r}, "wb").write(metagraph.SerializeToString())
"""
    run_tf(["-c", script])


def test_a_metagraph_that_reads_files_is_refused_before_import(tf_here, image, tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    codec = hific.HiFiC({"weights": "random"})
    path = Path(codec._spec("mi", decoding=False)["path"])  # where the random 'mi' model would be cached
    path.parent.mkdir(parents=True)
    _hostile_metagraph(path)
    with pytest.raises(CodecUnavailable, match=r"ReadFile.*reach outside the graph.*refused before import"):
        codec.encode(image, "mi")
    codec.close()


def test_the_allow_list_holds_every_op_of_the_random_hific_graph(tf_here, stream):
    """Every op of the random-weights graphs (the full-width one has the same ops: only widths differ)."""
    from baselines import hific_tf

    ops = set()
    for path in (Path(os.environ["CDC_BENCH_CACHE"]) / "tfc_metagraphs" / "random").glob("*.metagraph"):
        script = ("import sys, tensorflow as tf; m = tf.compat.v1.MetaGraphDef(); "
                  "m.ParseFromString(open(sys.argv[1], 'rb').read()); "
                  "print(' '.join({n.op for n in m.graph_def.node}))")
        ops |= set(run_tf(["-c", script, str(path)]).stdout.split())
    assert {"Conv2D", "Conv2DBackpropInput", "EntropyEncodeIndex", "EntropyDecodeIndex", "IRFFT2D"} <= ops
    assert ops <= hific_tf.ALLOWED_OPS
