"""``speed.slowdown``: the test hook multiplies the target's CPU time and is undone after the run."""

from __future__ import annotations

import time

import pytest

from cdc_bench.speed import SpeedConfig, run_speed, timed
from cdc_bench.speed.slowdown import ENV, TARGET_ENV, SlowdownHookError, injected_slowdown, requested


class Work:
    def run(self) -> int:
        end = time.process_time() + 0.05
        n = 0
        while time.process_time() < end:
            n += 1
        return n


def _cpu(fn) -> float:
    return timed(fn)[0].cpu


def test_the_hook_multiplies_cpu_time_and_restores_the_method():
    original = Work.run
    before = _cpu(Work().run)
    with injected_slowdown(1.5, f"{__name__}:Work.run"):
        assert Work.run is not original
        slowed = _cpu(Work().run)
    assert Work.run is original
    assert slowed / before == pytest.approx(1.5, rel=0.1)


def test_requested_reads_the_environment(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert requested() is None
    monkeypatch.setenv(ENV, "1.3")
    assert requested() == (1.3, "cdc_bench.cdc.unet:Unet.forward")
    monkeypatch.setenv(TARGET_ENV, "x.y:Z.w")
    assert requested() == (1.3, "x.y:Z.w")
    for bad in ("0.5", "nan", "fast"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(SlowdownHookError, match="expected a factor >= 1"):
            requested()


def test_run_speed_applies_the_hook_and_says_so(monkeypatch):
    monkeypatch.setenv(ENV, "1.3")
    import torch.nn.functional as F

    original = F.conv2d
    monkeypatch.setenv(TARGET_ENV, "torch.nn.functional:conv2d")  # the toy codec's decoder calls it every step
    report = run_speed(SpeedConfig("speedtoy", steps=[1], sizes=[(8, 8)], repeats=1, warmup=0))
    assert report["env"]["test_slowdown"] == {"factor": 1.3, "target": "torch.nn.functional:conv2d"}
    assert any(n.startswith("TEST HOOK") for n in report["notes"])
    assert F.conv2d is original  # undone after the run
    monkeypatch.setenv(TARGET_ENV, "torch.nn.functional:no_such_function")
    with pytest.raises(SlowdownHookError, match="cannot be found"):
        run_speed(SpeedConfig("speedtoy", steps=[1], sizes=[(8, 8)], repeats=1, warmup=0))
