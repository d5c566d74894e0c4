import io

from cdc_bench.sweep.progress import LineProgress, make_progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_without_a_terminal_a_kodak_sized_sweep_logs_a_few_dozen_lines():
    out, clock = io.StringIO(), Clock()
    bar = LineProgress(1104, out, clock=clock)  # the Kodak classical sweep's item count
    for i in range(1104):
        clock.t += 1.5  # 27.6 min in all
        bar.set_postfix_str(f"jpeg kodim{i % 24:02d} q={i % 19}")
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 20 <= len(lines) < 60
    assert lines[-1].startswith("cdc-bench: 1104/1104 items (100%), 27m36s elapsed, ~0m00s left")
    assert "last: jpeg" in lines[0]


def test_slow_items_still_log_every_minute():
    out, clock = io.StringIO(), Clock()
    bar = LineProgress(1000, out, clock=clock)
    for _ in range(3):
        clock.t += 61
        bar.update(1)
    assert len(out.getvalue().splitlines()) == 3 and "(0%)" in out.getvalue()


def test_make_progress_picks_by_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(make_progress(10, True, io.StringIO()), LineProgress)
    assert type(make_progress(10, True, Tty())).__name__ == "tqdm"
    silent = make_progress(10, False, io.StringIO())
    silent.update(1)
    silent.close()
