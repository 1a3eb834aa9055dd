"""The loops of ``evaluate`` and ``predict``: one pass over a pipeline each.

``evaluate_loop`` also runs ``fit``'s validations. Each is called by the public method
itself (no frame between them), so the warnings of their runs point at the user's call.
"""

from __future__ import annotations

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
from fitpipe.training.collect import merge_predictions, settle, to_results
from fitpipe.training.epochs import EpochRunner
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
) -> dict[str, Any] | None:
    """Runs one evaluation; None when the input gave no batch (there is no result).

    Args:
        model: The compiled model.
        state: The model's state (its compiled test step).
        runner: The runner of the pipeline evaluated (restarted first).
        cbs: The callbacks (``fit``'s, for its validations).
        execution: The steps per compiled call.
    """
    model.reset_metrics()
    model.stop_evaluating = False
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
    logs = None if runner.ran_nothing else epoch_logs(model, last)
    cbs.on_test_end(logs or {})
    return logs


def predict_loop(
    model: keras.Model,
    state: ModelState,
    pipeline: Pipeline,
    steps: int | None,
    verbose: Any,
    callbacks: Any,
    x: Any,
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

    Returns:
        NumPy arrays (ragged tensors for ragged outputs) in the structure of the outputs.

    Raises:
        FitpipeValueError: When the input gave no batch.
    """
    runner = EpochRunner(
        distribute.distributed_pipeline(model, pipeline, Mode.PREDICT, "predict"), steps
    )
    cbs = callbacks_mod.callback_list(
        model, callbacks, verbose, 1, runner.num_batches, history=False
    )
    execution = state.execution_size(model, cbs, "predict")
    chunks: list[Any] = []
    function = state.function(model, "predict", pipeline)

    def after(end: int, outputs: Any) -> None:
        chunks.append(to_results(outputs))
        cbs.on_predict_batch_end(end, {"outputs": settle(outputs, function.held)})

    model.stop_predicting = False
    cbs.on_predict_begin()
    try:
        runner.run(
            function,
            execution,
            cbs.on_predict_batch_begin,
            after,
            lambda: bool(model.stop_predicting),
        )
    finally:
        runner.close()
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

    Returns:
        The path written (by the chief, for the other workers of a multi-worker strategy).
    """
    batch_size = request.batch_size

    def predict_chunk(features: Any) -> Any:
        rows = check_rows({"x": features}, "predict")
        chunk = ArraySource(features, None, None, rows)
        options = PipelineOptions(batch_size=batch_size, caller="predict")
        with pipeline_from_source("chunk", chunk, options) as pipeline:
            check_model_inputs(model, pipeline.element_spec, "predict")
            return predict_loop(model, state, pipeline, None, 0, callbacks, request.x)

    # Under MultiWorkerMirroredStrategy every worker runs the same steps (their collectives
    # pair up) and holds every prediction; the chief alone writes the file.
    strategy = distribute.strategy_of(model)
    if strategy is None or not is_multi_worker(strategy):
        return predict_to_file(model, predict_chunk, request, output, verbose)
    chief = bool(strategy.extended.should_checkpoint)
    check = functools.partial(chief_checks_output, strategy)
    return predict_to_file(model, predict_chunk, request, output, verbose, chief, check)


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
