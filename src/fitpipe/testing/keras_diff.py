"""``assert_matches_keras``: train a Keras model and a fitpipe twin and compare everything.

Keras is fitpipe's oracle. The helper builds two models with the same initial weights, trains
one with ``keras.Model.fit`` and the other with ``fitpipe.Trainer(model).fit`` on the same
data, and compares ``History`` (keys, epochs, values, params), ``evaluate``, ``predict`` and
the final weights. On a difference it raises one ``AssertionError`` listing every difference
found, each as ``what: keras <value> vs fitpipe <value>``.

Needs only Keras and NumPy (no pytest, no Hypothesis).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import fitpipe

__all__ = ["KerasComparison", "assert_matches_keras"]

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


def _is_factory(value: Any) -> bool:
    """True for a zero-argument callable standing for a fresh input (not for data itself)."""
    data_types = (np.ndarray, tf.Tensor, tf.data.Dataset, keras.utils.PyDataset, keras.Model)
    return callable(value) and not isinstance(value, (type, *data_types))


def _fresh(value: Any) -> Any:
    """Copies optimizers, losses and metrics (stateful Keras objects two models cannot share)."""
    if isinstance(value, keras.optimizers.Optimizer):
        return value.__class__.from_config(value.get_config())
    if isinstance(value, (keras.losses.Loss, keras.metrics.Metric)):
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_fresh(v) for v in value)
    return value


def _side_value(value: Any) -> Any:
    return value() if _is_factory(value) else value


def _fmt(value: Any) -> str:
    array = np.asarray(value)
    if array.dtype.kind in "biuf" and array.size:
        return np.array2string(array.astype(np.float64), precision=6, threshold=12)
    return repr(value)


class _Diff:
    """Collects differences as readable lines."""

    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol = rtol
        self.atol = atol
        self.lines: list[str] = []

    def add(self, what: str, keras_value: Any, fitpipe_value: Any) -> None:
        self.lines.append(f"{what}: keras {_fmt(keras_value)} vs fitpipe {_fmt(fitpipe_value)}")

    def close(self, a: Any, b: Any) -> bool:
        try:
            ra, rb = np.asarray(a, np.float64), np.asarray(b, np.float64)
        except (TypeError, ValueError):
            return bool(a == b)
        if ra.shape != rb.shape:
            return False
        return bool(np.allclose(ra, rb, rtol=self.rtol, atol=self.atol, equal_nan=True))

    def arrays(self, what: str, keras_value: Any, fitpipe_value: Any) -> None:
        """Compares two arrays: shape, dtype, then values (naming the first that differs)."""
        r, g = np.asarray(keras_value), np.asarray(fitpipe_value)
        if r.shape != g.shape:
            self.lines.append(f"{what}: shape keras {r.shape} vs fitpipe {g.shape}")
            return
        if r.dtype != g.dtype:
            self.lines.append(f"{what}: dtype keras {r.dtype} vs fitpipe {g.dtype}")
        if self.close(r, g):
            return
        bad = ~np.isclose(
            r.astype(np.float64), g.astype(np.float64), self.rtol, self.atol, equal_nan=True
        )
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if r.ndim else ()
        self.lines.append(
            f"{what}: {int(bad.sum())} of {r.size} values differ; first at index {first}: "
            f"keras {_fmt(r[first])} vs fitpipe {_fmt(g[first])}"
        )

    def structures(self, what: str, keras_value: Any, fitpipe_value: Any) -> None:
        """Compares nested results (dicts, lists, arrays, scalars)."""
        if isinstance(keras_value, Mapping):
            if not isinstance(fitpipe_value, Mapping):
                self.add(f"{what} type", type(keras_value).__name__, type(fitpipe_value).__name__)
                return
            if set(keras_value) != set(fitpipe_value):
                self.add(f"{what} keys", sorted(keras_value), sorted(fitpipe_value))
            for key in sorted(set(keras_value) & set(fitpipe_value)):
                self.structures(f"{what}[{key!r}]", keras_value[key], fitpipe_value[key])
            return
        if isinstance(keras_value, (list, tuple)):
            if not isinstance(fitpipe_value, (list, tuple)) or len(fitpipe_value) != len(
                keras_value
            ):
                self.lines.append(
                    f"{what}: keras {type(keras_value).__name__} of {len(keras_value)} vs "
                    f"fitpipe {fitpipe_value!r:.200}"
                )
                return
            for index, (r, g) in enumerate(zip(keras_value, fitpipe_value, strict=True)):
                self.structures(f"{what}[{index}]", r, g)
            return
        if isinstance(keras_value, np.ndarray) and keras_value.ndim:
            self.arrays(what, keras_value, fitpipe_value)
        elif not self.close(keras_value, fitpipe_value):
            self.add(what, keras_value, fitpipe_value)

    def histories(self, ref: keras.callbacks.History, got: Any) -> None:
        """Compares History keys, epochs, params and every value epoch by epoch."""
        if not isinstance(got, keras.callbacks.History):
            self.add("fit return type", "History", type(got).__name__)
            return
        if list(ref.epoch) != list(got.epoch):
            self.add("History.epoch", list(ref.epoch), list(got.epoch))
        keys_r, keys_g = set(ref.history), set(got.history)
        if keys_r != keys_g:
            self.lines.append(
                f"History keys: only in keras {sorted(keys_r - keys_g)}, only in fitpipe "
                f"{sorted(keys_g - keys_r)}"
            )
        for key in sorted(keys_r & keys_g):
            r, g = list(ref.history[key]), list(got.history[key])
            if len(r) != len(g):
                self.add(f"History[{key!r}] epochs recorded", len(r), len(g))
            for epoch, (rv, gv) in enumerate(zip(r, g, strict=False)):
                if not self.close(rv, gv):
                    self.add(f"History[{key!r}] epoch {epoch}", rv, gv)
        params_r, params_g = dict(ref.params), dict(got.params)
        for key in sorted(set(params_r) | set(params_g)):
            if params_r.get(key, "<missing>") != params_g.get(key, "<missing>"):
                self.lines.append(
                    f"History.params[{key!r}]: keras {params_r.get(key, '<missing>')!r} vs "
                    f"fitpipe {params_g.get(key, '<missing>')!r}"
                )

    def weights(self, ref: keras.Model, got: keras.Model) -> None:
        """Compares every weight (by path) and the optimizers' update counts."""
        if len(ref.weights) != len(got.weights):
            self.add("number of weights", len(ref.weights), len(got.weights))
        for r, g in zip(ref.weights, got.weights, strict=False):
            self.arrays(
                f"weight {r.path!r}",
                keras.ops.convert_to_numpy(r),
                keras.ops.convert_to_numpy(g),
            )
        iterations = [
            int(keras.ops.convert_to_numpy(m.optimizer.iterations))
            if m.optimizer is not None
            else None
            for m in (ref, got)
        ]
        if iterations[0] != iterations[1]:
            self.add("optimizer.iterations", iterations[0], iterations[1])


def assert_matches_keras(
    build_model: Callable[[], keras.Model],
    x: Any,
    y: Any = None,
    *,
    compile_kwargs: Mapping[str, Any] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    seed: int = 0,
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

    """
    compile_kwargs = dict(compile_kwargs or {"optimizer": "sgd", "loss": "mse"})
    fit_kwargs.setdefault("verbose", 0)
    fit_kwargs.setdefault("shuffle", False)
    steps = fit_kwargs.get("steps_per_epoch")

    keras.utils.set_random_seed(seed)
    reference = build_model()
    keras.utils.set_random_seed(seed)
    twin = build_model()
    if reference is twin:
        raise ValueError("`build_model` must return a new model on each call")
    twin.set_weights(reference.get_weights())
    reference.compile(**_fresh(compile_kwargs))
    trainer = fitpipe.Trainer(twin)
    trainer.compile(**_fresh(compile_kwargs))

    def fit_arguments() -> dict[str, Any]:
        kwargs = {
            name: _side_value(value) if name in _FRESH_PER_SIDE else value
            for name, value in fit_kwargs.items()
        }
        kwargs["x"] = _side_value(x)
        kwargs["y"] = _side_value(y)
        return kwargs

    keras.utils.set_random_seed(seed + 1)
    keras_history = reference.fit(**fit_arguments())
    keras.utils.set_random_seed(seed + 1)
    fitpipe_history = trainer.fit(**fit_arguments())

    diff = _Diff(rtol, atol)
    diff.histories(keras_history, fitpipe_history)

    extra = {
        name: value
        for name, value in (("batch_size", fit_kwargs.get("batch_size")), ("steps", steps))
        if value is not None
    }
    keras_eval = reference.evaluate(
        _side_value(x), _side_value(y), verbose=0, return_dict=True, **extra
    )
    fitpipe_eval = trainer.evaluate(
        _side_value(x), _side_value(y), verbose=0, return_dict=True, **extra
    )
    diff.structures("evaluate", keras_eval, fitpipe_eval)

    keras_pred = reference.predict(_side_value(x), verbose=0, **extra)
    fitpipe_pred = trainer.predict(_side_value(x), verbose=0, **extra)
    diff.structures("predict", keras_pred, fitpipe_pred)

    diff.weights(reference, twin)
    if diff.lines:
        shown = diff.lines[:40]
        more = len(diff.lines) - len(shown)
        raise AssertionError(
            f"fitpipe differs from Keras in {len(diff.lines)} place(s) "
            f"(rtol={rtol}, atol={atol}):\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    return KerasComparison(reference, twin, trainer, keras_history, fitpipe_history)
