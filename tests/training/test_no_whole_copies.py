"""What reads rows held in memory to check or recognise them copies none of them whole.

Found from outside: the pre-flight scan took a tensor's ``.numpy()`` (a copy), the
fingerprint of an array not in C order made it contiguous (a copy: a pandas frame's values
with ``validation_split``, ``x[:, ::2]``), and the held rows' check split every narrow input
held side by side back out (32 one-column inputs of 183 MiB: a second copy). NumPy's
allocations are traced (``tracemalloc``): each read allocates a small part of the data.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.pipeline import leaf_packing
from fitpipe.training.preflight.cache import fingerprint
from fitpipe.training.preflight.scan import _numeric

ROWS = 400_000
#: NumPy's reductions buffer up to this much whatever the data (8,192 elements a buffer).
BUFFERS = 128 << 10


def _peak(read: Callable[[], Any]) -> int:
    """The bytes NumPy (and Python) allocated at most while ``read`` ran."""
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "C": lambda a: a,
    "Fortran": np.asfortranarray,
    "columns ::2": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
    "first rows of Fortran": lambda a: np.asfortranarray(a)[: len(a) * 4 // 5],
    "rows ::3": lambda a: a[::3],
    "3-D strided": lambda a: a.reshape(len(a), -1, 2)[:, ::2],
    "1-D strided": lambda a: a[:, 1],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@given(
    dtype=st.sampled_from(["float32", "float64", "int32", "int64", "float16", "uint8"]),
    width=st.sampled_from([4, 8, 12]),
)
def test_a_fingerprint_copies_no_layout_whole(layout: str, dtype: str, width: int) -> None:
    base = (np.arange(ROWS * width, dtype="float64") % 251).reshape(ROWS, width).astype(dtype)
    array = LAYOUTS[layout](base)
    assert _peak(lambda: fingerprint([array])) < array.nbytes / 4 + BUFFERS
    again = LAYOUTS[layout](base)
    assert fingerprint([again]) is not None
    assert fingerprint([array])[0][-1] == fingerprint([again])[0][-1]  # same values: same sums


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1)))
def test_a_strided_fingerprint_sums_every_value(array: np.ndarray) -> None:
    """The sums of a strided array change with any one value, as a contiguous one's do."""
    view = np.repeat(array, 2, axis=-1)[..., ::2]
    before = fingerprint([view])
    view.view(np.uint32)[(0,) * view.ndim] ^= 1  # another bit pattern in one place
    assert fingerprint([view]) != before


def test_the_scan_reads_a_tensor_in_place() -> None:
    tensor = tf.constant(np.ones((ROWS, 16), "float32"))
    assert _peak(lambda: _numeric(tensor)) < tensor.numpy().nbytes / 4 + BUFFERS


def test_held_rows_are_split_out_only_where_a_check_reads() -> None:
    columns = [np.full(ROWS, i, "float32") for i in range(8)]
    labels = np.arange(ROWS, dtype="int64") % 3
    structure = (tuple(None for _ in columns), None)
    flat = [*columns, labels]
    held, packing = leaf_packing.pack_leaves(flat)
    assert packing is not None and len(held) < len(flat)  # narrow leaves side by side
    wanted = set(leaf_packing.leaf_indices(structure, {1}))
    assert wanted == {8}
    out = packing.unpack([tf.convert_to_tensor(h) for h in held], wanted)
    assert out[:8] == [None] * 8
    np.testing.assert_array_equal(out[8], labels)
    every = packing.unpack([tf.convert_to_tensor(h) for h in held])
    for got, leaf in zip(every, flat, strict=True):
        np.testing.assert_array_equal(got, leaf)


def test_labels_of_narrow_inputs_held_side_by_side_are_still_checked() -> None:
    inputs = [keras.Input((1,), name=f"c{i}") for i in range(6)]
    outputs = keras.layers.Dense(3, "softmax")(keras.layers.Concatenate()(inputs))
    trainer = fitpipe.Trainer(keras.Model(inputs, outputs))
    trainer.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = {f"c{i}": np.zeros(64, "float32") for i in range(6)}
    y = np.zeros(64, "int64")
    y[40] = 7
    with pytest.raises(ValueError, match="row 40"):
        trainer.fit(x, y, batch_size=16, verbose=0)
