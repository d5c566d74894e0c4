"""The learned codecs' size gates: ``max_pixels`` first, then the memory a decode of that size needs."""
from __future__ import annotations

import resource

import pytest

from cdc_bench.codecs import learned
from cdc_bench.codecs.learned import GIB, LearnedCodec, _cgroup_room, available_memory
from cdc_bench.errors import BitstreamError, CodecError


class Sized(LearnedCodec):
    name = "sized-test"
    option_specs = {"max_pixels": learned.MAX_PIXELS_OPTION}
    decode_bytes_per_pixel = 1000.0
    decode_model_bytes = 100 << 20


def test_memory_gate_names_size_estimate_room_and_knob(monkeypatch):
    monkeypatch.setattr(learned, "available_memory", lambda: (int(2 * GIB), "available system memory"))
    codec = Sized()
    codec.check_size(1000, 1000)  # 1 GB + the model fits in 2 GiB
    with pytest.raises(BitstreamError) as err:
        codec.check_size(2048, 2048)  # 4.2 GB does not, although max_pixels (8.4 Mpx) allows it
    message = str(err.value)
    for part in ("2048x2048", "4194304 pixels", "4.0 GiB", "1000 bytes/pixel", "2.0 GiB of available system "
                 "memory", "-o sized-test.max_pixels=N"):
        assert part in message
    with pytest.raises(CodecError, match="needs about"):
        codec.check_size(2048, 2048, error=CodecError)


def test_memory_gate_can_be_switched_off_and_a_bad_switch_is_refused(monkeypatch, tmp_path):
    import cdc_bench
    from cdc_bench.errors import ConfigError

    monkeypatch.setattr(learned, "available_memory", lambda: (0, "available system memory"))
    with pytest.raises(BitstreamError, match="CDC_BENCH_MEMORY_CHECK=off decodes anyway"):
        Sized().check_memory(64, 64)
    monkeypatch.setenv("CDC_BENCH_MEMORY_CHECK", "off")
    Sized().check_memory(64, 64)   # decoded, whatever the estimate says
    Sized().check_size(64, 64)
    monkeypatch.setenv("CDC_BENCH_MEMORY_CHECK", "sometimes")
    with pytest.raises(ConfigError, match="CDC_BENCH_MEMORY_CHECK='sometimes': give on .* or off"):
        Sized().check_memory(64, 64)
    with pytest.raises(ConfigError, match="CDC_BENCH_MEMORY_CHECK"):   # a run refuses it before any work
        cdc_bench.run([f"folder:{tmp_path}"], ["jpeg"], out=tmp_path / "out", workers=0)
    assert not (tmp_path / "out").exists()


def test_memory_gate_counts_a_batch_and_the_model_only_when_not_loaded(monkeypatch):
    monkeypatch.setattr(learned, "available_memory", lambda: (int(1.05e9), "available system memory"))
    codec = Sized()
    with pytest.raises(BitstreamError, match="1000x1000 .* needs about 1.0 GiB"):
        codec.check_memory(1000, 1000)  # 1e9 + 100 MiB
    codec._loaded = ("key", object())
    codec.check_memory(1000, 1000)  # the network already sits in memory
    with pytest.raises(BitstreamError, match="decoding 2 images of 1000x1000"):
        codec.check_memory(1000, 1000, images=2)


def test_the_ceiling_comes_first_and_unmeasured_codecs_skip_the_memory_gate(monkeypatch):
    monkeypatch.setattr(learned, "available_memory", lambda: (0, "available system memory"))
    with pytest.raises(BitstreamError, match="too large .*max_pixels="):
        Sized().check_size(4096, 4096)

    class Unmeasured(Sized):
        decode_bytes_per_pixel = None

    Unmeasured().check_size(2048, 2048)  # only max_pixels applies
    Sized(device="cuda").check_size(64, 64)  # a GPU decode is not described by CPU figures


def test_available_memory_is_bounded_by_an_address_space_limit():
    import subprocess
    import sys

    script = ("import resource; from cdc_bench.codecs.learned import available_memory\n"
              "import psutil; vms = psutil.Process().memory_info().vms\n"
              "resource.setrlimit(resource.RLIMIT_AS, (vms + (256 << 20), resource.RLIM_INFINITY))\n"
              "print(*available_memory(), sep='|')")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    room, source = out.stdout.strip().split("|")
    assert source == "room under the address-space limit (RLIMIT_AS)" and 0 < int(room) <= 256 << 20


def test_available_memory_without_limits_is_the_systems():
    import psutil

    if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY or _cgroup_room() is not None:
        pytest.skip("this process runs under a memory limit")
    room, source = available_memory()
    assert source == "available system memory"
    assert abs(room - psutil.virtual_memory().available) < 1 << 30


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_cgroup_room_subtracts_usage_and_counts_reclaimable_cache(tmp_path, version):
    if version == "v2":
        (tmp_path / "memory.max").write_text("4000000000\n")
        (tmp_path / "memory.current").write_text("3000000000\n")
        (tmp_path / "memory.stat").write_text("anon 2000000000\ninactive_file 500000000\n")
    else:
        (tmp_path / "memory").mkdir()
        (tmp_path / "memory/memory.limit_in_bytes").write_text("4000000000\n")
        (tmp_path / "memory/memory.usage_in_bytes").write_text("3000000000\n")
        (tmp_path / "memory/memory.stat").write_text("total_inactive_file 500000000\n")
    assert _cgroup_room(tmp_path) == 1_500_000_000


def test_cgroup_without_a_limit_gives_no_room_figure(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("3000000000\n")
    assert _cgroup_room(tmp_path) is None
    (tmp_path / "memory.max").unlink()
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory/memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "memory/memory.usage_in_bytes").write_text("3000000000\n")
    assert _cgroup_room(tmp_path) is None
