"""The registry finds codecs through entry points, as a third-party package would declare them."""

import textwrap

import pytest

from cdc_bench.codecs import registry
from cdc_bench.registry import UnknownNameError
from cdc_bench.codecs.registry import create_codec, describe_codecs, get_codec_class


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A tiny installed distribution (a .dist-info on sys.path) that declares two codecs by entry point."""
    (tmp_path / "thirdparty_codec.py").write_text(textwrap.dedent('''
        import zlib
        import numpy as np
        from cdc_bench.codecs.base import Availability, Codec

        class ZlibCodec(Codec):
            name = "zlib-raw"
            description = "lossless: raw RGB through zlib"
            rate_points = (1, 9)
            def _encode(self, image, rate):
                h, w, _ = image.shape
                return h.to_bytes(4, "big") + w.to_bytes(4, "big") + zlib.compress(image.tobytes(), int(rate))
            def _decode(self, data):
                h, w = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
                return np.frombuffer(zlib.decompress(data[8:]), np.uint8).reshape(h, w, 3)

        class Missing(Codec):
            name = "needs-binary"
            @classmethod
            def availability(cls):
                return Availability(False, "binary foo not on PATH", "apt-get install foo")

        class Family:
            def variants(self):
                return ["a", "b"]
            def codec_for(self, variant):
                return type(f"Fam{variant}", (ZlibCodec,), {"name": f"fam:{variant}"})

        FAMILY = Family()
    '''))
    dist = tmp_path / "thirdparty_codec-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-codec\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[cdc_bench.codecs]\nzlib-raw = thirdparty_codec:ZlibCodec\nneeds-binary = thirdparty_codec:Missing\n"
        "fam = thirdparty_codec:FAMILY\nbroken = thirdparty_codec_absent:Nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.CODECS.refresh()  # entry points are listed once: a package installed now needs a refresh
    yield tmp_path
    registry.CODECS.refresh()


def test_entry_point_codec_round_trips(installed_plugin):
    import numpy as np

    codec = create_codec("zlib-raw")
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(codec.decode(codec.encode(image, 9).data), image)
    assert "zlib-raw" in registry.codec_names()


def test_families_expand_to_variants(installed_plugin):
    assert {"fam:a", "fam:b"} <= set(registry.codec_names())
    assert get_codec_class("fam:b").name == "fam:b"
    with pytest.raises(UnknownNameError, match="fam:a"):
        get_codec_class("fam:c")


def test_describe_reports_unavailable_and_broken_plugins(installed_plugin):
    infos = {info.name: info for info in describe_codecs()}
    assert infos["zlib-raw"].availability.ok and infos["zlib-raw"].rate_points == (1, 9)
    assert not infos["needs-binary"].availability.ok
    assert infos["needs-binary"].availability.fix == "apt-get install foo"
    assert not infos["broken"].availability.ok
    assert "thirdparty_codec_absent" in infos["broken"].availability.reason


def test_unknown_name_suggests_close_matches(installed_plugin):
    with pytest.raises(UnknownNameError) as err:
        get_codec_class("zlib-rw")
    assert "Did you mean zlib-raw" in str(err.value)
    assert "needs-binary" in str(err.value)


def test_in_process_registration():
    from cdc_bench.codecs.base import Codec

    @registry.register
    class Local(Codec):
        name = "local-test-codec"

    try:
        assert get_codec_class("local-test-codec") is Local
    finally:
        registry.unregister("local-test-codec")
    with pytest.raises(UnknownNameError):
        get_codec_class("local-test-codec")


def test_datasets_and_weights_use_the_one_registry(tmp_path, monkeypatch):
    from cdc_bench import datasets, weights
    from cdc_bench.datasets.local import FolderDataset
    from cdc_bench.registry import Registry

    assert isinstance(datasets.DATASETS, Registry) and isinstance(weights.WEIGHTS, Registry)
    assert "kodak" in datasets.dataset_names() and "default" in datasets.dataset_names()
    with pytest.raises(UnknownNameError, match="Did you mean kodak"):
        datasets.get_dataset("kodk")
    # a plug-in dataset is registered like a codec and found by get_dataset
    (tmp_path / "pics").mkdir()
    datasets.DATASETS.register(lambda data_root: FolderDataset(tmp_path / "pics"), name="my-pics")
    try:
        assert "my-pics" in datasets.dataset_names()
        assert isinstance(datasets.get_dataset("my-pics"), FolderDataset)
    finally:
        datasets.DATASETS.unregister("my-pics")
    with pytest.raises(UnknownNameError, match="weight file"):
        weights.get_weight("no-such-file")


def test_weight_files_come_from_entry_points(tmp_path, monkeypatch):
    """A third-party package declares a weight file by entry point, without any module list in cdc-bench."""
    from cdc_bench import weights
    from cdc_bench.sweep import catalog

    (tmp_path / "thirdparty_weights.py").write_text(textwrap.dedent('''
        from cdc_bench.weights import WeightFile
        FILE = WeightFile("thirdparty/model.pt", "https://example.org/model.pt", "/nonexistent/model.pt",
                          used_by=["thirdparty"])
    '''))
    dist = tmp_path / "thirdparty_weights-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-weights\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cdc_bench.weights]\nthirdparty/model.pt = thirdparty_weights:FILE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    weights.WEIGHTS.refresh()  # entry points are listed once: a package installed now needs a refresh
    try:
        assert weights.get_weight("thirdparty/model.pt").used_by == ["thirdparty"]
        assert [w.name for w in catalog.weights_for("thirdparty")] == ["thirdparty/model.pt"]
    finally:
        monkeypatch.undo()
        weights.WEIGHTS.refresh()


def test_a_taken_name_is_not_silently_replaced():
    from cdc_bench.registry import Registry

    reg = Registry("thing")
    reg.register(object(), name="a")
    reg.register_lazy("b", "json:dumps")
    reg.register_lazy("b", "json:dumps")  # the same target again is fine
    with pytest.raises(ValueError, match="registered already"):
        reg.register_lazy("b", "json:loads")
    reg.register_lazy("b", "json:loads", override=True)
    assert reg.get("b") is __import__("json").loads
