"""Dataset means refuse text in a number column instead of leaving the column (or the row) out."""

import pandas as pd
import pytest

from cdc_bench.analysis.summary import dataset_means
from cdc_bench.errors import StoreError


def _frame(psnr):
    return pd.DataFrame({"dataset": "d", "image": ["a", "b"], "codec": "jpeg", "options": "{}", "quality": "5",
                         "preprocess": "none", "device": "cpu", "status": "ok", "bpp": [0.5, 0.7], "psnr": psnr})


def test_text_in_a_metric_column_is_refused_naming_the_row_and_column():
    with pytest.raises(StoreError, match=r"results: row 1 \(d, b, jpeg, \{\}, 5, none, cpu\): psnr is 'x', not a "
                                         r"number; .*rerun"):
        dataset_means(_frame([30.0, "x"]))


def test_numbers_held_as_objects_are_averaged_not_dropped():
    means = dataset_means(_frame(pd.Series([30.0, 32.0], dtype=object)))
    assert means["psnr"].tolist() == [31.0] and means["n_images"].tolist() == [2]
