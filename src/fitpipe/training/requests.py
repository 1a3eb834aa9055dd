"""The inputs of the trainer's calls: their requests, validation data, and single batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from fitpipe.adapters import Adapter, AdaptRequest, ArraySource, Mode, registry, supported
from fitpipe.errors import (
    FitpipeTypeError,
    FitpipeValueError,
    UnsupportedArgumentError,
    message,
)
from fitpipe.pipeline import (
    Pipeline,
    PipelineOptions,
    adapt_source,
    build_pipeline,
    check_shuffle,
    check_split_options,
    check_validation_split,
    pipeline_from_source,
    split_validation,
    weigh_batch,
)
from fitpipe.schemas import SchemaLike, is_namedtuple, pack_roles
from fitpipe.training import arguments, distribute
from fitpipe.training.absent_inputs import strip_absent
from fitpipe.training.absent_targets import without_absent_targets
from fitpipe.training.conversions import check_extra, without_extra_inputs
from fitpipe.training.inputs import (
    about_validation_data,
    check_model_inputs,
    given_as_x,
    given_x,
)

__all__ = [
    "evaluate_request",
    "fit_pipelines",
    "fit_request",
    "one_batch",
    "output_names",
    "predict_request",
    "validation_pipeline",
]


def output_names(model: keras.Model) -> tuple[str, ...] | None:
    """The model's output names, when it has them (a per-output ``class_weight`` needs them)."""
    try:
        names = model.output_names
    except (AttributeError, ValueError):
        return None
    return tuple(names) if names else None


def fit_request(
    model: keras.Model,
    x: Any,
    y: Any,
    sample_weight: Any,
    batch_size: int | None,
    shuffle: bool | Literal["batch"],
    steps_per_epoch: int | None,
    *,
    schema: SchemaLike | None,
    class_weight: Mapping[Any, Any] | str | None,
    validation_split: float,
    validation_data: Any,
    data_service: str | None,
    split_by: Any,
    stratify: bool,
    extra: Any,
) -> tuple[AdaptRequest, PipelineOptions, str]:
    """The request and the pipeline options of ``fit``'s training input, its arguments checked.

    The arguments are ``fit``'s (``steps_per_epoch`` checked already).

    Returns:
        ``(request, options, extra)``: ``extra`` checked, for the validation data.
    """
    check_shuffle(shuffle, "fit")
    split = check_validation_split(validation_split, "fit") if validation_data is None else 0
    # the user's validation_split (not `split`, 0 beside validation_data): errors show it
    check_split_options(
        split if validation_data is None else validation_split,
        split_by,
        stratify,
        validation_data is not None,
        "fit",
    )
    extra_entries = check_extra(extra, "fit")
    x = without_extra_inputs(model, x, extra_entries, split_by)
    y, sample_weight = without_absent_targets(model, y, sample_weight, "fit")
    request = AdaptRequest(
        x=strip_absent(model, x, "fit"),
        y=y,
        sample_weight=sample_weight,
        batch_size=batch_size,
        shuffle=shuffle,
        steps=steps_per_epoch if steps_per_epoch != -1 else None,
        steps_name="steps_per_epoch",
        caller="fit",
        mode=Mode.TRAIN,
        schema=schema,
        hold_in_memory=distribute.strategy_of(model) is None,
        share=distribute.input_share(model, "fit"),
        split_by=split_by,
    )
    options = PipelineOptions.of(
        request,
        class_weight=class_weight,
        validation_split=split,
        data_service=distribute.service_address(data_service, model),
        output_names=output_names(model),
        stratify=bool(stratify),
    )
    return request, options, extra_entries


def evaluate_request(
    model: keras.Model,
    x: Any,
    y: Any,
    sample_weight: Any,
    batch_size: int | None,
    steps: int | None,
    schema: SchemaLike | None,
    extra: Any,
) -> AdaptRequest:
    """The request of ``evaluate``'s input (its arguments are ``evaluate``'s)."""
    x = without_extra_inputs(model, x, check_extra(extra, "evaluate"))
    y, sample_weight = without_absent_targets(model, y, sample_weight, "evaluate")
    return AdaptRequest(
        x=strip_absent(model, x, "evaluate"),
        y=y,
        sample_weight=sample_weight,
        batch_size=batch_size,
        steps=steps,
        caller="evaluate",
        mode=Mode.EVALUATE,
        schema=schema,
        hold_in_memory=distribute.strategy_of(model) is None,
        share=distribute.input_share(model, "evaluate"),
    )


def predict_request(
    model: keras.Model,
    x: Any,
    batch_size: int | None,
    steps: int | None,
    schema: SchemaLike | None,
) -> AdaptRequest:
    """The request of ``predict``'s input (``x`` without its extra entries already)."""
    return AdaptRequest(
        x=strip_absent(model, x, "predict"),
        batch_size=batch_size,
        steps=steps,
        caller="predict",
        mode=Mode.PREDICT,
        share=distribute.input_share(model, "predict"),
        schema=schema,
    )


def _unpack_validation(data: Any) -> tuple[Any, Any, Any]:
    given = data
    if isinstance(data, list):
        data = tuple(data)  # Keras unpacks a list like a tuple
    if is_namedtuple(data) or (isinstance(data, tuple) and len(data) not in (2, 3)):
        raise FitpipeValueError(
            message(
                "fit",
                "cannot unpack `validation_data`",
                "`validation_data` is a plain tuple `(x_val, y_val)` or `(x_val, y_val, "
                "val_sample_weight)`, a tf.data.Dataset, a generator or a PyDataset",
                "Pass one of those forms",
                validation_data=given,
            )
        )
    x, y, sample_weight = (*data, None)[:3] if isinstance(data, tuple) else (data, None, None)
    return x, y, sample_weight


def _batched_validation(adapter: Adapter, batch_size: int, data: Any) -> Exception:
    return UnsupportedArgumentError(
        message(
            "fit",
            f"does not support `validation_batch_size` when `validation_data` is "
            f"{adapter.accepts} (adapter {adapter.name!r})",
            "`validation_batch_size` sets the rows per validation batch of arrays and "
            "tables; an input that already yields batches keeps its own",
            "Drop `validation_batch_size`, or batch the validation input yourself",
            validation_batch_size=batch_size,
            validation_data=data,
        )
    )


def validation_pipeline(
    model: keras.Model,
    data: Any,
    batch_size: int | None,
    steps: int | None,
    schema: Any,
    extra: str = "error",
    batch_given: int | None = None,
) -> Pipeline:
    """The pipeline of ``fit``'s ``validation_data``, checked against the model's inputs.

    ``batch_size`` is ``validation_batch_size`` or else ``fit``'s ``batch_size``;
    ``batch_given`` is ``validation_batch_size`` as given, refused for batched inputs.
    An error about the data says that it is about ``validation_data``.
    """
    with about_validation_data():
        return _validation_pipeline(model, data, batch_size, steps, schema, extra, batch_given)


def _validation_pipeline(
    model: keras.Model,
    data: Any,
    batch_size: int | None,
    steps: int | None,
    schema: Any,
    extra: str,
    batch_given: int | None,
) -> Pipeline:
    x, y, sample_weight = _unpack_validation(data)
    x = strip_absent(model, without_extra_inputs(model, x, extra), "fit")
    y, sample_weight = without_absent_targets(model, y, sample_weight, "fit")
    adapter = registry.find(x, "fit")
    supports = supported(adapter, AdaptRequest(x=x, schema=schema, caller="fit"))
    if batch_given is not None and "batch_size" not in supports:
        raise _batched_validation(adapter, batch_given, data)
    request = AdaptRequest(
        x=x,
        y=y,
        sample_weight=sample_weight,
        batch_size=batch_size if "batch_size" in supports else None,
        steps=steps,
        steps_name="validation_steps",
        caller="fit",
        mode=Mode.EVALUATE,
        schema=schema if "schema" in supports else None,
        hold_in_memory=distribute.strategy_of(model) is None,
        share=distribute.input_share(model, "fit"),
    )
    pipeline = build_pipeline(request, warn_ignored=False)
    arguments.require_finite(pipeline, steps, "fit", "validation_steps", data, "validation_data")
    given = given_x(pipeline)
    check_model_inputs(model, pipeline.element_spec, "fit", x_values=given, source=pipeline.adapter)
    return pipeline


def fit_pipelines(
    model: keras.Model,
    request: AdaptRequest,
    options: PipelineOptions,
    validation_data: Any,
    val_batch: int | None,
    val_steps: int | None,
    extra: str = "error",
    read_validation: bool = True,
    val_batch_given: int | None = None,
) -> tuple[Pipeline, Pipeline | None]:
    """The training pipeline of ``fit``, and its validation pipeline (split off, or given).

    A grouped or stratified split's sizes are kept as the training pipeline's ``split``.
    With ``read_validation`` False (no epoch will run), ``validation_data`` is only unpacked
    (its form checked, as Keras does), not adapted: nothing of it is read.
    ``val_batch`` is the validation batch size (``validation_batch_size`` or ``batch_size``),
    ``val_batch_given`` ``validation_batch_size`` as given.
    """
    adapter, source = adapt_source(request, options, warn_ignored=False)
    val, how = None, None
    if options.validation_split:
        source, val_source, how = split_validation(source, request, options, val_batch)
        val_options = PipelineOptions(batch_size=val_batch, steps=val_steps, caller="fit")
        val = pipeline_from_source(adapter.name, val_source, val_options)
    train = pipeline_from_source(adapter.name, source, options)
    train.split = how
    if validation_data is not None and not read_validation:
        _unpack_validation(validation_data)
    elif validation_data is not None:
        # the training batches first: an error in both is not only `validation_data`'s
        given = given_as_x(train), given_x(train), train.adapter
        check_model_inputs(model, train.element_spec, "fit", *given)
        val = validation_pipeline(
            model, validation_data, val_batch, val_steps, request.schema, extra, val_batch_given
        )
    arguments.require_finite(train, request.steps, "fit", "steps_per_epoch", request.x)
    return train, val


def _tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):  # the usual leaf: 9 us, not convert_to_tensor's 17
        return tf.constant(value)
    composite = isinstance(value, (tf.RaggedTensor, tf.SparseTensor))
    return value if composite or value is None else tf.convert_to_tensor(value)


def one_batch(
    model: keras.Model,
    caller: str,
    mode: Mode,
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    class_weight: Mapping[Any, Any] | str | None = None,
    output_names: tuple[str, ...] | None = None,
) -> tuple[Any, ...]:
    """The tensors of one batch given to ``train_on_batch`` and its kin, class weights applied.

    As Keras' ``train_on_batch`` and ``test_on_batch`` hand the model's step the batch:
    always ``(x, y, sample_weight)``, ``y`` and ``sample_weight`` None where not given (and
    ``predict_on_batch``'s step ``x``, as ``predict``'s).
    """
    x = strip_absent(model, x, caller)
    y, sample_weight = without_absent_targets(model, y, sample_weight, caller)
    request = AdaptRequest(
        x=x, y=y, sample_weight=sample_weight, caller=caller, mode=mode, one_batch=True
    )
    _, source = adapt_source(request)
    if not isinstance(source, ArraySource):
        raise FitpipeTypeError(
            message(
                caller,
                "needs array-like data",
                "`x` is one batch: arrays, tensors or lists/dicts of them",
                "Take a batch from the input first",
                x=x,
            )
        )
    data = keras.tree.map_structure(_tensor, pack_roles(source.x, source.y, source.sample_weight))
    if class_weight is not None:
        data = weigh_batch(data, class_weight, caller, output_names)
    if mode is not Mode.PREDICT:  # Keras hands train_step/test_step `(x, y, sample_weight)`
        data = (*data, None, None)[:3]
    strategy = distribute.strategy_of(model)
    if strategy is not None:
        spec = tf.nest.map_structure(
            lambda v: v if v is None else tf.TensorSpec.from_tensor(v), data
        )
        distribute.build_state(model, strategy, spec)
    return data
