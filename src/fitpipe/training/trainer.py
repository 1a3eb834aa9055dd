"""``Trainer``: the documented Keras training API for any ``keras.Model``, on fitpipe pipelines.

Keras provides the model, losses, metrics, optimizers and callbacks; ``compile`` configures
them exactly as ``keras.Model.compile`` does. fitpipe runs everything else: adapting the input
into a pipeline, splitting validation rows, the epoch loop with Keras' iterator semantics,
the compiled multi-step functions, the callbacks' calls, and the documented return values.

This module holds ``Trainer`` with ``compile`` and ``fit``; it inherits ``evaluate`` and
``predict`` (:mod:`fitpipe.training.evaluate_predict`) and the ``*_on_batch`` methods
(:mod:`fitpipe.training.on_batch`).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any, Literal

import keras

from fitpipe.columnar import recycling
from fitpipe.errors import FitpipeTypeError, message
from fitpipe.pipeline import check_positive_int
from fitpipe.schemas import SchemaLike
from fitpipe.training import arguments
from fitpipe.training.compile_checks import check_per_output_arguments
from fitpipe.training.evaluate_predict import EvaluatePredictMethods
from fitpipe.training.fit_loop import FitLoop, FitSettings, closing, run_no_epoch
from fitpipe.training.inputs import check_fit_specs
from fitpipe.training.keywords import worded_keywords
from fitpipe.training.metric_strings import with_crossentropy_metrics
from fitpipe.training.on_batch import OnBatchMethods
from fitpipe.training.one_thread import one_thread_at_a_time
from fitpipe.training.preflight import check_fit, finite_check
from fitpipe.training.requests import fit_pipelines, fit_request
from fitpipe.training.resume import start_epoch
from fitpipe.training.state import state_of

__all__ = ["Trainer"]


def _keras_compile(model: keras.Model, **kwargs: Any) -> None:
    from fitpipe.training.models import FitpipeMethods

    if isinstance(model, FitpipeMethods):
        keras.Model.compile(model, **kwargs)
    else:
        model.compile(**kwargs)


def _restored_trainer(
    cls: type[Trainer], model: keras.Model, spe: int | str | None, jit: bool | str | None
) -> Trainer:
    """A trainer of ``model`` (unpickled or copied) with fitpipe's compile settings again."""
    trainer = cls.__new__(cls)
    Trainer.__init__(trainer, model)
    trainer._state.restore(model, spe, jit)
    return trainer


class Trainer(EvaluatePredictMethods, OnBatchMethods):
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
        self._state = state_of(model)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles (and ``copy.deepcopy`` copies) a trainer as its model and compile settings.

        The model goes as Keras pickles and copies it (its weights, compile and optimizer
        state); fitpipe's ``steps_per_execution`` and ``jit_compile`` go beside it and are
        set again on the copy, whose compiled steps and tuners start anew. ``copy.copy``
        gives another trainer of the same model.
        """
        spe, jit = self._state.settings(self.model)
        extra = {k: v for k, v in self.__dict__.items() if k not in ("model", "_state")}
        return (_restored_trainer, (type(self), self.model, spe, jit), extra or None)

    # ------------------------------------------------------------------------------ compile
    @one_thread_at_a_time
    @worded_keywords
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
                list or dict per output. ``"crossentropy"`` and ``"ce"`` become the binary,
                categorical or sparse categorical crossentropy that the shapes of the targets
                and outputs call for, as Keras documents (and does for ``"accuracy"``; Keras'
                own ``compile`` refuses them as metrics).
            weighted_metrics: Metrics weighted by ``sample_weight`` and ``class_weight``.
            run_eagerly: Run the steps in Python, step by step (no graph, no XLA): for
                debugging.
            steps_per_execution: Batches run per compiled call (a positive integer), or
                ``"auto"``: fitpipe tunes it while training (the same steps in the same
                order as with 1; batch-level callbacks then see only each call's last
                batch, at sizes set by timing: a callback that changes training per batch,
                such as a learning-rate warm-up, ``stop_training`` or ``ModelCheckpoint``
                by batches, acts where a call ends, so leave 1 for them). With the
                default 1 and no callback hooked on batches, fitpipe still runs several steps
                per call: the same steps in the same order. Under
                ``MultiWorkerMirroredStrategy`` the size is never tuned (every worker must
                run the same steps per call): ``"auto"`` runs one step per call.
            jit_compile: Compile the steps with XLA: True, False, or ``"auto"``, decided by
                measurement, once per model and input shape: the first steps run the plain
                TensorFlow graph (no XLA compilation before the first step); once the steps
                per call have settled and the plain graph's timed calls plus the steps
                still ahead in this ``fit`` come to 50 times its first call (10 for a step
                that runs a loop of its own, such as an LSTM's), at most 60 s of CPU (a
                shorter run never pays back a compile, so it keeps the plain graph; an
                embedding's sparse gradient, or a step on a GPU, is timed at once), a few
                calls are timed with and
                without XLA (calls that traced or compiled are never timed) and XLA is kept
                only when it is at least 10% faster (the steps per call then grow by the
                speed-up). ``evaluate`` and ``predict`` follow the choice made by ``fit``
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
            ValueError: When, for a model whose outputs are known and flat (functional or
                ``Sequential``), a list of ``loss`` or ``loss_weights`` has not one entry
                per output, or a dict of ``loss_weights`` (or of ``metrics`` on one
                output) names an output the model does not have: Keras takes them
                silently.
            TypeError: When ``run_eagerly`` or ``auto_scale_loss`` is not a bool, or
                ``jit_compile`` neither a bool nor ``"auto"`` (Keras takes any value: a
                truthy one such as ``"no"`` turns XLA on).

        """
        spe = arguments.check_steps_per_execution(steps_per_execution)
        jit_compile = arguments.check_jit_compile(jit_compile)
        run_eagerly = arguments.check_bool(run_eagerly, "run_eagerly", "compile")
        auto_scale_loss = arguments.check_bool(auto_scale_loss, "auto_scale_loss", "compile")
        check_per_output_arguments(self.model, loss, loss_weights, metrics, weighted_metrics)
        _keras_compile(
            self.model,
            optimizer=optimizer,
            loss=loss,
            loss_weights=loss_weights,
            metrics=with_crossentropy_metrics(metrics),
            weighted_metrics=with_crossentropy_metrics(weighted_metrics),
            run_eagerly=run_eagerly,
            steps_per_execution=1,
            jit_compile=jit_compile,
            auto_scale_loss=auto_scale_loss,
        )
        self._state.compiled(self.model, spe, jit_compile)

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
        return self._state.tuning()

    # ---------------------------------------------------------------------------------- fit
    @one_thread_at_a_time
    @recycling()
    @worded_keywords
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
                order (a list's files in its order, a folder's in path order), planned from the
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
            sample_weight: Per-row weights ``(samples,)`` (or ``(samples, 1)``), or, for
                temporal data, per-time-step ones ``(samples, sequence_length)`` (or with a
                trailing 1), for row-addressed inputs; columnar inputs name a column in
                ``schema.sample_weight``. Other shapes are refused before the first step.
            initial_epoch: The epoch to start at (to resume a run). When no epoch is left
                to run (``initial_epoch`` equal to ``epochs``, or a ``BackupAndRestore``
                backup of the last epoch), ``fit`` only adapts the input and calls
                ``on_train_begin`` and ``on_train_end``, as Keras: the data is not checked
                against the model and ``validation_data`` is not read.
            steps_per_epoch: Batches per epoch; default: one pass over the input. Required
                for infinite inputs; an input that runs out early ends the epoch.
            validation_steps: Batches per validation; default: the whole validation input.
            validation_batch_size: Rows per validation batch of arrays and tables; default:
                ``batch_size``. Refused for ``validation_data`` that comes in batches.
            validation_freq: Validate every this many epochs, or at the listed 1-based epoch
                numbers (a list, as tf.keras 2).
            schema: A ``fitpipe.Schema`` naming the feature, target, weight and passthrough
                columns of Arrow, Parquet and pandas inputs (``x`` and
                ``validation_data``), with fill values for nulls.
            data_service: ``"grpc://host:port"`` of a tf.data service dispatcher: the
                training pipeline runs on its workers (graph-only pipelines; see
                ``fitpipe.pipeline.service``). Refused under ``MultiWorkerMirroredStrategy``.
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
            NotCompiledError: When the model is not compiled (a ``RuntimeError`` and a
                ``ValueError``, as Keras' own).
            ValueError: On an invalid argument or input (``fitpipe.errors``: the message
                says what failed, what was expected and how to fix it), e.g. no adapter
                takes ``x``, a column is missing, a null has no fill value, the data does
                not fit the model's inputs.
            TypeError: On an argument of the wrong type.

        """
        arguments.require_compiled(self.model, "fit")
        epochs, initial_epoch = arguments.check_epochs(epochs, initial_epoch)
        epochs = arguments.limit_epochs(epochs)
        verbose = arguments.check_verbose(verbose, "fit")
        steps_per_epoch = arguments.check_steps(steps_per_epoch, "steps_per_epoch", "fit", True)
        validation_steps = arguments.check_steps(validation_steps, "validation_steps", "fit")
        freq = arguments.check_validation_freq(validation_freq)
        callbacks = arguments.check_callbacks(callbacks, "fit")
        check_positive_int(validation_batch_size, "validation_batch_size", "fit")
        request, options, extra_entries = fit_request(
            self.model,
            x,
            y,
            sample_weight,
            batch_size,
            shuffle,
            steps_per_epoch,
            schema=schema,
            class_weight=class_weight,
            validation_split=validation_split,
            validation_data=validation_data,
            data_service=data_service,
            split_by=split_by,
            stratify=stratify,
            extra=extra,
        )
        runs = start_epoch(self.model, callbacks, initial_epoch) < epochs
        train, val = fit_pipelines(
            self.model,
            request,
            options,
            validation_data,
            validation_batch_size or batch_size,
            validation_steps,
            extra_entries,
            read_validation=runs,
            val_batch_given=validation_batch_size,
        )
        with closing(train), closing(val):
            finite = finite_check(check)
            settings = FitSettings(
                epochs, verbose, callbacks, steps_per_epoch, validation_steps, freq, finite, x
            )
            if not runs:  # as Keras: no data read for no epoch, none checked against the model
                return run_no_epoch(self.model, train, settings, initial_epoch)
            check_fit_specs(self.model, train, val)  # before the data check: structure first
            check_fit(self.model, request, train, val, validation_data, check)
            return FitLoop(self.model, self._state, train, val, settings).run(initial_epoch)
