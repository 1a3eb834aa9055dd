"""Differential testing against Keras: train a Keras model and a fitpipe twin, compare.

Keras is fitpipe's oracle. Every comparison builds two models with the same initial weights,
trains one with ``keras.Model.fit`` and the other with ``fitpipe.Trainer(model).fit`` (or the
model's own ``fit`` for ``fitpipe.Model`` and ``fitpipe.Sequential``) on the same data, and
compares what both returned. Two levels:

* :func:`assert_matches_keras`: one call; trains on one input and compares ``History``,
  ``evaluate`` and ``predict`` on the training data, the final weights and the optimizers'
  step counts;
* the building blocks, for tests that need more control (fitpipe's own differential suite is
  built on them): :func:`make_twins`, :func:`compile_both` (of :mod:`fitpipe.testing.twins`,
  re-exported here), :func:`run_both` (which returns a :class:`DiffResult`),
  :func:`assert_evaluate_close`, :func:`assert_predict_close`, and the assertions of
  :mod:`fitpipe.testing.assertions` (re-exported here):
  :func:`assert_close`, :func:`assert_histories_close`, :func:`assert_weights_close`,
  :func:`assert_optimizer_iterations_equal`, :func:`assert_structures_close`.

Arguments given to both sides (a :data:`KwargsSpec`) are a mapping, whose optimizers, losses
and metrics are copied per side (two models cannot share them), or a callable taking the side
(``"keras"`` or ``"fitpipe"``) and returning the mapping, for generators, callbacks and other
one-shot objects. A difference raises one ``AssertionError`` listing every difference found,
each as ``what: keras <value> vs fitpipe <value>``.

Needs only Keras and NumPy (no pytest, no Hypothesis).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, cast

import keras
import numpy as np
import tensorflow as tf

import fitpipe
from fitpipe.testing.assertions import (
    ATOL,
    RTOL,
    Differences,
    assert_close,
    assert_histories_close,
    assert_optimizer_iterations_equal,
    assert_structures_close,
    assert_weights_close,
)
from fitpipe.testing.twins import (
    KwargsSpec,
    Side,
    TrainingAPI,
    Via,
    compile_both,
    fitpipe_api,
    fresh_copies,
    kwargs_for_side,
    make_twins,
)

__all__ = [
    "ATOL",
    "RTOL",
    "DiffResult",
    "Differences",
    "KerasComparison",
    "KwargsSpec",
    "Side",
    "TrainingAPI",
    "Via",
    "assert_close",
    "assert_evaluate_close",
    "assert_histories_close",
    "assert_matches_keras",
    "assert_optimizer_iterations_equal",
    "assert_predict_close",
    "assert_structures_close",
    "assert_weights_close",
    "compile_both",
    "fitpipe_api",
    "fresh_copies",
    "kwargs_for_side",
    "make_twins",
    "run_both",
]


#: The default of ``keras_x`` and ``keras_y``: Keras reads what fitpipe reads.
_SAME: Any = object()

#: Arguments of ``fit`` that may be zero-argument callables making a fresh value per side.
_FRESH_PER_SIDE = ("x", "y", "sample_weight", "validation_data", "callbacks")


@dataclasses.dataclass
class KerasComparison:
    """What :func:`assert_matches_keras` trained, for further checks.

    Attributes:
        keras_model: The model trained by Keras.
        fitpipe_model: Its twin, trained by fitpipe.
        trainer: The ``fitpipe.Trainer`` of the twin.
        keras_history: The History returned by Keras.
        fitpipe_history: The History returned by fitpipe.

    """

    keras_model: keras.Model
    fitpipe_model: keras.Model
    trainer: fitpipe.Trainer
    keras_history: keras.callbacks.History
    fitpipe_history: keras.callbacks.History


@dataclasses.dataclass
class DiffResult:
    """What :func:`run_both` trained, for further checks.

    Attributes:
        ref: The model trained by Keras.
        twin: The model trained by fitpipe.
        api: fitpipe's entry point for the twin (see :func:`fitpipe_api`).
        ref_history: The History returned by Keras.
        twin_history: The History returned by fitpipe.
        ref_fit_kwargs: The arguments of the Keras ``fit``.
        twin_fit_kwargs: The arguments of fitpipe's ``fit``.

    """

    ref: keras.Model
    twin: keras.Model
    api: TrainingAPI
    ref_history: keras.callbacks.History | None = None
    twin_history: keras.callbacks.History | None = None
    ref_fit_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    twin_fit_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _evaluate_diff(
    diff: Differences, ref: keras.Model, api: TrainingAPI, eval_kwargs: KwargsSpec
) -> None:
    for return_dict in (False, True):
        sides = [kwargs_for_side(eval_kwargs, side) for side in ("keras", "fitpipe")]
        for kwargs in sides:
            kwargs.setdefault("verbose", 0)
            kwargs["return_dict"] = return_dict
        diff.structures(
            f"evaluate(return_dict={return_dict})",
            ref.evaluate(**sides[0]),
            api.evaluate(**sides[1]),
        )


def assert_evaluate_close(
    ref: keras.Model,
    api: TrainingAPI,
    eval_kwargs: KwargsSpec,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> None:
    """Asserts ``evaluate`` agrees, as a list (or scalar) and with ``return_dict=True``.

    Args:
        ref: The Keras model.
        api: fitpipe's entry point for the twin.
        eval_kwargs: The arguments of ``evaluate`` (``verbose=0`` unless given).
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Raises:
        AssertionError: Listing every difference.

    """
    diff = Differences(rtol, atol)
    _evaluate_diff(diff, ref, api, eval_kwargs)
    diff.raise_if_any()


def assert_predict_close(
    ref: keras.Model,
    api: TrainingAPI,
    x: Any,
    rtol: float = RTOL,
    atol: float = ATOL,
    **predict_kwargs: Any,
) -> None:
    """Asserts ``predict`` agrees: structure, dtypes and values.

    Args:
        ref: The Keras model.
        api: fitpipe's entry point for the twin.
        x: The input (read twice: not a generator).
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        **predict_kwargs: More arguments of ``predict`` (``verbose=0`` unless given).

    Raises:
        AssertionError: Listing every difference.

    """
    predict_kwargs.setdefault("verbose", 0)
    assert_structures_close(
        ref.predict(x, **predict_kwargs), api.predict(x, **predict_kwargs), "predict", rtol, atol
    )


def run_both(
    build_fn: Callable[[], keras.Model],
    compile_kwargs: KwargsSpec | None,
    fit_kwargs: KwargsSpec,
    *,
    eval_kwargs: KwargsSpec | None = None,
    predict_x: Any = None,
    via: Via = "trainer",
    twin_build_fn: Callable[[], keras.Model] | None = None,
    check_weights: bool = True,
    check_params: bool = True,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> DiffResult:
    """Trains a Keras model and a fitpipe twin the same way and asserts they agree.

    Compares the Histories, then (optionally) the final weights and optimizer step counts,
    ``evaluate`` (see :func:`assert_evaluate_close`) and ``predict``.

    Args:
        build_fn: Returns a new, built model each call (called twice).
        compile_kwargs: The arguments of ``compile``.
        fit_kwargs: The arguments of ``fit`` (``verbose=0`` and ``shuffle=False`` unless
            given).
        eval_kwargs: When given, ``evaluate`` is compared with these arguments.
        predict_x: When given, ``predict`` is compared on it.
        via: How the twin is trained (see :func:`fitpipe_api`).
        twin_build_fn: Builds the twin instead (see :func:`make_twins`).
        check_weights: Compare the final weights and optimizer step counts.
        check_params: Compare ``History.params``.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Returns:
        The models, fitpipe's entry point, the Histories and the ``fit`` arguments.

    Raises:
        AssertionError: Listing every difference.

    """
    ref, twin = make_twins(build_fn, twin_build_fn=twin_build_fn)
    api = compile_both(ref, twin, compile_kwargs, via)
    result = DiffResult(ref=ref, twin=twin, api=api)
    result.ref_fit_kwargs = kwargs_for_side(fit_kwargs, "keras")
    result.twin_fit_kwargs = kwargs_for_side(fit_kwargs, "fitpipe")
    for kwargs in (result.ref_fit_kwargs, result.twin_fit_kwargs):
        kwargs.setdefault("verbose", 0)
        kwargs.setdefault("shuffle", False)
    keras.utils.set_random_seed(1)
    result.ref_history = ref.fit(**result.ref_fit_kwargs)
    keras.utils.set_random_seed(1)
    result.twin_history = api.fit(**result.twin_fit_kwargs)
    diff = Differences(rtol, atol)
    diff.histories(result.ref_history, result.twin_history, check_params)
    if check_weights:
        diff.weights(ref, twin)
        diff.iterations(ref, twin)
    if eval_kwargs is not None:
        _evaluate_diff(diff, ref, api, eval_kwargs)
    if predict_x is not None:
        diff.structures(
            "predict", ref.predict(predict_x, verbose=0), api.predict(predict_x, verbose=0)
        )
    diff.raise_if_any()
    return result


# One call -------------------------------------------------------------------------------------


def _is_factory(value: Any) -> bool:
    """True for a zero-argument callable standing for a fresh input (not for data itself)."""
    data_types = (np.ndarray, tf.Tensor, tf.data.Dataset, keras.utils.PyDataset, keras.Model)
    return callable(value) and not isinstance(value, (type, *data_types))


def _side_value(value: Any) -> Any:
    return value() if _is_factory(value) else value


def _evaluate_and_predict_diff(
    diff: Differences,
    reference: keras.Model,
    trainer: fitpipe.Trainer,
    keras_data: tuple[Any, Any],
    fitpipe_data: tuple[Any, Any],
    extra: dict[str, Any],
) -> None:
    """Adds to ``diff`` how both sides' ``evaluate`` (as a dict) and ``predict`` differ.

    Each side reads its own ``(x, y)``: Keras ``keras_data``, fitpipe ``fitpipe_data``.
    """
    (keras_x, keras_y), (x, y) = keras_data, fitpipe_data
    keras_eval = reference.evaluate(
        _side_value(keras_x), _side_value(keras_y), verbose=0, return_dict=True, **extra
    )
    fitpipe_eval = trainer.evaluate(
        _side_value(x), _side_value(y), verbose=0, return_dict=True, **extra
    )
    diff.structures("evaluate", keras_eval, fitpipe_eval)

    keras_pred = reference.predict(_side_value(keras_x), verbose=0, **extra)
    fitpipe_pred = trainer.predict(_side_value(x), verbose=0, **extra)
    diff.structures("predict", keras_pred, fitpipe_pred)


def assert_matches_keras(
    build_model: Callable[[], keras.Model],
    x: Any,
    y: Any = None,
    *,
    compile_kwargs: Mapping[str, Any] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    seed: int = 0,
    keras_x: Any = _SAME,
    keras_y: Any = _SAME,
    **fit_kwargs: Any,
) -> KerasComparison:
    """Trains a Keras model and a fitpipe twin on the same data and checks they agree.

    Both models come from ``build_model`` with the same initial weights; Keras trains one with
    ``model.fit`` and fitpipe the other with ``fitpipe.Trainer(model).fit``, with the same
    random seed. Then ``History`` (keys, epochs, values, params), ``evaluate`` (as a dict, on
    the training data), ``predict`` (on the training data) and the final weights and
    optimizer step counts are compared.

    Args:
        build_model: Returns a new, *built* ``keras.Model`` each call (called twice).
        x: The input, in any form both Keras and fitpipe take. A one-shot input (a
            generator) must be given as a zero-argument callable making a fresh one; it is
            called once per side and per use (fit, evaluate, predict).
        y: Targets, or None; may be a zero-argument callable too.
        compile_kwargs: Arguments of ``compile`` (optimizers, losses and metrics are copied
            per side); default ``{"optimizer": "sgd", "loss": "mse"}``.
        rtol: Relative tolerance of every numeric comparison.
        atol: Absolute tolerance of every numeric comparison.
        seed: The seed set before building each model and before each ``fit``.
        keras_x: The input Keras is given instead of ``x`` (default: ``x`` itself), for an
            ``x`` Keras does not take: an adapter's input goes to fitpipe as ``x``, the same
            rows as arrays to Keras as ``keras_x`` (and ``keras_y``). Used for ``fit``,
            ``evaluate`` and ``predict``; may be a zero-argument callable like ``x``.
        keras_y: The targets Keras is given instead of ``y`` (default: ``y`` itself; None
            for none, e.g. when ``keras_x`` holds them).
        **fit_kwargs: Arguments of ``fit`` (``verbose=0`` and ``shuffle=False`` unless
            given). ``sample_weight``, ``validation_data`` and ``callbacks`` may be
            zero-argument callables, called once per side. ``steps_per_epoch`` is also used
            as ``steps`` of ``evaluate`` and ``predict``.

    Returns:
        The trained models and their histories.

    Raises:
        AssertionError: Listing every difference, each with what differed (History key and
            epoch, ``evaluate`` metric, ``predict`` index, weight path) and the Keras value
            next to the fitpipe value.
        ValueError: When ``build_model`` returns the same model twice.

    """
    fit_kwargs.setdefault("verbose", 0)
    fit_kwargs.setdefault("shuffle", False)
    steps = fit_kwargs.get("steps_per_epoch")

    reference, twin = make_twins(build_model, seed)
    compile_args = compile_kwargs or {"optimizer": "sgd", "loss": "mse"}
    trainer = cast(fitpipe.Trainer, compile_both(reference, twin, compile_args))

    keras_x, keras_y = (x if keras_x is _SAME else keras_x), (y if keras_y is _SAME else keras_y)

    def fit_arguments(side_x: Any, side_y: Any) -> dict[str, Any]:
        kwargs = {
            name: _side_value(value) if name in _FRESH_PER_SIDE else value
            for name, value in fit_kwargs.items()
        }
        kwargs["x"] = _side_value(side_x)
        kwargs["y"] = _side_value(side_y)
        return kwargs

    keras.utils.set_random_seed(seed + 1)
    keras_history = reference.fit(**fit_arguments(keras_x, keras_y))
    keras.utils.set_random_seed(seed + 1)
    fitpipe_history = trainer.fit(**fit_arguments(x, y))

    diff = Differences(rtol, atol)
    diff.histories(keras_history, fitpipe_history)

    extra = {
        name: value
        for name, value in (("batch_size", fit_kwargs.get("batch_size")), ("steps", steps))
        if value is not None
    }
    _evaluate_and_predict_diff(diff, reference, trainer, (keras_x, keras_y), (x, y), extra)
    diff.weights(reference, twin)
    diff.iterations(reference, twin)
    diff.raise_if_any()
    return KerasComparison(reference, twin, trainer, keras_history, fitpipe_history)
