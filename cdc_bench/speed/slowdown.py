"""A test hook that makes the CDC denoiser deliberately slower, to check that the regression gate catches it.

    CDC_BENCH_TEST_SLOWDOWN=1.3 cdc-bench speed -c cdc ... --compare base.json    # expect exit 1

Only the speed harness reads the variable (``run_speed``), and the report records it (``env.test_slowdown``)
and says so in its notes. The hook wraps the target method (default: the CDC U-Net's ``forward``; another one
with ``CDC_BENCH_TEST_SLOWDOWN_TARGET=package.module:Class.method``) for the duration of the run, and after each
call burns ``(factor - 1)`` times the CPU time the call used. It burns CPU rather than sleeping because a real
regression is more work, and because the gate decides on CPU time, which a sleep does not consume. It is a
CPU-side hook: on CUDA the forward call only queues kernels, so the injected cost would be small.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import ConfigError

ENV = "CDC_BENCH_TEST_SLOWDOWN"
TARGET_ENV = "CDC_BENCH_TEST_SLOWDOWN_TARGET"
DEFAULT_TARGET = "cdc_bench.cdc.unet:Unet.forward"


class SlowdownHookError(ConfigError):
    """The test hook's variables are set to something unusable."""


def requested() -> tuple[float, str] | None:
    """``(factor, target)`` from the environment, or ``None`` when the hook is off."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        factor = float(text)
    except ValueError:
        factor = math.nan
    if not math.isfinite(factor) or factor < 1:
        raise SlowdownHookError(f"{ENV}={text!r}: expected a factor >= 1 such as 1.3")
    return factor, os.environ.get(TARGET_ENV, "").strip() or DEFAULT_TARGET


def burn_cpu(seconds: float) -> None:
    """Spin until this process has used ``seconds`` more CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _resolve(target: str) -> tuple[Any, str]:
    module_name, sep, qualname = target.partition(":")
    owner_path, _, attr = qualname.rpartition(".")
    if not sep or not attr:
        raise SlowdownHookError(f"{TARGET_ENV}={target!r}: expected package.module:Class.method")
    try:
        owner: Any = importlib.import_module(module_name)
        for part in filter(None, owner_path.split(".")):
            owner = getattr(owner, part)
        getattr(owner, attr)
    except (ImportError, AttributeError) as err:
        raise SlowdownHookError(f"test slowdown target {target!r} cannot be found ({err})") from None
    return owner, attr


@contextmanager
def injected_slowdown(factor: float, target: str = DEFAULT_TARGET) -> Iterator[None]:
    """Make every call of ``target`` cost ``factor`` times its CPU time while the block runs."""
    owner, attr = _resolve(target)
    own = attr in vars(owner)   # defined here, not inherited: restore it rather than delete the wrapper
    original = vars(owner)[attr] if own else getattr(owner, attr)

    @functools.wraps(original)
    def slowed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        out = original(*args, **kwargs)
        burn_cpu((factor - 1) * (time.process_time() - start))
        return out

    setattr(owner, attr, slowed)
    try:
        yield
    finally:
        if own:
            setattr(owner, attr, original)
        else:
            delattr(owner, attr)
