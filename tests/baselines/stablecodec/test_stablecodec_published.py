"""StableCodec's published results as a --reference overlay."""

import pytest

from cdc_bench.analysis.published import PublishedReferenceError, reference_names, resolve_reference


@pytest.mark.parametrize("dataset, n, first_bpp, last_fid", [
    ("kodak", 9, 0.00579, 53.32), ("clic2020", 9, 0.00444, 3.34), ("div2k", 9, 0.00573, 9.45)])
def test_each_dataset_is_one_curve_of_the_nine_releases(dataset, n, first_bpp, last_fid):
    (curve,) = resolve_reference("stablecodec", dataset)
    assert curve.legend == "StableCodec (published)" and len(curve.points) == n
    assert curve.points["bpp"].iloc[0] == first_bpp and curve.points["fid"].iloc[-1] == last_fid
    assert curve.points["bpp"].is_monotonic_increasing
    assert list(curve.points["lambda"]) == [32, 24, 16, 12, 8, 6, 4, 3, 2]
    assert bool(curve.notes) == (dataset == "kodak")


def test_clic_has_kid_and_kodak_does_not():
    assert resolve_reference("stablecodec", "clic2020")[0].points["kid"].notna().all()
    assert resolve_reference("stablecodec", "kodak")[0].points["kid"].isna().all()


def test_named_and_unknown_datasets():
    assert "stablecodec" in reference_names()
    with pytest.raises(PublishedReferenceError, match="no rows for dataset"):
        resolve_reference("stablecodec", "tecnick")
