"""The client's plan of a rerun: a metric added to a ``--save-recon`` sweep is measured from the saved
reconstructions, which the planned tasks name by path (the worker reads each when it runs), never hold."""

from __future__ import annotations

import os
import pickle
from dataclasses import fields

import numpy as np
import pytest
from PIL import Image

from cdc_bench.store.key import KEY
from cdc_bench.sweep import api, client
from cdc_bench.sweep.worker import Task, run_task, with_recon_bytes

N_IMAGES = 5
QUALITIES = "20,80"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def _run(images, out, metrics, **kwargs):
    return api.run([f"folder:{images}"], ["jpeg"], qualities=QUALITIES, metrics=metrics, out=out, workers=0,
                   timeout=None, **kwargs)


def _values(out, column):
    import cdc_bench

    rows = cdc_bench.load(out).rows
    return {tuple(r[k] for k in KEY): r[column] for _, r in rows.iterrows()}


def _rerun_plan(images, out, monkeypatch) -> list[Task]:
    """The tasks the client plans (and runs) when ``psnr-y`` is added to a --save-recon sweep of ``psnr``."""
    planned: list[list[Task]] = []
    plan = client.pending_tasks

    def spy(*args, **kwargs):
        planned.append(plan(*args, **kwargs))
        return planned[-1]

    monkeypatch.setattr(client, "pending_tasks", spy)
    _run(images, out, "psnr,psnr-y")
    monkeypatch.undo()
    (tasks,) = planned
    return tasks


def test_a_rerun_adding_a_metric_plans_paths_not_bytes_and_measures_what_a_fresh_run_does(images, tmp_path,
                                                                                         monkeypatch):
    _run(images, tmp_path / "a", "psnr", save_recon=True)
    encode_s = _values(tmp_path / "a", "encode_s")
    tasks = _rerun_plan(images, tmp_path / "a", monkeypatch)
    assert len(tasks) == N_IMAGES * 2 and all(t.metrics == ("psnr-y",) for t in tasks)
    for task in tasks:   # what the client holds per task: a path, no reconstruction
        assert task.recon_png is None and task.image_data is None and task.recon_path.endswith(".png")
        assert os.path.isabs(task.recon_path)   # a worker with another working folder (Dask, --shared-fs) finds it
        assert not any(isinstance(getattr(task, f.name), bytes) for f in fields(task))
        assert len(pickle.dumps(task)) < 1500
    assert _values(tmp_path / "a", "encode_s") == encode_s   # measured from the saved files: nothing re-encoded

    _run(images, tmp_path / "fresh", "psnr,psnr-y")
    fresh, rerun = _values(tmp_path / "fresh", "psnr_y"), _values(tmp_path / "a", "psnr_y")
    assert len(fresh) == N_IMAGES * 2 and rerun == fresh


def test_a_remote_worker_gets_the_bytes_read_when_it_is_sent(images, tmp_path, monkeypatch):
    from cdc_bench.sweep.batching import TaskBatch

    _run(images, tmp_path / "a", "psnr", save_recon=True)
    todo = _rerun_plan(images, tmp_path / "a", monkeypatch)[0]
    sent = with_recon_bytes(todo)
    assert sent.recon_path is None and sent.recon_png == open(todo.recon_path, "rb").read()
    assert run_task(sent).row["psnr_y"] == run_task(todo).row["psnr_y"]
    assert "encode_s" not in run_task(sent).row   # measured only
    (batched,) = with_recon_bytes(TaskBatch((todo,))).tasks
    assert batched.recon_png == sent.recon_png


def test_a_reconstruction_gone_before_its_item_runs_is_run_whole(images, tmp_path, monkeypatch):
    _run(images, tmp_path / "a", "psnr", save_recon=True)
    todo = _rerun_plan(images, tmp_path / "a", monkeypatch)[0]
    os.unlink(todo.recon_path)
    assert with_recon_bytes(todo).recon_png is None
    result = run_task(todo)
    assert result.row["status"] == "ok" and result.row["bytes"] > 0 and result.row["psnr_y"] > 0


def test_a_damaged_row_stops_a_rerun_before_any_work_and_its_fix_restores_the_numbers(images, tmp_path):
    import sqlite3

    from cdc_bench.errors import StoreError

    out = tmp_path / "a"
    _run(images, out, "psnr")
    before = _values(out, "psnr")
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE results SET psnr = 'x' WHERE image = 'im1' AND quality = '80'")
    with pytest.raises(StoreError, match=r"im1, jpeg, .*80.*psnr is 'x', not a number") as err:
        _run(images, out, "psnr")   # a damaged value is never taken for a measured one
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute(str(err.value).split('"')[-2])   # the DELETE the message gives
    _run(images, out, "psnr")
    assert _values(out, "psnr") == before
