"""Adapters: one module per input form, and the registry that picks one for each input.

Built-in adapters, highest priority first (name, priority: what it takes):

- ``tf.data``, 100: ``tf.data.Dataset``
- ``distributed``, 100: ``tf.distribute`` distributed datasets
- ``pydataset``, 100: ``keras.utils.PyDataset``
- ``tensor``, 90: ``tf.Tensor``, ``tf.RaggedTensor``, ``tf.SparseTensor``
- ``pandas``, 80: pandas ``DataFrame``/``Series`` (lazy: imports pandas on use)
- ``arrow``, 75: ``pyarrow.Table``/``RecordBatch``, Arrow C stream exporters (Polars, DuckDB)
- ``arrow-stream``, 75: ``pyarrow.RecordBatchReader`` (a stream, read once)
- ``parquet``, 70: Parquet files, directories, globs, lists; ``pyarrow.dataset.Dataset``
- ``delta``, 70: ``deltalake.DeltaTable`` (lazy: for ``deltalake`` objects only)
- ``iceberg``, 70: pyiceberg ``Table`` and ``DataScan`` (lazy: for ``pyiceberg`` objects only)
- ``grain``, 60: Grain ``MapDataset``/``IterDataset``/``DataLoader`` (lazy: for ``grain``
  objects only)
- ``torch``, 60: ``torch.utils.data.DataLoader`` (lazy: for ``torch`` objects only)
- ``generator``, 50: Python generators and iterators
- ``sparse``, 45: SciPy sparse matrices/arrays, JAX BCOO arrays (lazy: for ``scipy``/``jax``
  objects only)
- ``numpy``, 40: NumPy arrays and array-likes
- ``mapping``, 30: dicts of arrays (named inputs)
- ``sequence``, 20: lists/tuples of arrays (multi-input models)
"""

import dataclasses

from fitpipe.adapters.arrays import ARRAY_FAMILY_SUPPORTS, check_rows, is_pandas
from fitpipe.adapters.arrays import num_rows as leaf_rows
from fitpipe.adapters.arrow_tables import TABLE_SUPPORTS, ArrowStreamAdapter, ArrowTableAdapter
from fitpipe.adapters.base import (
    ADAPT_ARGUMENTS,
    DEFAULT_BATCH_SIZE,
    Adapter,
    AdaptRequest,
    ArraySource,
    BatchSource,
    Mode,
    Share,
    Shuffle,
    Source,
    batch_size_or_default,
    check_supported,
    supported,
    unsupported,
)
from fitpipe.adapters.batch_checks import (
    check_numeric_targets,
    check_numeric_weights,
    leaf_names,
    nesting,
)
from fitpipe.adapters.batches import Check, no_autograph, read_when_asked
from fitpipe.adapters.capabilities import (
    BatchSourceBase,
    Blocked,
    Checkable,
    Chunked,
    ClassCountable,
    Ending,
    GroupSplittable,
    Paced,
    Resumable,
    RowBlocks,
    Seekable,
    Shardable,
    SourceBase,
    Splittable,
    class_counts,
)
from fitpipe.adapters.distributed_datasets import (
    DistributedDatasetAdapter,
    not_distributed_error,
    replicas_of,
)
from fitpipe.adapters.generators import GeneratorAdapter
from fitpipe.adapters.input_threads import in_input_code, join_unless_in_input
from fitpipe.adapters.mappings import MappingAdapter
from fitpipe.adapters.numbers import (
    NATIVE_FLOATS,
    complex_error,
    complex_refusal,
    is_number_dtype,
    tensor_dtype_refusal,
)
from fitpipe.adapters.numpy_arrays import NumpyAdapter
from fitpipe.adapters.parquet import ParquetAdapter
from fitpipe.adapters.py_datasets import PyDatasetAdapter
from fitpipe.adapters.registry import (
    ENTRY_POINT_GROUP,
    AdapterRegistry,
    LazyAdapter,
    register_adapter,
    registry,
)
from fitpipe.adapters.row_blocks import (
    Reordered,
    block_order,
    checked_chunks,
    concat_rows,
    num_rows,
    rows_of,
    take_rows,
)
from fitpipe.adapters.sequences import SequenceAdapter
from fitpipe.adapters.sharding import per_replica_batch, plan_shards
from fitpipe.adapters.stages import STAGES, StageClock, Timed, set_timing, timing
from fitpipe.adapters.tensors import TensorAdapter
from fitpipe.adapters.tf_datasets import TFDatasetAdapter, count_dataset

__all__ = [
    "ADAPT_ARGUMENTS",
    "DEFAULT_BATCH_SIZE",
    "ENTRY_POINT_GROUP",
    "NATIVE_FLOATS",
    "STAGES",
    "AdaptRequest",
    "Adapter",
    "AdapterRegistry",
    "ArraySource",
    "BatchSource",
    "BatchSourceBase",
    "Blocked",
    "Check",
    "Checkable",
    "Chunked",
    "ClassCountable",
    "Ending",
    "GroupSplittable",
    "LazyAdapter",
    "Mode",
    "Paced",
    "Reordered",
    "Resumable",
    "RowBlocks",
    "Seekable",
    "Shardable",
    "Share",
    "Shuffle",
    "Source",
    "SourceBase",
    "Splittable",
    "StageClock",
    "Timed",
    "batch_size_or_default",
    "block_order",
    "check_numeric_targets",
    "check_numeric_weights",
    "check_rows",
    "check_supported",
    "checked_chunks",
    "class_counts",
    "complex_error",
    "complex_refusal",
    "concat_rows",
    "count_dataset",
    "in_input_code",
    "is_number_dtype",
    "is_pandas",
    "join_unless_in_input",
    "leaf_names",
    "leaf_rows",
    "nesting",
    "no_autograph",
    "not_distributed_error",
    "num_rows",
    "per_replica_batch",
    "plan_shards",
    "read_when_asked",
    "register_adapter",
    "registry",
    "replicas_of",
    "rows_of",
    "set_timing",
    "supported",
    "take_rows",
    "tensor_dtype_refusal",
    "timing",
    "unsupported",
]


@dataclasses.dataclass(frozen=True)
class _Lazy:
    """A built-in adapter registered by dotted path, imported when its library's objects show up.

    The fields are :class:`LazyAdapter`'s arguments.
    """

    name: str
    target: str
    modules: tuple[str, ...]
    accepts: str
    supports: frozenset[str]
    install_hint: str

    def build(self) -> LazyAdapter:
        """The lazy adapter this entry describes.

        Returns:
            A :class:`LazyAdapter` that imports :attr:`target` on first use.

        """
        return LazyAdapter(
            self.name,
            self.target,
            modules=self.modules,
            accepts=self.accepts,
            supports=self.supports,
            install_hint=self.install_hint,
        )


#: The built-in adapters in registration order, each with its priority: a class (built at
#: import) or a :class:`_Lazy` entry (imported on first use).
_BUILTINS: tuple[tuple[type[Adapter] | _Lazy, int], ...] = (
    (TFDatasetAdapter, 100),
    (DistributedDatasetAdapter, 100),
    (PyDatasetAdapter, 100),
    (TensorAdapter, 90),
    (ArrowTableAdapter, 75),
    (ArrowStreamAdapter, 75),
    (ParquetAdapter, 70),
    (
        _Lazy(
            "delta",
            "fitpipe.adapters.delta_tables:DeltaTableAdapter",
            modules=("deltalake",),
            accepts="a deltalake.DeltaTable (at any version), with `schema=`",
            supports=ParquetAdapter.supports,
            install_hint="pip install deltalake",
        ),
        70,
    ),
    (
        _Lazy(
            "iceberg",
            "fitpipe.adapters.iceberg_tables:IcebergTableAdapter",
            modules=("pyiceberg",),
            accepts="a pyiceberg Table or DataScan (`table.scan(snapshot_id=...)`), with `schema=`",
            supports=ParquetAdapter.supports,
            install_hint="pip install 'pyiceberg[pyarrow]'",
        ),
        70,
    ),
    (
        _Lazy(
            "pandas",
            "fitpipe.adapters.pandas_frames:PandasAdapter",
            modules=("pandas",),
            accepts="a pandas DataFrame or Series",
            supports=ARRAY_FAMILY_SUPPORTS | TABLE_SUPPORTS,
            install_hint="pip install pandas",
        ),
        80,
    ),
    (
        _Lazy(
            "grain",
            "fitpipe.adapters.grain_datasets:GrainAdapter",
            modules=("grain",),
            accepts="a grain.MapDataset, grain.IterDataset or grain.DataLoader",
            supports=frozenset({"class_weight", "steps"}),
            install_hint="pip install grain",
        ),
        60,
    ),
    (
        _Lazy(
            "torch",
            "fitpipe.adapters.torch_loaders:TorchDataLoaderAdapter",
            modules=("torch",),
            accepts="a torch.utils.data.DataLoader",
            supports=frozenset({"class_weight", "steps"}),
            install_hint="pip install torch",
        ),
        60,
    ),
    (GeneratorAdapter, 50),
    (
        _Lazy(
            "sparse",
            "fitpipe.adapters.sparse_arrays:SparseArrayAdapter",
            modules=("scipy", "jax"),
            accepts="a SciPy sparse matrix or array (any format) or a JAX BCOO array",
            supports=ARRAY_FAMILY_SUPPORTS,
            install_hint="pip install scipy (or jax)",
        ),
        45,
    ),
    (NumpyAdapter, 40),
    (MappingAdapter, 30),
    (SequenceAdapter, 20),
)


def _register_builtins() -> None:
    """Registers :data:`_BUILTINS` in order, each marked built-in (never replaceable)."""
    for entry, priority in _BUILTINS:
        adapter = entry.build() if isinstance(entry, _Lazy) else entry()
        registry.register(adapter, priority=priority, builtin=True)


_register_builtins()
