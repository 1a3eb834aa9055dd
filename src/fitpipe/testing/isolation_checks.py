"""The conformance kit's checks of shuffling, of ``can_adapt`` and of pipelines open together.

:class:`fitpipe.testing.AdapterConformanceTests` inherits these checks from
:class:`IsolationChecks`, run on fixed data:

* ``shuffle`` (when claimed): with ``shuffle=True`` an epoch of 128 rows comes in another
  order than the rows' own, at least a quarter of them (32) at another position (and, for
  an input read more than once, the second epoch likewise against the first), with the
  same rows every epoch and the same batch sizes as without. A uniform shuffle keeps more
  than 96 of 128 rows in place with probability under 1/97! (about 10^-152): the number of
  rows it keeps in place is about Poisson(1), so a sound adapter never fails by chance;
* ``can_adapt`` of foreign inputs (a NumPy array, a dict of arrays, a list, a
  ``tf.data.Dataset``, a generator, None, a path, a pandas DataFrame, an object of an
  unrelated class) returns ``False`` (a bool) without raising, so the adapter never takes
  the inputs of the other adapters; a suite names the kinds its adapter does take in
  :attr:`IsolationChecks.foreign_inputs_taken`;
* two pipelines of the adapter open at once (two inputs, of different rows) each deliver
  their own rows: the adapter keeps no request state on its shared instance (``fit`` opens
  the training and the ``validation_data`` pipelines together).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import tensorflow as tf

from fitpipe.testing.capability_checks import FIXED, describe_row_difference, row_key
from fitpipe.testing.fixtures import weight_of_rows
from fitpipe.testing.strategies import Example

if TYPE_CHECKING:
    from fitpipe.adapters import Adapter
    from fitpipe.pipeline import Pipeline

__all__ = ["FOREIGN_INPUTS", "MANY", "OTHER", "IsolationChecks"]

#: 128 distinct rows in batches of 8: enough that a shuffle keeping their order is no chance.
MANY = Example(
    x=np.arange(384, dtype=np.float32).reshape(128, 3),
    y=(np.arange(128) % 2).astype(np.int64),
    sample_weight=weight_of_rows(np.arange(384, dtype=np.float32).reshape(128, 3)),
    batch_size=8,
)

#: The second input of the two-pipelines check: other rows (and another count) than FIXED's.
OTHER = Example(
    x=np.arange(21, dtype=np.float32).reshape(7, 3) + 1000.0,
    y=np.array([1, 1, 0, 0, 1, 0, 1], dtype=np.int64),
    sample_weight=weight_of_rows(np.arange(21, dtype=np.float32).reshape(7, 3) + 1000.0),
    batch_size=FIXED.batch_size,
)


class _Unrelated:
    """An object of a class no adapter knows."""


def _numbers() -> Iterator[np.ndarray]:
    yield np.zeros((2, 3), np.float32)


def _pandas_frame() -> Any:
    import pandas as pd  # an optional dependency: the kind is skipped without it

    return pd.DataFrame({"a": np.zeros(3), "b": np.ones(3)})


#: The foreign inputs whose ``can_adapt`` must be False, by kind; each is built fresh.
FOREIGN_INPUTS: dict[str, Callable[[], Any]] = {
    "numpy": lambda: np.zeros((4, 3), np.float32),
    "dict": lambda: {"a": np.zeros(4), "b": np.ones(4)},
    "list": lambda: [np.zeros(4), np.ones(4)],
    "tf.data": lambda: tf.data.Dataset.from_tensor_slices(np.zeros((4, 3))).batch(2),
    "generator": _numbers,
    "None": lambda: None,
    "str": lambda: "data/train.csv",
    "pandas": _pandas_frame,
    "object": _Unrelated,
}


def _order(batches: list[Any]) -> list[tuple[float, ...]]:
    from fitpipe.testing import flat_rows

    return [row_key(row) for batch in batches for row in flat_rows(batch[0])]


def _sizes(batches: list[Any]) -> list[int]:
    return [len(tf.nest.flatten(batch[0])[0]) for batch in batches]


class IsolationChecks:
    """Checks of shuffling, ``can_adapt`` and pipelines open together; a base of the kit.

    Attributes:
        foreign_inputs_taken: The kinds of :data:`FOREIGN_INPUTS` the adapter legitimately
            takes (e.g. ``frozenset({"str"})`` for an adapter of file paths); its
            ``can_adapt`` is not asked about them.

    """

    foreign_inputs_taken: ClassVar[frozenset[str]] = frozenset()

    if TYPE_CHECKING:  # what the kit's suites provide (fitpipe.testing.conformance)
        adapter_name: ClassVar[str]

        def _adapter(self) -> Adapter: ...
        def _supports(self, data: Example) -> frozenset[str]: ...
        def _input(self, data: Example) -> Any: ...
        def _adapt(
            self, data: Example, supports: frozenset[str], shuffle: bool = False
        ) -> Pipeline: ...
        def _expected_rows(self, data: Example) -> np.ndarray: ...
        def _epoch(self, pipeline: Pipeline, what: str = "an epoch") -> list[Any]: ...
        def _rows_of(self, batches: list[Any], width: int) -> np.ndarray: ...
        def _is_one_shot(self, obj: Any) -> bool: ...

    def test_claimed_shuffle_reorders_rows(self) -> None:
        """``shuffle=True``: a new order each epoch, the same rows and batch sizes."""
        adapter = self._adapter()
        supports = self._supports(MANY)
        if "shuffle" not in supports:
            import pytest  # the checks run under pytest; the module imports without it

            pytest.skip(f"adapter {adapter.name!r} does not claim `shuffle`")
        with self._adapt(MANY, supports) as pipeline:
            plain = self._epoch(pipeline, "an epoch (shuffle=False)")
        one_shot = self._is_one_shot(self._input(MANY))
        epochs = []
        with self._adapt(MANY, supports, shuffle=True) as pipeline:
            for index in range(1 if one_shot else 2):
                epochs.append(self._epoch(pipeline, f"epoch {index} (shuffle=True)"))
                pipeline.on_epoch_end()
        orders = [_order(plain)] + [_order(epoch) for epoch in epochs]
        before = ("the rows' own order", "epoch 0's order")
        for index, (epoch, order) in enumerate(zip(epochs, orders[1:], strict=True)):
            assert _sizes(epoch) == _sizes(plain), (
                f"with shuffle=True epoch {index} has batches of {_sizes(epoch)} rows; without "
                f"it {_sizes(plain)}: shuffling must not change `batch_size`"
            )
            assert sorted(order) == sorted(orders[0]), describe_row_difference(
                np.array(orders[0]), np.array(order), f"epoch {index} (shuffle=True)"
            )
            moved = sum(a != b for a, b in zip(order, orders[index], strict=True))
            assert moved >= len(order) // 4, (
                f"adapter {adapter.name!r} claims `shuffle`, but with shuffle=True epoch "
                f"{index} of {len(order)} rows came in {before[index]} but for {moved} rows "
                f"(at least {len(order) // 4} must move): reshuffle the rows every epoch, or "
                "drop `shuffle` from `supports`"
            )

    def test_can_adapt_refuses_foreign_inputs(self) -> None:
        """``can_adapt`` is False (a bool, no exception) for inputs of other kinds."""
        adapter = self._adapter()
        unknown = set(self.foreign_inputs_taken) - set(FOREIGN_INPUTS)
        assert not unknown, (
            f"`foreign_inputs_taken` names unknown kinds {sorted(unknown)}; the kinds are "
            f"{sorted(FOREIGN_INPUTS)}"
        )
        problems = []
        for kind, make in FOREIGN_INPUTS.items():
            if kind in self.foreign_inputs_taken:
                continue
            try:
                value = make()
            except ImportError:
                continue  # pandas is not installed
            try:
                answer = adapter.can_adapt(value)
            except Exception as err:
                problems.append(
                    f"{kind} ({type(value).__name__}): raised {type(err).__name__}: {err}"
                )
                continue
            if answer is not False:
                problems.append(f"{kind} ({type(value).__name__}): returned {answer!r}")
        assert not problems, (
            f"`can_adapt` of adapter {adapter.name!r} should return False (a bool, without "
            "raising) for inputs it does not take, or it takes the inputs of other adapters:"
            "\n  " + "\n  ".join(problems) + "\nIf the adapter does take one of these kinds, "
            f"name it in the suite's `foreign_inputs_taken` (kinds: {sorted(FOREIGN_INPUTS)})"
        )

    def test_two_pipelines_open_at_once(self) -> None:
        """Two pipelines open together (as fit's training and validation) keep their rows."""
        datas = (FIXED, OTHER)
        with (
            self._adapt(FIXED, self._supports(FIXED)) as first,
            self._adapt(OTHER, self._supports(OTHER)) as second,
        ):
            read = [self._epoch(p, f"pipeline {i}") for i, p in enumerate((first, second))]
        for index, (data, batches) in enumerate(zip(datas, read, strict=True)):
            expected = self._expected_rows(data)
            got = self._rows_of(batches, expected.shape[1])
            assert got.shape == expected.shape and np.array_equal(got, expected), (
                f"two pipelines of adapter {self.adapter_name!r} open at once (inputs of "
                f"{len(FIXED.x)} and {len(OTHER.x)} rows): pipeline {index} delivered "
                f"{got.tolist()}, expected its own rows {expected.tolist()}; keep each "
                "request's state in its source, not on the adapter (one instance serves all)"
            )
