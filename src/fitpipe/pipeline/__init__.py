"""Pipelines: an adapted source as batched, shuffled, weighted and prefetched ``tf.data``."""

from fitpipe.pipeline.adapted import adapted_source, check_array_rows
from fitpipe.pipeline.arrays import ResidentRows
from fitpipe.pipeline.build import (
    adapt,
    adapt_source,
    build_pipeline,
    check_positive_int,
    check_shuffle,
    pipeline_from_source,
)
from fitpipe.pipeline.class_weight_plan import ClassWeightPlan, weigh_batch
from fitpipe.pipeline.class_weights import (
    apply_class_weight,
    check_class_weight,
    class_weight_table,
)
from fitpipe.pipeline.core import Pipeline
from fitpipe.pipeline.device_rows import device_bytes
from fitpipe.pipeline.distributed import (
    DistributedPipeline,
    distribute_pipeline,
    is_multi_worker,
    predistributed_without_strategy,
)
from fitpipe.pipeline.leaf_packing import Packing, held_specs, pack, plan_specs
from fitpipe.pipeline.options import INT64_BOUND, PipelineOptions
from fitpipe.pipeline.row_chunks import Chunks
from fitpipe.pipeline.service import check_address
from fitpipe.pipeline.split import (
    ValidationSplit,
    check_split_options,
    check_validation_split,
    split_source,
    split_validation,
)

__all__ = [
    "INT64_BOUND",
    "Chunks",
    "ClassWeightPlan",
    "DistributedPipeline",
    "Packing",
    "Pipeline",
    "PipelineOptions",
    "ResidentRows",
    "ValidationSplit",
    "adapt",
    "adapt_source",
    "adapted_source",
    "apply_class_weight",
    "build_pipeline",
    "check_address",
    "check_array_rows",
    "check_class_weight",
    "check_positive_int",
    "check_shuffle",
    "check_split_options",
    "check_validation_split",
    "class_weight_table",
    "device_bytes",
    "distribute_pipeline",
    "held_specs",
    "is_multi_worker",
    "pack",
    "pipeline_from_source",
    "plan_specs",
    "predistributed_without_strategy",
    "split_source",
    "split_validation",
    "weigh_batch",
]
