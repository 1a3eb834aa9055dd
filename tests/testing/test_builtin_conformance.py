"""Every built-in adapter passes the conformance kit (one subclass per adapter)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.testing import AdapterConformanceTests
from fitpipe.testing.fixtures import (
    ArrayPyDataset,
    arrow_table,
    columnar_schema,
    iterate_batches,
    write_parquet,
)


class TestNumpyConformance(AdapterConformanceTests):
    adapter_name = "numpy"
    foreign_inputs_taken = frozenset({"numpy"})

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return x


class TestTensorConformance(AdapterConformanceTests):
    adapter_name = "tensor"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return tf.constant(x)


class TestPandasConformance(AdapterConformanceTests):
    adapter_name = "pandas"
    foreign_inputs_taken = frozenset({"pandas"})

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return pd.DataFrame(x, columns=[f"c{i}" for i in range(x.shape[1])])

    def test_claimed_schema_is_exercised(self) -> None:
        pytest.skip(
            "this suite reads a DataFrame as an array; TestPandasSchemaConformance "
            "reads one by a schema"
        )


class TestMappingConformance(AdapterConformanceTests):
    adapter_name = "mapping"
    foreign_inputs_taken = frozenset({"dict"})

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return {"first": x[:, :1], "rest": x[:, 1:]}

    def expected_x(self, x: np.ndarray) -> Any:
        return {"first": x[:, :1], "rest": x[:, 1:]}


class TestSequenceConformance(AdapterConformanceTests):
    adapter_name = "sequence"
    foreign_inputs_taken = frozenset({"list"})

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return [x, x[:, :1] * 2]

    def expected_x(self, x: np.ndarray) -> Any:
        return (x, x[:, :1] * 2)  # lists become tuples, as in tf.data structures


class TestGeneratorConformance(AdapterConformanceTests):
    adapter_name = "generator"
    foreign_inputs_taken = frozenset({"generator"})

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return iterate_batches(x, y, sample_weight, batch_size)


class TestTFDataConformance(AdapterConformanceTests):
    adapter_name = "tf.data"
    foreign_inputs_taken = frozenset({"tf.data"})

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        parts = tuple(part for part in (x, y, sample_weight) if part is not None)
        return tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)


class TestPyDatasetConformance(AdapterConformanceTests):
    adapter_name = "pydataset"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return ArrayPyDataset(x, y, sample_weight, batch_size)


def keyed_table(x: np.ndarray, y: Any, sample_weight: Any) -> pa.Table:
    """:func:`arrow_table` with a column ``key``: ``x[:, 0]`` as integers (for ``split_by``)."""
    return arrow_table(x, y, sample_weight, keyed=True)


class ColumnarConformance(AdapterConformanceTests):
    """The columnar adapters read the data of :func:`arrow_table` by its declared schema.

    Their inputs hold a column ``key`` too, the rows' keys for ``split_by``.
    """

    def schema_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> fitpipe.Schema | None:
        return columnar_schema(x, y, sample_weight)

    def split_by_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> Any:
        return "key"


class TestArrowTableConformance(ColumnarConformance):
    adapter_name = "arrow"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return keyed_table(x, y, sample_weight)


class TestPandasSchemaConformance(ColumnarConformance):
    """A DataFrame read by its declared schema (the pandas suite above reads it as an array)."""

    adapter_name = "pandas"
    foreign_inputs_taken = frozenset({"pandas"})

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return keyed_table(x, y, sample_weight).to_pandas()


class TestArrowRecordBatchConformance(ColumnarConformance):
    adapter_name = "arrow"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return keyed_table(x, y, sample_weight).combine_chunks().to_batches()[0]


class TestArrowStreamConformance(ColumnarConformance):
    adapter_name = "arrow-stream"
    one_shot = True  # a RecordBatchReader is read once, like a generator

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        # Record batches of 3 rows, so the adapter has to regroup them into `batch_size`.
        table = keyed_table(x, y, sample_weight)
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))


class TestParquetConformance(ColumnarConformance):
    adapter_name = "parquet"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        path = write_parquet(x, y, sample_weight)  # row groups of 5 rows, a new file per call
        pq.write_table(keyed_table(x, y, sample_weight), path, row_group_size=5)  # with `key`
        return path
