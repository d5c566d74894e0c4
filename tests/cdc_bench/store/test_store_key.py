"""The one reader of the stored options JSON refuses options that are not a JSON object."""

import math

import pytest

from cdc_bench.errors import StoreError
from cdc_bench.store.key import options_dict


def test_options_dict_reads_objects_and_nothing():
    assert options_dict('{"steps": 65}') == {"steps": 65}
    assert options_dict({"a": 1}) == {"a": 1}
    assert options_dict("") == {} and options_dict(None) == {} and options_dict(math.nan) == {}


@pytest.mark.parametrize("options", ["{bad", "[1, 2]", '"text"', "5", 5])
def test_options_that_are_not_a_json_object_are_a_store_error(options):
    with pytest.raises(StoreError, match=r"not a JSON object; .*delete the row and rerun"):
        options_dict(options)
