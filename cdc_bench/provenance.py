"""Provenance: what ran, with what, where and when.

:func:`provenance` is the one record of the environment (versions, git commit, machine, device, time); the run
manifest (:func:`build_manifest`, stored with every run) and the speed report's environment
(:mod:`cdc_bench.speed.environment`) are that record plus their own fields, under the same field names.
:func:`timestamp` is the one time format: ISO 8601 in UTC with its offset.

:class:`LoadMonitor` watches the machine's load while something is timed. A 1-minute load average above the core
count means runnable threads were waiting for a core: wall times are then inflated by an unknown amount (CPU
times much less so). ``cdc-bench speed`` samples it after every round (warns, and with ``--strict`` refuses:
:class:`MachineBusy`, exit status 3); a sweep samples it as rows arrive (at most every :data:`SWEEP_SAMPLE_S`
seconds) into its manifest, so a figure of its decode times can say how busy the machine was.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import CdcBenchError

PACKAGES = ("cdc-bench", "torch", "torchvision", "numpy", "pillow", "pillow-heif", "pillow-jxl-plugin",
            "compressai", "pytorch-msssim", "lpips", "clean-fid", "piq", "pandas", "scipy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(path: Path | None = None) -> dict[str, Any] | None:
    """The commit (and whether the tree is dirty) of the checkout this package runs from, if any."""
    path = path or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; ``platform`` elsewhere, which is often less precise)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"device": device, "cpu": cpu_model(),
                            "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(device)
    except ImportError:
        pass
    return info


def timestamp() -> str:
    """Now, as every record of cdc-bench writes it: ``2026-12-02T01:23:45+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def codec_libraries() -> dict[str, str | None]:
    """Versions of the C libraries behind the classical codecs, as the libraries report them (``None``: absent).

    Pillow's wheel versions say little about the codec inside (libjpeg-turbo, libwebp, OpenJPEG, libavif), nor
    does pillow-heif's about x265 and libde265; a paper's numbers depend on these. libjxl exposes no version
    through pillow-jxl-plugin, so that package's version stands for it (in ``versions``)."""
    out: dict[str, str | None] = {}
    try:
        from PIL import features

        out["libjpeg"] = features.version("jpg")
        out["libjpeg-turbo"] = features.version_feature("libjpeg_turbo")
        out["libwebp"] = features.version("webp")
        out["openjpeg"] = features.version("jpg_2000")
        out["libavif"] = features.version("avif") if "avif" in features.get_supported_modules() else None
    except Exception:  # noqa: BLE001 - a manifest must never fail a run
        pass
    try:
        import pillow_heif

        info = pillow_heif.libheif_info()
        out["libheif"] = info.get("libheif")
        out["x265"] = (info.get("encoders") or {}).get("x265")
        out["libde265"] = (info.get("decoders") or {}).get("libde265")
    except Exception:  # noqa: BLE001
        out.update({"libheif": None, "x265": None, "libde265": None})
    return out


def device_name(device: str) -> str:
    """A name that identifies the hardware: the GPU's name on CUDA, the CPU model otherwise."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def provenance(device: str, packages: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    """The environment a number was measured in: the one record the run manifest and the speed report share."""
    from . import __version__

    record: dict[str, Any] = {
        "cdc_bench": __version__,
        "versions": package_versions(packages),
        "codec_libraries": codec_libraries(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "git": git_commit(),
        **device_info(str(device)),
        "device_name": device_name(str(device)) if not str(device).startswith("cuda") else None,
        "created": timestamp(),
    }
    if record["device_name"] is None:
        record["device_name"] = record.get("gpu") or cpu_model()
    return record


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def tensorflow_environment() -> dict[str, Any] | None:
    """Where HiFiC's TensorFlow side runs (a separate venv's interpreter, or this one) and its versions."""
    try:
        from baselines.hific import tensorflow_environment as hific_environment
    except ImportError:
        return None
    return hific_environment()


def build_manifest(run_id: str, settings: dict[str, Any], device: str) -> dict[str, Any]:
    record = provenance(device)
    return {"run_id": run_id, "command": [Path(sys.argv[0]).name] + sys.argv[1:], "settings": settings, **record,
            "tensorflow": tensorflow_environment(), "started_at": record["created"]}


#: the distributions whose versions can change a stored number (codecs, metrics, image decoding)
NUMBER_PACKAGES = ("cdc-bench", "torch", "numpy", "compressai", "pillow", "pillow-heif", "pillow-jxl-plugin")
#: the codec libraries as Pillow reports them (``PIL.features.version``)
PILLOW_LIBRARIES = ("jpg", "libjpeg_turbo", "zlib", "webp", "libtiff", "jpg_2000")


def code_record() -> dict[str, Any]:
    """What must agree between a sweep's client and each Dask worker for their numbers to agree: the versions of
    :data:`NUMBER_PACKAGES`, Pillow's codec libraries (and libheif), the git commit and dirty state, and a digest of
    the package's own source files (a modified copy on a worker's ``PYTHONPATH`` has the same version)."""
    import hashlib

    libraries: dict[str, str | None] = {}
    try:
        from PIL import features

        for name in PILLOW_LIBRARIES:
            try:
                libraries[name] = features.version(name)
            except ValueError:  # a name this Pillow does not know
                libraries[name] = None
    except ImportError:
        pass
    try:
        import pillow_heif

        libraries["libheif"] = pillow_heif.libheif_version()
    except ImportError:
        libraries["libheif"] = None
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return {"packages": package_versions(NUMBER_PACKAGES), "libraries": libraries, "git": git_commit(),
            "source_sha256": digest.hexdigest()[:16], "python": sys.version.split()[0]}


def record_differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Each difference between two :func:`code_record` s, as ``what: here X, there Y``."""
    def flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(mine), flat(theirs or {})
    if mine.get("git") is None or (theirs or {}).get("git") is None:  # one side not a checkout: compare as a whole
        a["git"], b["git"] = mine.get("git"), (theirs or {}).get("git")
    return [f"{key}: here {a.get(key)}, there {b.get(key)}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


# -- machine load ------------------------------------------------------------------------------------------------

class MachineBusy(CdcBenchError):
    """The load average exceeded the number of cores and the caller asked to refuse (``--strict``)."""

    exit_code = 3


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (``None`` where the platform has none), recorded before and after a run."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def load_1min() -> float | None:
    """The 1-minute load average (``None`` where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


#: a sweep's rows can arrive many per second; its load is sampled at most this often (plus start and end)
SWEEP_SAMPLE_S = 10.0


class LoadMonitor:
    """Samples the 1-minute load average at chosen moments (start, after every timed round, end)."""

    def __init__(self, cores: int | None = None, strict: bool = False):
        self.cores = cores or os.cpu_count() or 1
        self.strict = strict
        self.samples: list[float] = []
        self._last_sample = float("-inf")

    @property
    def peak(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def busy(self) -> bool:
        return self.peak is not None and self.peak > self.cores

    def describe(self) -> str:
        return (f"the 1-minute load average reached {self.peak:.2f} on {self.cores} cores: other processes "
                "competed for the CPU during the run")

    def sample(self, where: str = "") -> float | None:
        """Record the load now; raise :class:`MachineBusy` in strict mode when it exceeds the cores."""
        self._last_sample = time.monotonic()
        value = load_1min()
        if value is not None:
            self.samples.append(round(value, 2))
            if self.strict and value > self.cores:
                raise MachineBusy(f"refusing to measure ({'--strict'}{', ' + where if where else ''}): "
                                  f"load average {value:.2f} exceeds the {self.cores} cores; run when the machine "
                                  "is quiet, or without --strict to measure anyway (CPU time is still compared)")
        return value

    def sample_every(self, seconds: float) -> float | None:
        """:meth:`sample`, unless the last sample is less than ``seconds`` old (then nothing is recorded)."""
        if time.monotonic() - self._last_sample < seconds:
            return None
        return self.sample()

    def as_dict(self) -> dict[str, Any]:
        return {"cores": self.cores, "peak_1min": self.peak, "busy": self.busy, "samples": self.samples}
