"""Logs: the values a step returns, as callbacks, History and ``evaluate`` see them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf

__all__ = ["epoch_logs", "flatten_in_order", "loop_outputs", "pythonify"]


def pythonify(logs: Mapping[str, Any] | None, flatten: bool = True) -> dict[str, Any]:
    """Turns each value into a Python float where ``float()`` takes it, keys sorted.

    As Keras' ``pythonify_logs``: a tensor becomes a NumPy array first; a value ``float()``
    refuses (a string tensor, ``None``, a vector) is kept as it is. Sorted as Keras' own
    logs are (``return_dict=True`` results, History, callbacks' logs). A nested dict's
    entries take its key's place; with ``flatten`` False it is kept (Keras' callback list
    flattens it so, after any ``val_`` entries are added beside it).
    """
    result: dict[str, Any] = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, Mapping):
            if flatten:
                result.update(pythonify(value))
            else:
                result[key] = pythonify(value, flatten=False)
            continue
        result[key] = _python_value(value)
    return result


def _python_value(value: Any) -> Any:
    """``float(value)`` when it takes it, else the value (a tensor as a NumPy array)."""
    if keras.ops.is_tensor(value):
        value = keras.ops.convert_to_numpy(value)
    try:
        return float(value)
    except Exception:  # as Keras: whatever float() refuses is kept
        return value


def _filled(outputs: Any) -> Any:
    return tf.nest.map_structure(lambda v: tf.constant(False) if v is None else v, outputs)


def loop_outputs(
    step: Callable[[Any], Any], short: Any, traced: Any
) -> tuple[Callable[[Any], Any], Any, Any, Callable[[Any], Any]]:
    """A compiled loop's step for outputs that hold ``None`` (a custom step's log value).

    ``tf.while_loop`` carries no ``None``: the loop's steps give a boolean scalar in its
    place, and the loop's outputs get ``None`` back (as Keras' step function returns it).

    Args:
        step: The step the loop runs.
        short: ``(plain step, rows)`` of ``step_loops.Short``, or None.
        traced: The step's trace (a concrete function: its outputs are read).

    Returns:
        ``(step, short, outputs, restore)``: the steps and outputs to build the loop with,
        and what wraps the loop's body (its outputs second in what it returns).
    """
    outputs = traced.structured_outputs
    if not any(value is None for value in tf.nest.flatten(outputs)):
        return step, short, outputs, lambda body: body

    def filled(run: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda batch: _filled(run(batch))

    def restore(body: Callable[..., Any]) -> Callable[..., Any]:
        def loop(*args: Any) -> Any:
            first, results, *rest = body(*args)
            back = tf.nest.map_structure(lambda t, v: None if t is None else v, outputs, results)
            return (first, back, *rest)

        return loop

    short = None if short is None else (filled(short[0]), short[1])
    return filled(step), short, _filled(outputs), restore


def epoch_logs(model: keras.Model, step_logs: Any, flatten: bool = True) -> dict[str, Any]:
    """The logs of a finished epoch: the model's metric results when they match the step's.

    A custom ``train_step`` may return other keys than the model's metrics; its last logs are
    then used as they are (as Keras does).

    Args:
        model: The model.
        step_logs: What the last step returned.
        flatten: Flatten the dicts a custom step nests (``fit`` leaves them to the callback
            list, as Keras does: History then keeps their entries where their key sorts
            among the others, ``val_`` entries included).

    Returns:
        Python values by name.

    """
    metrics = model.get_metrics_result()
    if isinstance(step_logs, Mapping) and set(step_logs) == set(metrics):
        return pythonify(metrics, flatten)
    if isinstance(step_logs, Mapping):
        return pythonify(step_logs, flatten)
    return pythonify(metrics, flatten)


def _metric_names(model: keras.Model) -> list[str]:
    names: list[str] = []
    for metric in model.metrics:
        children = getattr(metric, "metrics", None)
        if metric.name == "compile_metrics" and isinstance(children, list):
            names.extend(child.name for child in children)
        else:
            names.append(metric.name)
    return names


def flatten_in_order(model: keras.Model, logs: Mapping[str, Any]) -> Any:
    """The documented return of ``evaluate``/``*_on_batch`` without ``return_dict``.

    A scalar when there is one value (single output, no metrics), else a list in the order of
    the model's metrics, then any other keys sorted.
    """
    names = _metric_names(model)
    results = [logs[name] for name in names if name in logs]
    results += [logs[key] for key in sorted(logs) if key not in names]
    return results[0] if len(results) == 1 else results
