"""The ``*_on_batch`` methods: one step of the model on one batch given in memory.

:class:`OnBatchMethods` holds ``train_on_batch``, ``test_on_batch`` and ``predict_on_batch``,
as Keras' methods of those names, which :class:`~fitpipe.Trainer` inherits: no pipeline and no
epoch loop, the batch is checked and run once by the model's compiled step of that mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from fitpipe.adapters import Mode
from fitpipe.training import arguments, conversions, distribute
from fitpipe.training.batch_checks import check_one_batch
from fitpipe.training.collect import to_results
from fitpipe.training.inputs import check_model_inputs, check_model_targets
from fitpipe.training.keywords import worded_keywords
from fitpipe.training.logs import flatten_in_order, pythonify
from fitpipe.training.one_thread import one_thread_at_a_time
from fitpipe.training.requests import one_batch, output_names
from fitpipe.training.state import ModelState

__all__ = ["OnBatchMethods"]


class OnBatchMethods:
    """The ``*_on_batch`` methods of :class:`~fitpipe.Trainer` (which sets the attributes).

    Attributes:
        model: The ``keras.Model`` run.
    """

    model: keras.Model
    _state: ModelState

    @one_thread_at_a_time
    @worded_keywords
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
            NotCompiledError: When the model is not compiled (a ``RuntimeError`` and a
                ``ValueError``, as Keras' own).
            ValueError: When the batch does not fit the model or its parts differ in rows.

        """
        arguments.require_compiled(self.model, "train_on_batch")
        return_dict = arguments.check_bool(return_dict, "return_dict", "train_on_batch")
        data = one_batch(
            self.model,
            "train_on_batch",
            Mode.TRAIN,
            x,
            y,
            sample_weight,
            class_weight,
            output_names(self.model),
        )
        logs = pythonify(
            _run(self._state, self.model, "train", data, "train_on_batch", class_weight)
        )
        return logs if return_dict else flatten_in_order(self.model, logs)

    @one_thread_at_a_time
    @worded_keywords
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
            NotCompiledError: When the model is not compiled (a ``RuntimeError`` and a
                ``ValueError``, as Keras' own).
            ValueError: When the batch does not fit the model or its parts differ in rows.

        """
        arguments.require_compiled(self.model, "test_on_batch")
        return_dict = arguments.check_bool(return_dict, "return_dict", "test_on_batch")
        data = one_batch(self.model, "test_on_batch", Mode.EVALUATE, x, y, sample_weight)
        logs = pythonify(_run(self._state, self.model, "test", data, "test_on_batch"))
        return logs if return_dict else flatten_in_order(self.model, logs)

    @worded_keywords
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
        return to_results(_run(self._state, self.model, "predict", data, "predict_on_batch"))


def _run(
    state: ModelState,
    model: keras.Model,
    mode: str,
    data: Any,
    caller: str,
    class_weight: Any = None,
) -> Any:
    """Runs the ``mode`` step on one batch, whose spec is read once.

    Train and test check the targets and weights against the compiled loss (as ``fit`` and
    ``evaluate`` do; ``class_weight``, the weights were made from it), then the values, and
    reset the metrics first. The spec serves the checks, the choice of step and its trace.
    """
    data, spec = conversions.present_with_spec(data)
    # as `fit`'s batches: dtypes, names, shapes
    check_model_inputs(model, spec, caller, x_given=True, x_values=data[0] if data else None)
    if mode != "predict":
        step_mode = Mode.TRAIN if mode == "train" else Mode.EVALUATE
        check_model_targets(model, spec, caller, step_mode, class_weight)
        check_one_batch(model, data, caller, spec)
        model.reset_metrics()
    function = state.function(model, mode, spec)
    if mode != "predict":  # under a strategy: the state the step updates, made first
        distribute.build_for_batch(function, model, spec)
    return function.on_batch(data, caller, spec)
