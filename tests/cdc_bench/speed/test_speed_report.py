"""``speed.report``: the saved JSON round-trips and unreadable files fail with the file's name."""

from __future__ import annotations

import json

import pytest

from cdc_bench.speed import SCHEMA, SpeedReportError, load_report, save_report

def test_report_round_trip_and_clear_errors(tmp_path):
    report = {"schema": SCHEMA, "codec": "cdc", "env": {"device": "cpu"}, "settings": {"sizes": ["64x64"]},
              "encode": [{"width": 64, "height": 64, "encode": {"median": 0.1}}],
              "rows": [{"width": 64, "height": 64, "steps": 1, "decode": {"median": 1.0}}]}
    path = save_report(report, tmp_path / "sub" / "speed.json")
    assert load_report(path) == report
    with pytest.raises(SpeedReportError, match="missing.json: no such file"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpeedReportError, match="bad.json: not a readable JSON"):
        load_report(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({**report, "schema": "something-else"}))
    with pytest.raises(SpeedReportError, match="report format 'something-else'"):
        load_report(tmp_path / "other.json")
    (tmp_path / "norows.json").write_text(json.dumps({"schema": SCHEMA}))
    with pytest.raises(SpeedReportError, match="missing codec, env, settings, encode, rows"):
        load_report(tmp_path / "norows.json")
    (tmp_path / "old.json").write_text(json.dumps({**report, "schema": "cdc-bench-speed/1"}))
    with pytest.raises(SpeedReportError, match="encode timed once per size.*measure the baseline again"):
        load_report(tmp_path / "old.json")
