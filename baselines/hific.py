"""HiFiC (Mentzer et al., NeurIPS 2020) as published by tensorflow-compression: ``hific`` at rates lo / mi / hi.

The three released models exist only as TensorFlow metagraphs (``hific-lo``, ``hific-mi``, ``hific-hi``) that
tensorflow-compression's ``models/tfci.py`` runs; this adapter does what ``tfci.py compress`` / ``decompress`` do
(:mod:`baselines.hific_tf`): import the metagraph's ``sender`` / ``receiver`` signatures, and the bitstream is
tfc's ``PackedTensors`` string (the TFCI format, which names the model, so decoding needs the bytes alone).
Metagraph files are fetched on first use into ``<cdc-bench cache>/tfc_metagraphs/`` (no checksum is published for
them); before one is imported, every op in it must be one a HiFiC graph needs (:func:`baselines.hific_tf.check_ops`).

``-o hific.weights=random`` builds the HiFiC architecture with seeded random weights (:mod:`baselines.hific_model`),
exports it as such a metagraph (cached beside the released ones) and then takes exactly the released files' path.
``-o hific.size=full`` gives it archs.py's widths (a 780 MB graph, ~2 min and ~10 GB to build); the default
``tiny`` has the same layers, narrower.

TensorFlow 2.14 + tensorflow-compression 2.14.1 (the last pair for Python 3.11 with numpy < 2) pin scipy 1.11 and
wrapt 1.14, older than the main environment's, so they usually live in their own venv: set ``CDC_BENCH_TF_PYTHON``
to that venv's interpreter and the TensorFlow work runs in a child process there
(:mod:`cdc_bench.executors.isolated`); its path is recorded in the run manifest. Where TensorFlow imports in this
process (``pip install ".[hific]"``), it runs here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from baselines import hific_tf
from baselines._container import weight_path
from cdc_bench.codecs.base import Availability, BitstreamError, CodecConfigError, Option, Rate
from cdc_bench.codecs.learned import MAX_PIXELS_OPTION, RANDOM_SEED, WEIGHTS_OPTION, LearnedCodec
from cdc_bench.download import cache_dir
from cdc_bench.weights import WeightFile, register_weight

URL_PREFIX = "https://storage.googleapis.com/tensorflow_compression/metagraphs"
RATES = ("lo", "mi", "hi")
TFCI_CACHE = Path("/tmp/tfc_metagraphs")  # models/tfci.py's METAGRAPH_CACHE
#: bumped when baselines/hific_model.py changes the random-weights graph (the cached files are rebuilt)
RANDOM_GRAPH_VERSION = 1
TF_PYTHON_ENV = "CDC_BENCH_TF_PYTHON"
EXTRA_FIX = ("make a TensorFlow venv and point cdc-bench at it: python -m venv tf-venv && tf-venv/bin/pip install "
             '"tensorflow~=2.14.0" "tensorflow-compression~=2.14.0" "numpy<2" && export '
             f'{TF_PYTHON_ENV}=$PWD/tf-venv/bin/python  (or, where its pins fit: pip install ".[hific]")')
SIZE_OPTION = Option("tiny", "random-weights network: tiny (archs.py's layers, narrow) or full (archs.py's widths; "
                             "a 780 MB graph, minutes to build)", choices=("tiny", "full"))


def metagraph_dir() -> Path:
    return cache_dir() / "tfc_metagraphs"


def model_name(rate: str, weights: str = "pretrained", size: str = "tiny") -> str:
    """The name a TFCI bitstream carries: ``hific-lo`` for a released model, ``hific-lo-random-tiny`` otherwise."""
    return f"hific-{rate}" if weights == "pretrained" else f"hific-{rate}-random-{size}"


def weight_name(rate: str) -> str:
    return f"hific/hific-{rate}.metagraph"


for _rate in RATES:
    _file = f"hific-{_rate}.metagraph"
    # In cdc-bench's cache (resolved at each use: CDC_BENCH_CACHE may be set after import); a file that
    # tfci.py itself fetched into its own cache is used as is.
    register_weight(WeightFile(name=weight_name(_rate), url=f"{URL_PREFIX}/{_file}",
                               path=lambda f=_file: metagraph_dir() / f, search=lambda f=_file: [TFCI_CACHE / f],
                               used_by=["hific"], note="tensorflow-compression publishes no checksum for it"))


# -- where TensorFlow runs ---------------------------------------------------------------------------------------
def tf_python() -> str | None:
    """The TensorFlow venv's interpreter named by ``CDC_BENCH_TF_PYTHON``, if any."""
    return os.environ.get(TF_PYTHON_ENV) or None


def source_root() -> Path | None:
    """This checkout's root when cdc-bench runs from a source tree, put on the child's ``PYTHONPATH`` (a child in
    another venv then runs this very code); ``None`` for an installed package (install it there too)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def child_env() -> dict[str, str]:
    threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1"}
    root = source_root()
    if root is not None:
        env["PYTHONPATH"] = str(root)
    return env


_PROBE = ("import importlib.util as u, sys; from importlib import metadata as m; "
          "missing = [n for n in ('tensorflow', 'tensorflow_compression', 'cdc_bench') if u.find_spec(n) is None]; "
          "print(' '.join(missing) if missing else "
          "'ok ' + m.version('tensorflow') + ' ' + m.version('tensorflow-compression'))")


@lru_cache(maxsize=4)
def probe_tf_python(python: str) -> tuple[bool, str]:
    """Whether ``python`` can run the TensorFlow side (without importing TensorFlow: ~0.1 s), and its versions."""
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60,
                             env={**os.environ, **child_env()})
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"{TF_PYTHON_ENV}={python} cannot be run ({err})"
    words = out.stdout.split()
    if out.returncode != 0 or not words:
        return False, f"{TF_PYTHON_ENV}={python} failed: {out.stderr.strip()[-300:]}"
    if words[0] != "ok":
        return False, f"{TF_PYTHON_ENV}={python} lacks {' and '.join(words)}"
    return True, f"tensorflow {words[1]}, tensorflow-compression {words[2]}"


def in_process() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorflow_compression"))


def tensorflow_available() -> Availability:
    if tf_python() is not None:
        ok, why = probe_tf_python(tf_python())
        return Availability(True) if ok else Availability(False, f"HiFiC runs on TensorFlow; {why}", EXTRA_FIX)
    if in_process():
        return Availability(True)
    return Availability(False, "HiFiC runs on TensorFlow; tensorflow and tensorflow_compression are not installed "
                               f"here and {TF_PYTHON_ENV} names no TensorFlow venv", EXTRA_FIX)


def tensorflow_environment() -> dict[str, Any] | None:
    """Where the TensorFlow side runs, for the run manifest: its interpreter and versions (``None`` if nowhere)."""
    python = tf_python()
    if python is not None:
        ok, versions = probe_tf_python(python)
        return {"python": python, "ok": ok, "versions": versions}
    if in_process():
        from importlib import metadata

        return {"python": sys.executable, "ok": True, "versions": f"tensorflow {metadata.version('tensorflow')}, "
                f"tensorflow-compression {metadata.version('tensorflow-compression')}"}
    return None


# -- the codec ---------------------------------------------------------------------------------------------------
class HiFiC(LearnedCodec):
    name = "hific"
    description = "HiFiC (Mentzer et al. 2020), the tensorflow-compression release; runs on TensorFlow"
    rate = Rate.choice(RATES, label="model", note="the released hific-lo, hific-mi, hific-hi")
    option_specs = {"weights": WEIGHTS_OPTION, "size": SIZE_OPTION, "max_pixels": MAX_PIXELS_OPTION}
    smoke_options = {"weights": "random"}
    #: not measured: the decode runs in TensorFlow (often in its own venv's child process), which
    #: benchmarks/decode_memory.py does not follow; only max_pixels bounds a header
    decode_bytes_per_pixel = None
    details = ("tensorflow-compression metagraphs hific-lo/-mi/-hi run as models/tfci.py does; bitstream = TFCI "
               f"PackedTensors; files from {URL_PREFIX}; weights=random: the HiFiC architecture with seeded random "
               "weights, exported to the same kind of metagraph")

    def __init__(self, options: dict[str, Any] | None = None, device: str = "cpu"):
        super().__init__(options, device)
        self._worker = None  # the TensorFlow venv's child process (its model cache lives there)

    @classmethod
    def availability(cls) -> Availability:
        return tensorflow_available()

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        if self.options["weights"] != "pretrained":
            return []
        return [weight_name(self.validate_rate(r)) for r in rate_points]

    def _call(self, function: str, request: dict[str, Any]) -> Any:
        """``hific_tf.<function>(request)`` here or in the TensorFlow venv's child process."""
        python = tf_python()
        if python is None:
            return getattr(hific_tf, function)(request)
        if self._worker is None:
            from cdc_bench.executors.isolated import IsolatedWorker

            self._worker = IsolatedWorker(env=child_env(), python=python)
        return self._worker.call(getattr(hific_tf, function), request)

    def _spec(self, rate: str, decoding: bool) -> dict[str, Any]:
        """Where the model's metagraph is, and how to build it when it is a random-weights one."""
        weights, size = self.options["weights"], self.options["size"]
        if weights == "pretrained":
            return {"path": str(weight_path(weight_name(rate), decoding)), "build": None}
        name = model_name(rate, weights, size)
        return {"path": str(metagraph_dir() / "random" / f"{name}-v{RANDOM_GRAPH_VERSION}.metagraph"),
                "build": {"seed": RANDOM_SEED + RATES.index(rate), "size": size}}

    def _encode(self, image: np.ndarray, rate: str) -> bytes:
        self.check_size(*image.shape[:2], error=CodecConfigError)
        model = model_name(rate, self.options["weights"], self.options["size"])
        return self._call("encode", {"model": model, "spec": self._spec(rate, decoding=False), "image": image})

    def _decode(self, data: bytes) -> np.ndarray:
        model = self._call("model_of", data)
        known = {model_name(r, w, s): (r, w, s) for r in RATES for w in ("pretrained", "random")
                 for s in SIZE_OPTION.choices}
        if model not in known:
            raise BitstreamError(f"hific: bitstream names model {model!r}, which is not a HiFiC model (expected one "
                                 f"of {', '.join(model_name(r) for r in RATES)}, or their random-weights versions)")
        rate, weights, size = known[model]
        self.check_flag("weights", weights)
        if weights == "random":
            self.check_flag("size", size)
        return self._call("decode", {"model": model, "spec": self._spec(rate, decoding=True), "data": data,
                                     "max_pixels": self.options["max_pixels"]})

    def close(self) -> None:
        """Stop the TensorFlow child process, if one runs."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
