"""``evaluate`` and ``predict``: a model run in test mode over one input, as Keras' methods.

:class:`EvaluatePredictMethods` holds the two documented methods that :class:`~fitpipe.Trainer`
inherits: each checks its arguments, builds its pipeline and runs its loop
(:mod:`fitpipe.training.loops`) itself, so that warnings point at the user's call.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import keras

from fitpipe.adapters import Mode
from fitpipe.columnar import recycling
from fitpipe.pipeline import build_pipeline
from fitpipe.schemas import SchemaLike
from fitpipe.training import arguments, conversions, distribute
from fitpipe.training import callbacks as callbacks_mod
from fitpipe.training.batch_checks import BatchChecks
from fitpipe.training.epochs import RAN_OUT_OF_STEPS, EpochRunner, no_step_error
from fitpipe.training.inputs import (
    check_model_inputs,
    check_model_targets,
    given_as_x,
    given_x,
)
from fitpipe.training.keywords import worded_keywords
from fitpipe.training.logs import flatten_in_order
from fitpipe.training.loops import evaluate_loop, predict_loop, predict_rows_to_file
from fitpipe.training.one_thread import one_thread_at_a_time
from fitpipe.training.preflight import check_evaluate
from fitpipe.training.requests import evaluate_request, predict_request
from fitpipe.training.state import ModelState

__all__ = ["EvaluatePredictMethods", "predict_checked_output"]


class EvaluatePredictMethods:
    """``evaluate`` and ``predict`` of :class:`~fitpipe.Trainer` (which sets the attributes).

    Attributes:
        model: The ``keras.Model`` run.
    """

    model: keras.Model
    _state: ModelState

    # ----------------------------------------------------------------------------- evaluate
    @one_thread_at_a_time
    @recycling()
    @worded_keywords
    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: Any = None,
        return_dict: bool = False,
        *,
        schema: SchemaLike | None = None,
        check: Literal["warn", "error", "full", False] = "warn",
        extra: Literal["error", "ignore"] = "error",
        **kwargs: Any,
    ) -> Any:
        """Returns the loss and metric values in test mode, as ``keras.Model.evaluate``.

        Args:
            x: The input, in any form an adapter takes (``fitpipe.registry``):
                NumPy arrays and array-likes, a list or tuple of arrays (several inputs), a
                dict of arrays by input name, ``tf.Tensor`` (also ragged or sparse), a pandas
                DataFrame or Series; batches from a Python generator or iterator, a batched
                ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a Grain dataset or a
                ``torch.utils.data.DataLoader`` (yielding ``(x,)``, ``(x, y)`` or
                ``(x, y, sample_weight)``); with ``schema=``, Arrow data (a
                ``pyarrow.Table`` or ``RecordBatch``, a ``RecordBatchReader``, a frame
                exporting the Arrow C stream such as a Polars DataFrame or a DuckDB result),
                Parquet (a file path, a folder, a glob such as ``"data/*.parquet"``, a list
                of paths, or a ``pyarrow.dataset.Dataset``) and a pandas DataFrame read by
                column roles; or a type of your own through ``fitpipe.register_adapter``.
            y: Targets, for row-addressed inputs (see ``fit``).
            batch_size: Rows per batch for row-addressed, Arrow and Parquet inputs (default
                32).
            verbose: ``"auto"`` (1), 0 (silent) or 1 (a progress bar).
            sample_weight: Per-row weights, for row-addressed inputs.
            steps: Batches to evaluate; default: the whole input (required for infinite
                inputs).
            callbacks: A list of ``keras.callbacks.Callback``.
            return_dict: Return ``{name: value}`` instead of a list.
            schema: A ``fitpipe.Schema`` for Arrow, Parquet and pandas inputs (see ``fit``).
            check: The pre-flight data check, as in ``fit`` (default ``"warn"``): NaN and
                infinite values, and targets against the compiled model, before the first
                batch; the same cost as in ``fit``.
            extra: ``"ignore"`` leaves out the dict entries that name no model input, as in
                ``fit`` (default ``"error"``).
            **kwargs: None are accepted; an unknown keyword is an error naming it.

        Returns:
            A scalar (single output, no metrics), a list in the order of the model's
            metrics, or a dict with ``return_dict=True``.

        Raises:
            NotCompiledError: When the model is not compiled (a ``RuntimeError`` and a
                ``ValueError``, as Keras' own).
            ValueError: On an invalid argument or input (see ``fit``).
            TypeError: On an argument of the wrong type.

        """
        arguments.no_extra_arguments(kwargs, EvaluatePredictMethods.evaluate)
        arguments.require_compiled(self.model, "evaluate")
        return_dict = arguments.check_bool(return_dict, "return_dict", "evaluate")
        verbose = arguments.check_verbose(verbose, "evaluate")
        steps = arguments.check_steps(steps, "steps", "evaluate")
        callbacks = arguments.check_callbacks(callbacks, "evaluate")
        request = evaluate_request(
            self.model, x, y, sample_weight, batch_size, steps, schema, extra
        )
        with build_pipeline(request, warn_ignored=False) as pipeline:
            arguments.require_finite(pipeline, steps, "evaluate", "steps", x)
            given = given_as_x(pipeline), given_x(pipeline), pipeline.adapter
            check_model_inputs(self.model, pipeline.element_spec, "evaluate", *given)
            check_model_targets(self.model, pipeline.element_spec, "evaluate", Mode.EVALUATE)
            check_evaluate(self.model, request, pipeline, check)
            steps = arguments.limit_steps(steps, "steps")
            runner = EpochRunner(
                distribute.distributed_pipeline(self.model, pipeline, Mode.EVALUATE, "evaluate"),
                steps,
            )
            runner.checks = BatchChecks.for_model(self.model, pipeline.element_spec, "evaluate")
            runner.ran_out = RAN_OUT_OF_STEPS
            cbs = callbacks_mod.callback_list(
                self.model, callbacks, verbose, 1, runner.num_batches, history=False
            )
            execution = self._state.execution_size(self.model, cbs, "test")
            try:
                logs = evaluate_loop(self.model, self._state, runner, cbs, execution)
            finally:
                runner.close()
        if logs is None:
            raise no_step_error("evaluate", x)
        return logs if return_dict else flatten_in_order(self.model, logs)

    # ------------------------------------------------------------------------------ predict
    @recycling()
    @worded_keywords
    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        steps: int | None = None,
        callbacks: Any = None,
        *,
        schema: SchemaLike | None = None,
        output: str | os.PathLike[str] | None = None,
        extra: Literal["error", "ignore"] = "error",
    ) -> Any:
        """Generates predictions for the input samples, as ``keras.Model.predict``.

        Args:
            x: The input, in any form an adapter takes (``fitpipe.registry``):
                NumPy arrays and array-likes, a list or tuple of arrays (several inputs), a
                dict of arrays by input name, ``tf.Tensor`` (also ragged or sparse), a pandas
                DataFrame or Series; batches from a Python generator or iterator, a batched
                ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a Grain dataset or a
                ``torch.utils.data.DataLoader`` (yielding ``(x,)``, ``(x, y)`` or
                ``(x, y, sample_weight)``); with ``schema=``, Arrow data (a
                ``pyarrow.Table`` or ``RecordBatch``, a ``RecordBatchReader``, a frame
                exporting the Arrow C stream such as a Polars DataFrame or a DuckDB result),
                Parquet (a file path, a folder, a glob such as ``"data/*.parquet"``, a list
                of paths, or a ``pyarrow.dataset.Dataset``) and a pandas DataFrame read by
                column roles; or a type of your own through ``fitpipe.register_adapter``.
                Targets and weights in the input are ignored.
            batch_size: Rows per batch for row-addressed, Arrow and Parquet inputs (default
                32).
            verbose: ``"auto"`` (1), 0 (silent), 1 (a progress bar; of rows with
                ``output``) or 2 (one line once done).
            steps: Batches to predict; default: the whole input (required for infinite
                inputs).
            callbacks: A list of ``keras.callbacks.Callback``.
            schema: A ``fitpipe.Schema`` naming the feature and passthrough columns of
                Arrow, Parquet and pandas inputs.
            output: A Parquet file to stream the predictions to instead of returning them:
                the schema's passthrough columns first (e.g. ids), then one column per model
                output (vectors as ``fixed_size_list``, ragged outputs as ``list``, bfloat16
                as float32, nested dict keys joined by ``.``), written chunk by chunk; the
                file appears only when complete. With ``steps``, the rows of the first ``steps``
                batches are written. Under ``MultiWorkerMirroredStrategy`` every
                worker predicts every row and returns the path, and only the chief writes
                the file.
            extra: ``"ignore"`` leaves out the dict entries that name no model input, as in
                ``fit`` (default ``"error"``).

        Returns:
            NumPy arrays in the structure of the model's outputs, every row included; or the
            path written, with ``output``.

        Raises:
            ValueError: On an invalid argument or input (see ``fit``), or an input that
                gives no batches.
            TypeError: On an argument of the wrong type.

        """
        return self._predict(x, batch_size, verbose, steps, callbacks, schema, output, extra)

    def _predict(
        self,
        x: Any,
        batch_size: int | None,
        verbose: str | int,
        steps: int | None,
        callbacks: Any,
        schema: SchemaLike | None,
        output: str | os.PathLike[str] | None,
        extra: Literal["error", "ignore"],
        input_checked: bool = False,
    ) -> Any:
        """``predict``'s work (:func:`predict_checked_output`: ``input_checked``)."""
        verbose = arguments.check_verbose(verbose, "predict")
        steps = arguments.check_steps(steps, "steps", "predict")
        callbacks = arguments.check_callbacks(callbacks, "predict")
        x = conversions.without_extra_inputs(
            self.model, x, conversions.check_extra(extra, "predict")
        )
        request = predict_request(self.model, x, batch_size, steps, schema)
        if output is not None:
            return predict_rows_to_file(
                self.model, self._state, request, output, verbose, callbacks, input_checked
            )
        with build_pipeline(request, warn_ignored=False) as pipeline:
            arguments.require_finite(pipeline, steps, "predict", "steps", x)
            given = given_as_x(pipeline), given_x(pipeline), pipeline.adapter
            check_model_inputs(self.model, pipeline.element_spec, "predict", *given)
            steps = arguments.limit_steps(steps, "steps")
            return predict_loop(self.model, self._state, pipeline, steps, verbose, callbacks, x)


@recycling()
def predict_checked_output(
    trainer: EvaluatePredictMethods,
    x: Any,
    output: str,
    batch_size: int | None,
    verbose: int,
    schema: SchemaLike | None,
) -> str:
    """``trainer.predict(x, ..., output=output)`` for an ``output`` already checked against ``x``.

    ``fitpipe predict`` checks its ``--output`` against the input the strict way
    (:func:`~fitpipe.training.outputs.check_not_input` with ``folders``: any file inside an
    input folder or matching an input glob refused) before it loads the model; ``predict``'s
    own check of the same output against the same input, the lenient way, would expand the
    input's globs and folders again and cannot fail, so it is not made.

    Args:
        trainer: The trainer of the model.
        x: The input, the very one ``output`` was checked against.
        output: The Parquet file to write.
        batch_size: Rows per batch.
        verbose: 0 or 1 (a progress bar of rows).
        schema: The schema of the input.

    Returns:
        The path written.
    """
    written = trainer._predict(x, batch_size, verbose, None, None, schema, output, "error", True)
    return str(written)
