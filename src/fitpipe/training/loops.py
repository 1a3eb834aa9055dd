"""The loops of ``evaluate`` and ``predict``: one pass over a pipeline each.

``evaluate_loop`` also runs ``fit``'s validations. Each is called by the public method
itself (no frame between them), so the warnings of their runs point at the user's call.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import keras
import tensorflow as tf

from fitpipe.adapters import AdaptRequest, ArraySource, check_rows
from fitpipe.errors import FitpipeValueError, message
from fitpipe.pipeline import Pipeline, PipelineOptions, is_multi_worker, pipeline_from_source
from fitpipe.schemas import Mode
from fitpipe.training import callbacks as callbacks_mod
from fitpipe.training import distribute, sharing
from fitpipe.training.batch_checks import BatchChecks
from fitpipe.training.collect import merge_predictions, settle, to_results
from fitpipe.training.compile_watch import CompileWatch
from fitpipe.training.epochs import RAN_OUT_OF_STEPS, EpochRunner
from fitpipe.training.inputs import check_model_inputs
from fitpipe.training.logs import epoch_logs
from fitpipe.training.outputs import check_output, check_output_type, predict_to_file
from fitpipe.training.state import ModelState
from fitpipe.training.tuning import ExecutionSize

__all__ = ["chief_checks_output", "evaluate_loop", "predict_loop", "predict_rows_to_file"]


def evaluate_loop(
    model: keras.Model,
    state: ModelState,
    runner: EpochRunner,
    cbs: keras.callbacks.CallbackList,
    execution: ExecutionSize,
    caller: str = "evaluate",
) -> dict[str, Any] | None:
    """Runs one evaluation; None when the input gave no batch (there is no result).

    Args:
        model: The compiled model.
        state: The model's state (its compiled test step).
        runner: The runner of the pipeline evaluated (restarted first).
        cbs: The callbacks (``fit``'s, for its validations).
        execution: The steps per compiled call.
        caller: The public method (``fit`` for its validations), for the errors.
    """
    model.reset_metrics()
    model.stop_evaluating = False
    watch = CompileWatch(model, caller)
    cbs.on_test_begin()
    runner.restart()
    _, last = runner.run(
        state.function(model, "test", runner.pipeline),
        execution,
        cbs.on_test_batch_begin,
        cbs.on_test_batch_end,
        lambda: bool(model.stop_evaluating),
    )
    runner.pipeline.on_epoch_end()
    watch.check("`on_test_begin`, `on_test_batch_begin` or `on_test_batch_end`")
    logs = None if runner.ran_nothing else epoch_logs(model, last)
    cbs.on_test_end(logs or {})
    return logs


@dataclasses.dataclass
class ChunkCallbacks:
    """One ``predict``'s callbacks over the chunks of ``predict(output=)``.

    Begun once before the first chunk and ended once after the last, with batch numbers
    running on from chunk to chunk: the lifecycle of one ``predict`` of every row, as Keras
    and ``predict`` without ``output=`` give (each chunk ran a whole lifecycle, its batches
    numbered from 0, so a callback keyed on a batch number never saw it).
    """

    cbs: keras.callbacks.CallbackList
    done: int = 0  # batches predicted by the chunks so far


def predict_loop(
    model: keras.Model,
    state: ModelState,
    pipeline: Pipeline,
    steps: int | None,
    verbose: Any,
    callbacks: Any,
    x: Any,
    chunked: ChunkCallbacks | None = None,
) -> Any:
    """The predictions of ``steps`` batches of ``pipeline`` (all of them with None).

    Args:
        model: The model.
        state: The model's state (its compiled predict step).
        pipeline: The batches, checked against the model's inputs.
        steps: Batches to predict, or None for the whole input.
        verbose: 0, 1 or ``"auto"``.
        callbacks: The user's callbacks.
        x: The input as the user gave it (for the error of an input of no batch).
        chunked: The callbacks of a ``predict(output=)`` this pipeline is one chunk of: not
            begun nor ended here, its batches numbered on from the chunks before.

    Returns:
        NumPy arrays (ragged tensors for ragged outputs) in the structure of the outputs.

    Raises:
        FitpipeValueError: When the input gave no batch.
    """
    runner = EpochRunner(
        distribute.distributed_pipeline(model, pipeline, Mode.PREDICT, "predict"), steps
    )
    runner.ran_out = RAN_OUT_OF_STEPS
    # (the checks of features alone: a ragged leaf's rows, ``ragged_inputs``)
    runner.checks = BatchChecks.for_model(model, pipeline.element_spec, "predict")
    cbs = chunked.cbs if chunked is not None else None
    if cbs is None:
        cbs = callbacks_mod.callback_list(
            model, callbacks, verbose, 1, runner.num_batches, history=False
        )
    execution = state.execution_size(model, cbs, "predict")
    chunks: list[Any] = []
    function = state.function(model, "predict", pipeline)
    offset = chunked.done if chunked is not None else 0

    def after(end: int, outputs: Any) -> None:
        chunks.append(to_results(outputs))
        cbs.on_predict_batch_end(end + offset, {"outputs": settle(outputs, function.held)})
        if chunked is not None:
            chunked.done = end + offset + 1

    if chunked is None:
        model.stop_predicting = False
        cbs.on_predict_begin()
    try:
        runner.run(
            function,
            execution,
            lambda batch: cbs.on_predict_batch_begin(batch + offset),
            after,
            lambda: bool(model.stop_predicting),
        )
        runner.pipeline.on_epoch_end()  # (a ``PyDataset``'s, as after Keras' predict)
    finally:
        runner.close()
    if chunked is None:
        cbs.on_predict_end()
    if not chunks:
        raise FitpipeValueError(
            message(
                "predict",
                "got no batches from the input",
                "`predict` needs at least one batch",
                "Check that the input is not empty or consumed",
                x=x,
            )
        )
    return merge_predictions(chunks, function.held)


def predict_rows_to_file(
    model: keras.Model,
    state: ModelState,
    request: AdaptRequest,
    output: str | os.PathLike[str],
    verbose: Any,
    callbacks: Any,
    input_checked: bool = False,
) -> str:
    """``predict(output=...)``: predicts ``x`` a chunk at a time into the Parquet ``output``.

    Args:
        model: The model.
        state: The model's state (its compiled predict step).
        request: ``predict``'s request (``predict_request``: ``x``, a form whose adapter
            reads it a chunk at a time; its schema naming the feature and passthrough
            columns; the batch size; ``steps``: the first ``steps * batch_size`` rows are
            predicted, None: every row).
        output: The Parquet file written (whole, once complete).
        verbose: 0, 1 or ``"auto"`` (a progress bar of rows).
        callbacks: The user's callbacks (for each chunk's run).
        input_checked: ``output`` was checked against ``x`` the strict way already
            (``fitpipe predict``): it is not checked against it again.

    Returns:
        The path written (by the chief, for the other workers of a multi-worker strategy).
    """
    batch_size = request.batch_size
    chunked = ChunkCallbacks(callbacks_mod.callback_list(model, callbacks, 0, 1, None, False))

    def predict_chunk(features: Any) -> Any:
        rows = check_rows({"x": features}, "predict")
        chunk = ArraySource(features, None, None, rows)
        options = PipelineOptions(batch_size=batch_size, caller="predict")
        with pipeline_from_source("chunk", chunk, options) as pipeline:
            check_model_inputs(model, pipeline.element_spec, "predict", True, features)
            return predict_loop(model, state, pipeline, None, 0, None, request.x, chunked)

    # Under MultiWorkerMirroredStrategy every worker runs the same steps (their collectives
    # pair up) and holds every prediction; the chief alone writes the file.
    strategy = distribute.strategy_of(model)
    chief, check = True, check_output
    if strategy is not None and is_multi_worker(strategy):
        chief = bool(strategy.extended.should_checkpoint)
        check = functools.partial(chief_checks_output, strategy)
    model.stop_predicting = False
    chunked.cbs.on_predict_begin()
    stopped = lambda: bool(model.stop_predicting)  # noqa: E731
    path = predict_to_file(
        model, predict_chunk, request, output, verbose, chief, check, stopped, input_checked
    )
    chunked.cbs.on_predict_end()
    return path


def chief_checks_output(strategy: tf.distribute.Strategy, output: Any) -> str:
    """Checks ``predict``'s ``output`` on the chief; its error raised on every worker.

    The chief alone writes the file, so only its folders count (the path may not exist on
    the other workers). Its verdict is shared before any step: a path it refuses fails
    every worker at once, with the chief's message, where the others would otherwise wait
    in their first step's collective for a chief that left (until the collective's timeout).

    Args:
        strategy: The model's ``MultiWorkerMirroredStrategy``.
        output: ``predict``'s ``output``.

    Returns:
        The path as checked (:func:`~fitpipe.training.outputs.check_output`) on the chief,
        as given on the other workers.

    Raises:
        FitpipeTypeError: ``output`` is not a path (checked on every worker).
        FitpipeValueError: The chief cannot write ``output``.
    """
    check_output_type(output)  # the same on every worker: no need to share it
    checked = sharing.chief_shares(strategy, "predict")(lambda: check_output(output).encode())
    return checked.decode() if strategy.extended.should_checkpoint else os.fspath(output)
