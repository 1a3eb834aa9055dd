"""``Trainer``: the documented Keras training API for any ``keras.Model``, on fitpipe pipelines.

Keras provides the model, losses, metrics, optimizers and callbacks; ``compile`` configures
them exactly as ``keras.Model.compile`` does. fitpipe runs everything else: adapting the input
into a pipeline, splitting validation rows, the epoch loop with Keras' iterator semantics,
the compiled multi-step functions, the callbacks' calls, and the documented return values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import weakref
from collections.abc import Container, Iterator, Mapping
from typing import Any, Literal

import keras

from fitpipe.adapters import AdaptRequest, ArraySource, Mode, check_rows
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, NotCompiledError, message
from fitpipe.pipeline import (
    Pipeline,
    PipelineOptions,
    build_pipeline,
    check_shuffle,
    check_split_options,
    check_validation_split,
    distribute_pipeline,
    is_multi_worker,
    pipeline_from_source,
    predistributed_without_strategy,
)
from fitpipe.schemas import SchemaLike
from fitpipe.training import arguments, conversions, distribute
from fitpipe.training import callbacks as callbacks_mod
from fitpipe.training.batch_checks import BatchChecks
from fitpipe.training.collect import merge_predictions, to_results
from fitpipe.training.epochs import EpochRunner, no_step_error, warn_no_step
from fitpipe.training.input_report import InputReport
from fitpipe.training.inputs import check_model_inputs, check_model_targets
from fitpipe.training.logs import epoch_logs, flatten_in_order, pythonify
from fitpipe.training.outputs import predict_to_file
from fitpipe.training.preflight import check_evaluate, check_fit, finite_check
from fitpipe.training.requests import fit_pipelines, one_batch
from fitpipe.training.resume import PositionBackups
from fitpipe.training.steps import StepFunction
from fitpipe.training.tuning import ExecutionSize

__all__ = ["Trainer"]

_MODES = ("train", "test", "predict")


@dataclasses.dataclass
class _State:
    """What fitpipe keeps per model between calls (so nothing is retraced per call)."""

    steps_per_execution: int | str | None = None
    jit_compile: bool | str | None = None
    execution: ExecutionSize | None = None
    fused: ExecutionSize | None = None
    last: ExecutionSize | None = None  # the one the last call used (for ``tuning``)
    functions: dict[str, StepFunction] = dataclasses.field(default_factory=dict)
    key: tuple[Any, ...] = ()
    #: ``jit_compile="auto"``: XLA or not, by the input key of the batches (measured by the
    #: train step, followed by evaluation and prediction).
    xla: dict[str, bool] = dataclasses.field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[keras.Model, _State] = weakref.WeakKeyDictionary()


def _keras_compile(model: keras.Model, **kwargs: Any) -> None:
    from fitpipe.training.models import FitpipeMethods

    if isinstance(model, FitpipeMethods):
        keras.Model.compile(model, **kwargs)
    else:
        model.compile(**kwargs)


class Trainer:
    """Trains, evaluates and runs a ``keras.Model`` with fitpipe's data pipelines and loop.

    The model stays a plain Keras model: ``save``, ``load_model``, ``summary`` and
    ``get_weights`` work as before, and callbacks see it as ``callback.model``.

    Args:
        model: Any ``keras.Model`` (Sequential, functional or subclassed).

    """

    def __init__(self, model: keras.Model) -> None:
        if not isinstance(model, keras.Model):
            raise FitpipeTypeError(
                message(
                    "Trainer",
                    "needs a Keras model",
                    "`fitpipe.Trainer` wraps a `keras.Model` (Sequential, functional or "
                    "subclassed)",
                    "Build the model with `keras` and pass it",
                    model=model,
                )
            )
        self.model = model
        self._state = _STATES.setdefault(model, _State())

    # ------------------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int | str = 1,
        jit_compile: bool | str = "auto",
        auto_scale_loss: bool = True,
    ) -> None:
        """Configures the model for training, as ``keras.Model.compile``.

        Args:
            optimizer: An optimizer name (``"adam"``) or a ``keras.optimizers.Optimizer``.
            loss: A loss name, a ``keras.losses.Loss`` or a function ``loss(y_true, y_pred)``;
                a list or dict of them (by output name) for several outputs.
            loss_weights: Scalars weighting the loss of each output (a list or dict by output
                name); the total loss is their weighted sum.
            metrics: Metric names, ``keras.metrics.Metric`` objects or functions; a list, or a
                list or dict per output.
            weighted_metrics: Metrics weighted by ``sample_weight`` and ``class_weight``.
            run_eagerly: Run the steps in Python, step by step (no graph, no XLA): for
                debugging.
            steps_per_execution: Batches run per compiled call (a positive integer), or
                ``"auto"``: fitpipe tunes it while training (results are the same as with
                1; batch-level callbacks then see every batch's end together). With the
                default 1 and no callback hooked on batches, fitpipe still runs several steps
                per call: the same steps in the same order. Under
                ``MultiWorkerMirroredStrategy`` the size is never tuned (every worker must
                run the same steps per call): ``"auto"`` runs one step per call.
            jit_compile: Compile the steps with XLA: True, False, or ``"auto"``, decided by
                measurement, once per model and input shape: the first steps run the plain
                TensorFlow graph (no XLA compilation before the first step); once the steps
                per call have settled, a few calls are timed with and without XLA (calls that
                traced or compiled are never timed) and XLA is kept only when it is at least
                10% faster. ``evaluate`` and ``predict`` follow the choice made by ``fit``
                for the same inputs (``Trainer.tuning`` shows it). A model XLA cannot compile
                runs the plain graph (with a ``FitpipeWarning`` when XLA was asked for with
                True). The first epoch of ``fit`` says (with ``verbose``) when it compiles
                the train step with XLA (``jit_compile=True``). Under a ``tf.distribute``
                strategy the step is never XLA-compiled.
            auto_scale_loss: Scale the loss under a ``mixed_float16`` dtype policy to avoid
                underflow, as Keras does.

        Raises:
            ValueError: When ``steps_per_execution`` is neither a positive integer nor
                ``"auto"``, or Keras rejects an argument.

        """
        spe = arguments.check_steps_per_execution(steps_per_execution)
        _keras_compile(
            self.model,
            optimizer=optimizer,
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            run_eagerly=run_eagerly,
            steps_per_execution=1,
            jit_compile=jit_compile,
            auto_scale_loss=auto_scale_loss,
        )
        self._state.steps_per_execution = spe
        self._state.jit_compile = jit_compile
        self._state.execution = None
        self._state.fused = self._state.last = None
        self._state.functions.clear()
        self._state.xla.clear()

    @property
    def steps_per_execution(self) -> int | str | None:
        """The ``steps_per_execution`` given to fitpipe's ``compile`` (None if not used)."""
        return self._state.steps_per_execution

    @property
    def tuning(self) -> dict[str, Any]:
        """What the tuners chose so far, and the timings that decided it.

        Returns:
            ``{"steps_per_execution": {...}, "jit_compile": ..., "xla": {...}}``: the steps
            per call (``ExecutionSize.report``: the size, whether it settled, the calls and
            traced calls, the stable seconds per call that decided each size tried; of the
            last call of ``fit``, ``evaluate`` or ``predict``); the
            ``jit_compile`` asked for; per step (``"train"``, ``"test"``, ``"predict"``),
            whether it runs XLA now and, under ``"auto"``, the seconds per step with and
            without XLA that decided it. Empty parts before the first call.
        """
        state = self._state
        size = state.last
        steps: dict[str, Any] = {}
        for name, function in state.functions.items():
            choice = function.xla_choice
            steps[name] = choice.report() if choice is not None else {"xla": function.jit_compile}
        return {
            "steps_per_execution": size.report() if size is not None else {},
            "jit_compile": state.jit_compile,
            "xla": steps,
        }

    def _require_compiled(self, caller: str) -> None:
        if not self.model.compiled:
            raise NotCompiledError(
                message(
                    caller,
                    "needs a compiled model",
                    "`compile` sets the optimizer, loss and metrics that training and "
                    "evaluation use",
                    f"Call `compile(optimizer=..., loss=...)` before `{caller}`",
                )
            )

    def _execution(self, cbs: keras.callbacks.CallbackList, *modes: str) -> ExecutionSize:
        """Steps per compiled call: as compiled; or tuned, when nobody listens per batch.

        With the default ``steps_per_execution=1`` and no callback hooked on batches (fitpipe's
        own History and progress bar aside), several steps run per call: the same steps in the
        same order, so results do not change; only how often Python runs.
        """
        state = self._state
        value = state.steps_per_execution or getattr(self.model, "steps_per_execution", 1) or 1
        strategy = distribute.strategy_of(self.model)
        if strategy is not None and is_multi_worker(strategy):
            # Every worker must run the same steps per call (each call's collectives pair up
            # across the workers): never a size tuned from this worker's own timings.
            size = value if isinstance(value, int) else 1
            if state.execution is None or state.execution.auto or state.execution.size != size:
                state.execution = ExecutionSize(size)
            state.last = state.execution
            return state.execution
        if value == 1 and not callbacks_mod.listens_per_batch(cbs, modes):
            if state.fused is None:
                state.fused = ExecutionSize("auto")
            state.last = state.fused
            return state.fused
        if state.execution is None:
            state.execution = ExecutionSize(value)
        state.last = state.execution
        return state.execution

    def _jit(self) -> bool | str:
        requested = self._state.jit_compile
        if requested is None:  # compiled by Keras directly: keep its decision
            return bool(self.model.jit_compile)
        if self.model.run_eagerly:
            return False
        return "auto" if requested == "auto" else bool(requested)

    def _function(self, mode: str, batches: Any = None) -> StepFunction:
        """The compiled step of ``mode`` for ``batches`` (a pipeline, or one batch's spec)."""
        model = self.model
        key = (
            id(getattr(model, "optimizer", None)),
            self._jit(),
            bool(model.run_eagerly),
            tuple(id(m) for m in model.metrics),
            id(distribute.strategy_of(model)),
        )
        if key != self._state.key:
            self._state.functions.clear()
            self._state.key = key
        cast = conversions.cast_for(batches)
        name = f"{mode}+floatx" if cast else mode
        function = self._state.functions.get(name)
        if function is None:
            step = conversions.prepared_step(
                {"train": model.train_step, "test": model.test_step, "predict": model.predict_step}[
                    mode
                ],
                model,
                cast,
            )
            caller = {"train": "fit", "test": "evaluate", "predict": "predict"}[mode]
            step_mode = {"train": Mode.TRAIN, "test": Mode.EVALUATE, "predict": Mode.PREDICT}[mode]
            strategy, collect = distribute.strategy_of(model), step_mode is Mode.PREDICT
            eager = bool(model.run_eagerly)
            if strategy is not None:  # the replicas' step, reduced outside XLA
                function = distribute.step_function(
                    strategy, step, eager, collect, caller, step_mode
                )
            else:
                if step_mode is Mode.TRAIN:
                    conversions.build_optimizer(model)
                function = StepFunction(
                    step, self._jit(), eager, collect, caller, step_mode, self._state.xla
                )
            self._state.functions[name] = function
        return function

    def _distributed(self, pipeline: Any, mode: Mode, caller: str) -> Any:
        """The pipeline distributed over the model's strategy (unchanged without one)."""
        strategy = distribute.strategy_of(self.model)
        if pipeline is None:
            return None
        if strategy is None:  # a dataset distributed already: one replica's, as in Keras
            return predistributed_without_strategy(pipeline, caller)
        distribute.build_state(self.model, strategy, pipeline.element_spec)
        return distribute_pipeline(pipeline, strategy, mode, caller)

    # ---------------------------------------------------------------------------------- fit
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: str | int = "auto",
        callbacks: Any = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool | Literal["batch"] = True,
        class_weight: Mapping[Any, Any] | str | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int | Container[int] = 1,
        *,
        schema: SchemaLike | None = None,
        data_service: str | None = None,
        check: Literal["warn", "error", "full", False] = "warn",
        split_by: Any = None,
        stratify: bool = False,
        extra: Literal["error", "ignore"] = "error",
    ) -> keras.callbacks.History:
        """Trains the model for a fixed number of epochs, as ``keras.Model.fit``.

        The input is turned into one ``tf.data`` pipeline by the adapter that takes it and
        checked against the model (names, shapes, columns) before the first step; the step
        is compiled (with XLA, see ``compile``) once, before the first epoch.

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
            y: Targets, for inputs addressed by row (arrays, tensors, pandas without a
                schema), in the structure of the model's outputs. Not given for inputs that
                yield their own targets (generators, ``tf.data``, ``PyDataset``) or declare
                them (``schema.targets``).
            batch_size: Rows per batch for row-addressed, Arrow and Parquet inputs (default
                32); not given for inputs that come in batches.
            epochs: The epoch to stop at (an index: training runs epochs
                ``initial_epoch`` .. ``epochs - 1``).
            verbose: ``"auto"`` (1), 0 (silent), 1 (a progress bar, its last step drawn
                once) or 2 (one line per epoch).
            callbacks: A list of ``keras.callbacks.Callback``; History and the progress bar
                are added as Keras adds them.
            validation_split: The fraction in ``[0, 1)`` of the rows set apart for
                validation before any shuffling: the last rows. For arrays, tensors, pandas
                and Arrow tables, the last rows in order; for Parquet, the last rows in file
                order (files in sorted path order, row groups in order), planned from the
                metadata without reading data, so training never reads them. Inputs read
                once in batches (generators, ``tf.data``, ``PyDataset``, Grain and torch
                loaders, ``RecordBatchReader``) cannot be split: pass ``validation_data``.
                Outside ``[0, 1)`` is an error (Keras accepts ``1.5``).
            validation_data: Data to evaluate at the end of epochs: ``(x_val, y_val)``,
                ``(x_val, y_val, val_sample_weight)``, or any input form (a Parquet path or
                Arrow data read with ``schema``, a ``tf.data.Dataset``, ...). Overrides
                ``validation_split``.
            shuffle: Reshuffle every epoch. What is shuffled depends on the input: rows for
                arrays, tensors, pandas, Arrow tables and Parquet data held in memory (up to
                256 MiB); for Parquet streamed from disk, the order of the row groups, and
                rows through a bounded buffer; nothing for inputs that fix their own order
                (generators, ``tf.data``, ``RecordBatchReader``, Grain and torch loaders:
                shuffle them yourself, e.g. ``dataset.shuffle(n)`` or ``DataLoader(...,
                shuffle=True)``), as Keras ignores it there; the batches of a finite
                ``PyDataset`` in a new order every epoch, as Keras does.
            class_weight: Map from class index to weight, applied to the loss of each row by
                its target class; multiplied with ``sample_weight`` when both are given
                (Keras refuses both). ``"balanced"`` computes the map from the training
                targets as scikit-learn does (``n_samples / (n_classes * count)``, classes
                present): from the rows in memory, or for Parquet streamed from disk by one
                pass over the target columns; inputs read once in batches (generators,
                ``tf.data``, ``PyDataset``) refuse it. For several outputs, a map by output
                name of such maps (or ``"balanced"``): ``{"out_a": {0: 1, 1: 5}, "out_b":
                "balanced"}``; outputs left out weigh 1 (Keras refuses it). The weights
                computed are printed when ``verbose`` is not 0 and given as
                ``history.params["class_weight"]`` (callbacks see them in ``params``).
            sample_weight: Per-row (or, for temporal data, per-time-step) weights, for
                row-addressed inputs; columnar inputs name a column in
                ``schema.sample_weight``.
            initial_epoch: The epoch to start at (to resume a run).
            steps_per_epoch: Batches per epoch; default: one pass over the input. Required
                for infinite inputs; an input that runs out early ends the epoch.
            validation_steps: Batches per validation; default: the whole validation input.
            validation_batch_size: Rows per validation batch; default: ``batch_size``.
            validation_freq: Validate every this many epochs, or at the listed 1-based epoch
                numbers (a list, as tf.keras 2).
            schema: A ``fitpipe.Schema`` naming the feature, target, weight and passthrough
                columns of Arrow, Parquet and pandas inputs (``x`` and
                ``validation_data``), with fill values for nulls.
            data_service: ``"grpc://host:port"`` of a tf.data service dispatcher: the
                training pipeline runs on its workers (graph-only pipelines; see
                ``fitpipe.pipeline.service``).
            check: The pre-flight check of the data before the first step
                (``fitpipe.training.preflight``): NaN and infinite values per feature,
                target and weight column, and targets against the compiled model (sparse
                labels outside the output's classes, binary cross-entropy targets outside
                ``[0, 1]``, one-hot rows that do not sum to 1). ``"warn"`` (default): a
                ``fitpipe.errors.DataCheckWarning`` names each column and count;
                ``"error"``: a ``fitpipe.errors.DataCheckError`` instead; ``"full"``: as
                ``"error"``, and Parquet streamed from disk is read in full first; False:
                no check. Cost: rows held in memory (arrays, tensors, pandas, Arrow tables,
                Parquet up to 256 MiB) are scanned in one vectorized pass, 2-6 s per GB on
                a shared 2-core machine (no data is read again); streamed Parquet is judged from its
                footer statistics only (nulls, minima, maxima: no NaN) unless ``"full"``
                (one extra read of the used columns); generators, ``tf.data`` and
                ``PyDataset`` are not scanned up front: their batches (and those of streamed
                Parquet) are checked as they pass for NaN and infinity in floating features
                and targets, ``"warn"`` warning once (naming the batch index and the input
                or target), ``"error"`` stopping before the step trains on the batch.
                The scan of rows in memory is kept for the next ``fit`` over the same,
                unchanged arrays (fitting in chunks scans once).
            split_by: A grouped ``validation_split`` (fitpipe's; Keras has none): every row
                of a key (a user, a session) falls on one side, the validation side when a
                fixed 64-bit hash of the key is below ``validation_split * 2**64``
                (``fitpipe.columnar.keys``): the same split on every run and machine, for
                any row order and input form. A column name for Arrow, Parquet and pandas
                inputs (it need not be in the schema), an entry of a dict ``x`` or a column
                of a DataFrame (left out of the model's inputs); or the keys themselves, an
                array with one integer or string key per row, for rows in memory. Parquet
                streamed from disk reads the key column once more to count the sides, then
                each epoch keeps each side's rows as row groups are read. The fraction is of
                the keys, so the rows' is approximate: the sizes (rows and keys per side) are
                printed when ``verbose`` is not 0 and kept in
                ``history.params["validation_split_sizes"]``.
            stratify: Split each class of the (single, classification) target in the same
                proportion: the validation rows Keras would set apart, shared among the
                classes by their counts, each class giving its last rows (deterministic).
                Rows in memory only; an error for streamed input, float targets that are not
                whole numbers, or with ``split_by``. The sizes are reported as for
                ``split_by``, with rows per class.
            extra: ``"error"`` (default): a dict ``x`` entry that names no model input is an
                error. ``"ignore"``: such entries (ids, timestamps) are left out, in ``x``
                and ``validation_data``. (Columnar inputs with a schema read only the
                columns it names, and ``split_by``'s.)

        Returns:
            The ``keras.callbacks.History`` of the run. Its ``input_report`` says whether
            training waited on its input (``fitpipe.training.input_report``): per epoch, the
            share of time the step waited for a batch and, when over 20 %, the stage that
            dominates (read, convert, python, transfer) with a hint; with ``verbose``, a
            line says it after training.

        Raises:
            NotCompiledError: When the model is not compiled (a ``RuntimeError``).
            ValueError: On an invalid argument or input (``fitpipe.errors``: the message
                says what failed, what was expected and how to fix it), e.g. no adapter
                takes ``x``, a column is missing, a null has no fill value, the data does
                not fit the model's inputs.
            TypeError: On an argument of the wrong type.

        """
        self._require_compiled("fit")
        epochs, initial_epoch = arguments.check_epochs(epochs, initial_epoch)
        epochs = arguments.limit_epochs(epochs)
        verbose = arguments.check_verbose(verbose, "fit")
        steps_per_epoch = arguments.check_steps(steps_per_epoch, "steps_per_epoch", "fit", True)
        validation_steps = arguments.check_steps(validation_steps, "validation_steps", "fit")
        freq = arguments.check_validation_freq(validation_freq)
        callbacks = arguments.check_callbacks(callbacks, "fit")
        check_shuffle(shuffle, "fit")
        split = check_validation_split(validation_split, "fit") if validation_data is None else 0
        check_split_options(split, split_by, stratify, validation_data is not None, "fit")
        extra_entries = conversions.check_extra(extra, "fit")
        x = conversions.without_extra_inputs(self.model, x, extra_entries, split_by)
        request = AdaptRequest(
            x=conversions.without_absent_inputs(self.model, x, "fit"),
            y=y,
            sample_weight=sample_weight,
            batch_size=batch_size,
            shuffle=shuffle,
            steps=steps_per_epoch if steps_per_epoch != -1 else None,
            caller="fit",
            mode=Mode.TRAIN,
            schema=schema,
            hold_in_memory=distribute.strategy_of(self.model) is None,
            split_by=split_by,
        )
        options = PipelineOptions.of(
            request,
            class_weight=class_weight,
            validation_split=split,
            data_service=distribute.service_address(data_service),
            output_names=_output_names(self.model),
            stratify=bool(stratify),
        )
        train, val = fit_pipelines(
            self.model,
            request,
            options,
            validation_data,
            validation_batch_size or batch_size,
            validation_steps,
            extra_entries,
        )
        with _closing(train), _closing(val):
            self._check_specs(train, val)  # before the data check: structure errors first
            check_fit(self.model, request, train, val, validation_data, check)
            return self._fit_loop(
                train,
                val,
                epochs,
                initial_epoch,
                verbose,
                callbacks,
                steps_per_epoch,
                validation_steps,
                freq,
                finite_check(check),
            )

    def _check_specs(self, train: Pipeline, val: Pipeline | None) -> None:
        """Checks the batches of ``fit``'s pipelines against the model's inputs and targets."""
        check_model_inputs(self.model, train.element_spec, "fit")
        check_model_targets(self.model, train.element_spec, "fit", Mode.TRAIN)
        if val is not None:
            check_model_inputs(self.model, val.element_spec, "fit")
            check_model_targets(self.model, val.element_spec, "evaluate", Mode.EVALUATE)

    def _fit_loop(
        self,
        train: Pipeline,
        val: Pipeline | None,
        epochs: int,
        initial_epoch: int,
        verbose: Any,
        callbacks: Any,
        steps_per_epoch: int | None,
        validation_steps: int | None,
        freq: int | Container[int],
        finite: str | None = None,
    ) -> keras.callbacks.History:
        model = self.model
        plan, how = train.class_weight, train.split
        train = self._distributed(train, Mode.TRAIN, "fit")
        val = self._distributed(val, Mode.EVALUATE, "evaluate")
        runner = EpochRunner(train, arguments.limit_steps(steps_per_epoch, "steps_per_epoch"))
        runner.checks = BatchChecks.for_model(model, train.element_spec, "fit", finite)
        cbs = callbacks_mod.callback_list(
            self.model, callbacks, verbose, epochs, runner.num_batches, history=True
        )
        callbacks_mod.report_class_weight(cbs, plan, verbose)
        callbacks_mod.report_split(cbs, how, verbose)
        execution = self._execution(cbs, "train", "test")
        val_steps = arguments.limit_steps(validation_steps, "validation_steps") if val else None
        val_runner = EpochRunner(val, val_steps) if val else None
        if val_runner is not None:
            val_runner.checks = BatchChecks.for_model(model, val.element_spec, "fit", finite)
        function = self._function("train", train)
        report = InputReport(train.adapter, function.timed)
        backups = PositionBackups(cbs.callbacks, runner)
        model.stop_training = False
        cbs.on_train_begin()
        start = getattr(model, "_initial_epoch", None) or initial_epoch
        start, first = backups.restore(start)
        logs: dict[str, Any] | None = None
        for epoch in range(start, epochs):
            model.reset_metrics()
            callbacks_mod.set_steps(cbs, runner.num_batches)
            cbs.on_epoch_begin(epoch)
            execution.fit_epoch(runner.num_batches)  # calls of whole epochs: as long as can be

            def batch_end(end: int, outputs: Any, epoch: int = epoch) -> None:
                backups.before(epoch, end + 1, end)  # the position exists before any backup
                cbs.on_train_batch_end(end, outputs)
                backups.saved(epoch, end + 1)

            _, last = runner.run(
                function,
                execution,
                cbs.on_train_batch_begin,
                batch_end,
                lambda: bool(model.stop_training),
                first,
            )
            first = 0
            if runner.timing is not None and not runner.ran_nothing:
                report.add(epoch, runner.timing)
            if runner.ran_nothing:  # no metric to report: Keras' "ran out of data", and stop
                warn_no_step(epoch)
                break
            logs = epoch_logs(model, last) if last is not None else {}
            train.on_epoch_end()
            if val_runner is not None and arguments.should_validate(epoch, freq):
                val_logs = self._evaluate_loop(val_runner, cbs, execution)
                if val_logs is None:
                    warn_no_step(epoch, validation=True)
                else:
                    logs.update({f"val_{name}": value for name, value in val_logs.items()})
            backups.before(epoch + 1, 0, None)
            cbs.on_epoch_end(epoch, logs)
            backups.saved(epoch + 1, 0)
            if model.stop_training:
                break
        if epochs > 0 and isinstance(model.optimizer, keras.optimizers.Optimizer):
            model.optimizer.finalize_variable_values(model.trainable_weights)
        cbs.on_train_end(logs=logs)
        history = callbacks_mod.history_of(cbs, model)
        callbacks_mod.report_input(history, report, verbose)
        return history

    # ----------------------------------------------------------------------------- evaluate
    def _evaluate_loop(
        self, runner: EpochRunner, cbs: keras.callbacks.CallbackList, execution: ExecutionSize
    ) -> dict[str, Any] | None:
        """Runs one evaluation; None when the input gave no batch (there is no result)."""
        model = self.model
        model.reset_metrics()
        model.stop_evaluating = False
        cbs.on_test_begin()
        runner.restart()
        _, last = runner.run(
            self._function("test", runner.pipeline),
            execution,
            cbs.on_test_batch_begin,
            cbs.on_test_batch_end,
            lambda: bool(model.stop_evaluating),
        )
        runner.pipeline.on_epoch_end()
        logs = None if runner.ran_nothing else epoch_logs(model, last)
        cbs.on_test_end(logs or {})
        return logs

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
            NotCompiledError: When the model is not compiled (a ``RuntimeError``).
            ValueError: On an invalid argument or input (see ``fit``).
            TypeError: On an argument of the wrong type.

        """
        arguments.no_extra_arguments(kwargs, "evaluate")
        self._require_compiled("evaluate")
        verbose = arguments.check_verbose(verbose, "evaluate")
        steps = arguments.check_steps(steps, "steps", "evaluate")
        callbacks = arguments.check_callbacks(callbacks, "evaluate")
        x = conversions.without_extra_inputs(
            self.model, x, conversions.check_extra(extra, "evaluate")
        )
        request = AdaptRequest(
            x=conversions.without_absent_inputs(self.model, x, "evaluate"),
            y=y,
            sample_weight=sample_weight,
            batch_size=batch_size,
            steps=steps,
            caller="evaluate",
            mode=Mode.EVALUATE,
            schema=schema,
            hold_in_memory=distribute.strategy_of(self.model) is None,
        )
        with build_pipeline(request, warn_ignored=False) as pipeline:
            arguments.require_finite(pipeline, steps, "evaluate", "steps")
            check_model_inputs(self.model, pipeline.element_spec, "evaluate")
            check_model_targets(self.model, pipeline.element_spec, "evaluate", Mode.EVALUATE)
            check_evaluate(self.model, request, pipeline, check)
            steps = arguments.limit_steps(steps, "steps")
            runner = EpochRunner(self._distributed(pipeline, Mode.EVALUATE, "evaluate"), steps)
            runner.checks = BatchChecks.for_model(self.model, pipeline.element_spec, "evaluate")
            cbs = callbacks_mod.callback_list(
                self.model, callbacks, verbose, 1, runner.num_batches, history=False
            )
            logs = self._evaluate_loop(runner, cbs, self._execution(cbs, "test"))
        if logs is None:
            raise no_step_error("evaluate", pipeline.adapter)
        return logs if return_dict else flatten_in_order(self.model, logs)

    # ------------------------------------------------------------------------------ predict
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
            verbose: ``"auto"`` (1), 0 (silent) or 1 (a progress bar; of rows with
                ``output``).
            steps: Batches to predict; default: the whole input (required for infinite
                inputs).
            callbacks: A list of ``keras.callbacks.Callback``.
            schema: A ``fitpipe.Schema`` naming the feature and passthrough columns of
                Arrow, Parquet and pandas inputs.
            output: A Parquet file to stream the predictions to instead of returning them:
                the schema's passthrough columns first (e.g. ids), then one column per model
                output (vectors as ``fixed_size_list``), written chunk by chunk; the file
                appears only when complete. Under ``MultiWorkerMirroredStrategy`` every
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
        verbose = arguments.check_verbose(verbose, "predict")
        steps = arguments.check_steps(steps, "steps", "predict")
        callbacks = arguments.check_callbacks(callbacks, "predict")
        x = conversions.without_extra_inputs(
            self.model, x, conversions.check_extra(extra, "predict")
        )
        if output is not None:
            return self._predict_to_file(x, schema, output, batch_size, verbose, callbacks)
        request = AdaptRequest(
            x=conversions.without_absent_inputs(self.model, x, "predict"),
            batch_size=batch_size,
            steps=steps,
            caller="predict",
            mode=Mode.PREDICT,
            schema=schema,
        )
        with build_pipeline(request, warn_ignored=False) as pipeline:
            arguments.require_finite(pipeline, steps, "predict", "steps")
            check_model_inputs(self.model, pipeline.element_spec, "predict")
            steps = arguments.limit_steps(steps, "steps")
            return self._predict_loop(pipeline, steps, verbose, callbacks)

    def _predict_to_file(
        self,
        x: Any,
        schema: SchemaLike | None,
        output: str | os.PathLike[str],
        batch_size: int | None,
        verbose: Any,
        callbacks: Any,
    ) -> str:
        def predict_chunk(features: Any) -> Any:
            rows = check_rows({"x": features}, "predict")
            chunk = ArraySource(features, None, None, rows)
            options = PipelineOptions(batch_size=batch_size, caller="predict")
            with pipeline_from_source("chunk", chunk, options) as pipeline:
                check_model_inputs(self.model, pipeline.element_spec, "predict")
                return self._predict_loop(pipeline, None, 0, callbacks)

        # Under MultiWorkerMirroredStrategy every worker runs the same steps (their collectives
        # pair up) and holds every prediction; the chief alone writes the file.
        strategy = distribute.strategy_of(self.model)
        chief = strategy is None or bool(strategy.extended.should_checkpoint)
        return predict_to_file(self.model, predict_chunk, x, schema, output, verbose, write=chief)

    def _predict_loop(
        self, pipeline: Pipeline, steps: int | None, verbose: Any, callbacks: Any
    ) -> Any:
        model = self.model
        runner = EpochRunner(self._distributed(pipeline, Mode.PREDICT, "predict"), steps)
        cbs = callbacks_mod.callback_list(
            self.model, callbacks, verbose, 1, runner.num_batches, history=False
        )
        execution = self._execution(cbs, "predict")
        chunks: list[Any] = []

        def after(end: int, outputs: Any) -> None:
            chunks.append(to_results(outputs))
            cbs.on_predict_batch_end(end, {"outputs": outputs})

        model.stop_predicting = False
        cbs.on_predict_begin()
        runner.run(
            self._function("predict", pipeline),
            execution,
            cbs.on_predict_batch_begin,
            after,
            lambda: bool(model.stop_predicting),
        )
        cbs.on_predict_end()
        if not chunks:
            raise FitpipeValueError(
                message(
                    "predict",
                    "got no batches from the input",
                    "`predict` needs at least one batch",
                    "Check that the input is not empty or consumed",
                    x=pipeline.adapter,
                )
            )
        return merge_predictions(chunks)

    # ---------------------------------------------------------------------------- on batch
    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: Mapping[Any, Any] | str | None = None,
        return_dict: bool = False,
    ) -> Any:
        """Runs one gradient update on one batch, as ``keras.Model.train_on_batch``.

        Args:
            x: The batch's inputs: an array, a list of arrays or a dict of arrays by input
                name (tensors too); all its rows are one batch.
            y: The batch's targets, in the structure of the model's outputs.
            sample_weight: Per-row weights of the batch.
            class_weight: Map from class index to weight; multiplied with
                ``sample_weight``; ``"balanced"`` (counted in this batch) or maps by output
                name, as in ``fit``.
            return_dict: Return ``{name: value}`` instead of a list.

        Returns:
            The loss and metric values of this batch alone (metrics are reset first): a
            scalar, a list, or a dict with ``return_dict=True``.

        Raises:
            NotCompiledError: When the model is not compiled (a ``RuntimeError``).
            ValueError: When the batch does not fit the model or its parts differ in rows.

        """
        self._require_compiled("train_on_batch")
        data = one_batch(
            self.model,
            "train_on_batch",
            Mode.TRAIN,
            x,
            y,
            sample_weight,
            class_weight,
            _output_names(self.model),
        )
        _check_one_batch(self.model, data, "train_on_batch")
        self.model.reset_metrics()
        logs = pythonify(self._function("train", conversions.spec_of(data)).on_batch(data))
        return logs if return_dict else flatten_in_order(self.model, logs)

    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ) -> Any:
        """Tests the model on one batch, as ``keras.Model.test_on_batch``.

        Args:
            x: The batch's inputs: an array, a list of arrays or a dict of arrays by input
                name (tensors too).
            y: The batch's targets, in the structure of the model's outputs.
            sample_weight: Per-row weights of the batch.
            return_dict: Return ``{name: value}`` instead of a list.

        Returns:
            The loss and metric values of this batch alone: a scalar, a list, or a dict
            with ``return_dict=True``.

        Raises:
            NotCompiledError: When the model is not compiled (a ``RuntimeError``).
            ValueError: When the batch does not fit the model or its parts differ in rows.

        """
        self._require_compiled("test_on_batch")
        data = one_batch(self.model, "test_on_batch", Mode.EVALUATE, x, y, sample_weight)
        _check_one_batch(self.model, data, "test_on_batch")
        self.model.reset_metrics()
        logs = pythonify(self._function("test", conversions.spec_of(data)).on_batch(data))
        return logs if return_dict else flatten_in_order(self.model, logs)

    def predict_on_batch(self, x: Any) -> Any:
        """Returns predictions for one batch, as ``keras.Model.predict_on_batch``.

        Args:
            x: The batch's inputs: an array, a list of arrays or a dict of arrays by input
                name (tensors too).

        Returns:
            NumPy arrays in the structure of the model's outputs.

        Raises:
            ValueError: When the batch does not fit the model's inputs.

        """
        data = one_batch(self.model, "predict_on_batch", Mode.PREDICT, x)
        return to_results(self._function("predict", conversions.spec_of(data)).on_batch(data))


def _output_names(model: keras.Model) -> tuple[str, ...] | None:
    """The model's output names, when it has them (a per-output ``class_weight`` needs them)."""
    try:
        names = model.output_names
    except (AttributeError, ValueError):
        return None
    return tuple(names) if names else None


def _check_one_batch(model: keras.Model, data: Any, caller: str) -> None:
    checks = BatchChecks.for_model(model, conversions.spec_of(data), caller)
    if checks is not None:
        checks.check(data, "the batch")


@contextlib.contextmanager
def _closing(pipeline: Pipeline | None) -> Iterator[Pipeline | None]:
    try:
        yield pipeline
    finally:
        if pipeline is not None:
            pipeline.close()
