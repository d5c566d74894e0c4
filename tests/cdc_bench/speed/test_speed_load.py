"""The speed command's load-average watch (``provenance.LoadMonitor``), with ``os.getloadavg`` replaced by a fixed value."""

from __future__ import annotations

import os

import pytest

from cdc_bench.speed import LoadMonitor, MachineBusy, SpeedConfig, run_speed


def _load(monkeypatch, value: float) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (value, value, value))


def test_busy_only_above_the_number_of_cores(monkeypatch):
    _load(monkeypatch, 2.0)
    monitor = LoadMonitor(cores=2)
    monitor.sample()
    assert not monitor.busy
    _load(monkeypatch, 2.5)
    monitor.sample()
    assert monitor.busy and monitor.as_dict() == {"cores": 2, "peak_1min": 2.5, "busy": True, "samples": [2.0, 2.5]}


def test_strict_refuses_at_the_first_busy_sample(monkeypatch):
    _load(monkeypatch, 9.0)
    with pytest.raises(MachineBusy, match=r"load average 9.00 exceeds the \d+ cores"):
        LoadMonitor(strict=True).sample("at the start")


def test_a_busy_run_is_measured_and_noted_without_strict(monkeypatch):
    _load(monkeypatch, 1000.0)
    report = run_speed(SpeedConfig("speedtoy", steps=[1], sizes=[(8, 8)], repeats=1, warmup=0))
    assert report["load"]["busy"] and report["load"]["peak_1min"] == 1000.0
    assert any(n.startswith("machine busy") for n in report["notes"])
    with pytest.raises(MachineBusy):
        run_speed(SpeedConfig("speedtoy", steps=[1], sizes=[(8, 8)], repeats=1, warmup=0), strict=True)


def test_a_quiet_run_is_not_busy(monkeypatch):
    _load(monkeypatch, 0.0)
    report = run_speed(SpeedConfig("speedtoy", steps=[1], sizes=[(8, 8)], repeats=2, warmup=0), strict=True)
    assert report["load"]["busy"] is False and len(report["load"]["samples"]) == 4  # start, 2 rounds, end
