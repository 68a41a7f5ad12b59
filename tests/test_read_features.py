"""train and evaluate read only the feature table's columns they use, as pandas reads them."""

import numpy as np
import pandas as pd
import pytest

from kalshi_lab import paths
from kalshi_lab.errors import DataError
from kalshi_lab.features.read import read_features, read_inputs
from kalshi_lab.models.fit import take_rows


@pytest.fixture
def table(tmp_path, monkeypatch) -> pd.DataFrame:
    """A small feature table at paths.FEATURES (relative: the test runs in ``tmp_path``)."""
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame(
        {
            "ticker": ["A-1", "A-2", "B-1"],
            "as_of": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"], utc=True),
            "RET_1": [0.1, np.nan, -0.2],
            "LOGIT_MID": [0.0, 1.5, -np.inf],
        }
    )
    paths.FEATURES.parent.mkdir(parents=True)
    frame.to_parquet(paths.FEATURES)
    return frame


def test_the_named_columns_are_read_once_each_in_order_as_pandas_reads_them(table):
    read = read_features(["LOGIT_MID", "ticker", "LOGIT_MID", "as_of"])
    pd.testing.assert_frame_equal(
        read, pd.read_parquet(paths.FEATURES)[["LOGIT_MID", "ticker", "as_of"]]
    )


def test_a_column_the_table_lacks_is_one_error_naming_it(table):
    with pytest.raises(DataError, match=r"lacks the columns \['TARGET'\]: run the features"):
        read_features(["ticker", "TARGET"])


def test_the_inputs_are_the_pandas_read_of_the_rows_bit_for_bit_in_one_column_major_matrix(table):
    rows = np.array([True, False, True])
    inputs = read_inputs(["LOGIT_MID", "RET_1"], rows)
    expected = pd.read_parquet(paths.FEATURES)[["LOGIT_MID", "RET_1"]][rows]
    assert list(inputs.columns) == ["LOGIT_MID", "RET_1"]
    values = inputs.to_numpy()
    # the same bits (float64, NaN and inf where they were) and the layout of a pandas frame
    # of one dtype, which the models' sums over rows were computed in
    np.testing.assert_array_equal(values.view(np.int64), expected.to_numpy().view(np.int64))
    assert values.flags.f_contiguous
    assert np.shares_memory(values, inputs.to_numpy())  # one matrix, no copy in the frame


def test_a_period_takes_its_rows_column_major_and_the_live_model_all_of_them_uncopied(table):
    inputs = read_inputs(["LOGIT_MID", "RET_1"], np.ones(3, dtype=bool))
    rows = np.array([False, True, True])
    taken = take_rows(inputs, rows)
    np.testing.assert_array_equal(taken.to_numpy(), inputs.to_numpy()[rows])
    assert taken.to_numpy().flags.f_contiguous and list(taken.columns) == list(inputs.columns)
    assert take_rows(inputs, np.ones(3, dtype=bool)) is inputs


def test_an_input_column_the_table_lacks_is_one_error_naming_it(table):
    with pytest.raises(DataError, match=r"lacks the columns \['RET_2'\]: run the features"):
        read_inputs(["RET_1", "RET_2"], np.ones(3, dtype=bool))


def test_the_rows_of_a_mask_are_read_in_order_as_the_whole_tables_rows(table):
    columns = ["LOGIT_MID", "ticker", "as_of"]
    for mask in ([True, False, True], [False, False, True], [False, False, False]):
        rows = np.array(mask)
        pd.testing.assert_frame_equal(
            read_features(columns, rows), table[columns][rows].reset_index(drop=True)
        )


def test_a_mask_of_another_tables_length_is_one_error(table):
    with pytest.raises(DataError, match="has 3 rows, the split was made on 4"):
        read_features(["ticker"], np.ones(4, dtype=bool))
