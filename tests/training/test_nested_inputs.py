"""Model inputs nested deeper than one list or dict: trained, evaluated, predicted as Keras.

Keras feeds ``keras.Model({"g": [a, b], "c": c}, ...)`` (or any nesting of dicts, lists and
tuples) data of the same structure, leaf by leaf; fitpipe matches it by structure too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from differential import regression_data
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import Side, run_both

X, Y = regression_data(n=96, d=4)
COMPILE = {"optimizer": "sgd", "loss": "mse", "metrics": ["mae"]}


def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=2),
        st.lists(children, min_size=1, max_size=2).map(tuple),
        st.dictionaries(st.sampled_from("pqrs"), children, min_size=1, max_size=2),
    )


#: Structures of input widths, nested at least two deep (a flat list or dict is named).
NESTINGS = _nested(_nested(st.integers(1, 3)) | st.integers(1, 3)).filter(
    lambda s: any(
        isinstance(part, (list, tuple, dict)) for part in (s.values() if isinstance(s, dict) else s)
    )
)


def _nested_model(widths: Any) -> keras.Model:
    counter = iter(range(100))
    inputs = tf.nest.map_structure(lambda w: keras.Input((w,), name=f"in{next(counter)}"), widths)
    flat = tf.nest.flatten(inputs)
    joined = keras.layers.Concatenate()(flat) if len(flat) > 1 else flat[0]
    return keras.Model(inputs, keras.layers.Dense(1)(joined))


def _nested_data(widths: Any) -> Any:
    columns = iter(range(100))
    return tf.nest.map_structure(
        lambda w: np.stack([X[:, next(columns) % 4] * (k + 1) for k in range(w)], axis=1), widths
    )


def _nested_batches(data: Any, batch: int) -> Iterator[tuple[Any, np.ndarray]]:
    for i in range(0, len(Y), batch):
        rows = slice(i, i + batch)
        yield tf.nest.map_structure(lambda v, rows=rows: v[rows], data), Y[rows]


def _as_tuples(data: Any) -> Any:
    """Lists as tuples: ``tf.data`` stacks a list of arrays into one tensor."""
    if isinstance(data, dict):
        return {key: _as_tuples(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return tuple(_as_tuples(value) for value in data)
    return data


@settings(max_examples=min(10, settings.default.max_examples), deadline=None)
@given(widths=NESTINGS, form=st.sampled_from(["arrays", "generator", "tf.data"]))
def test_nested_inputs_train_evaluate_and_predict_as_in_keras(widths: Any, form: str) -> None:
    """Any nesting of dicts, lists and tuples is matched leaf by leaf, as Keras feeds it.

    Keras' own generator adapter cannot carry lists (its `output_signature`): its side reads
    the same batches from the arrays.
    """
    data = _nested_data(widths)

    def kwargs(side: Side, fit: bool = True) -> dict[str, Any]:
        if form == "tf.data":
            return {"x": tf.data.Dataset.from_tensor_slices((_as_tuples(data), Y)).batch(16)}
        if form == "generator" and side == "fitpipe":
            return {"x": _nested_batches(data, 16)}
        return {"x": data, "y": Y, "batch_size": 16, **({"shuffle": False} if fit else {})}

    run_both(
        lambda: _nested_model(widths),
        COMPILE,
        lambda side: {**kwargs(side), "epochs": 1 if form == "generator" else 2},
        eval_kwargs=lambda side: kwargs(side, fit=False),
        predict_x=data,
        check_params=form != "generator",
    )


def test_nested_inputs_nested_otherwise_are_refused_by_their_structure() -> None:
    widths = {"g": [3, 2], "c": 1}
    data = _nested_data(widths)
    trainer = fitpipe.Trainer(_nested_model(widths))
    trainer.compile(**COMPILE)
    with pytest.raises(DataMismatchError, match=r"nest as \{'g': \['in1', 'in2'\], 'c': 'in0'\}"):
        trainer.fit({"g": data["g"][:1], "c": data["c"]}, Y, verbose=0)
    with pytest.raises(DataMismatchError, match='extra="ignore"'):
        trainer.fit({**data, "id": data["c"]}, Y, verbose=0)
    got = trainer.fit({**data, "id": data["c"]}, Y, extra="ignore", shuffle=False, verbose=0)
    assert np.isfinite(got.history["loss"]).all()
