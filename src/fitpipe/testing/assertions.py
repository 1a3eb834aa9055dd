"""Comparing Keras' results with fitpipe's: the assertions of :mod:`fitpipe.testing.keras_diff`.

Each ``assert_*`` helper compares what Keras returned (``ref``) with what fitpipe returned
(``got``) and raises one ``AssertionError`` listing every difference found, each as
``what: keras <value> vs fitpipe <value>``. :class:`Differences` collects such lines, for
comparisons of your own.

Needs only Keras and NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

__all__ = [
    "ATOL",
    "RTOL",
    "Differences",
    "assert_close",
    "assert_histories_close",
    "assert_optimizer_iterations_equal",
    "assert_structures_close",
    "assert_weights_close",
]

#: Default relative tolerance of the assertions (float32 training over a few epochs).
RTOL: float = 1e-3
#: Default absolute tolerance of the assertions.
ATOL: float = 1e-5


def _fmt(value: Any) -> str:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # e.g. ragged nested lists
        return repr(value)
    if array.dtype.kind in "biuf" and array.size:
        return np.array2string(array.astype(np.float64), precision=6, threshold=12)
    return repr(value)


class Differences:
    """Collects differences between Keras' and fitpipe's results as readable lines.

    Each method compares one kind of result and adds a line per difference;
    :meth:`raise_if_any` raises them all at once.

    Attributes:
        rtol: Relative tolerance of numeric comparisons.
        atol: Absolute tolerance of numeric comparisons.
        lines: The differences found so far.

    """

    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol = rtol
        self.atol = atol
        self.lines: list[str] = []

    def add(self, what: str, keras_value: Any, fitpipe_value: Any) -> None:
        """Adds ``what: keras <value> vs fitpipe <value>``.

        Args:
            what: What differs.
            keras_value: Keras' value.
            fitpipe_value: fitpipe's value.

        """
        self.lines.append(f"{what}: keras {_fmt(keras_value)} vs fitpipe {_fmt(fitpipe_value)}")

    def close(self, a: Any, b: Any) -> bool:
        """Tells whether two values are close (numbers) or equal (anything else).

        Args:
            a: A value.
            b: Another value.

        Returns:
            True when both have the same shape and close values (NaN equals NaN).

        """
        try:
            ra, rb = np.asarray(a, np.float64), np.asarray(b, np.float64)
        except (TypeError, ValueError):
            return bool(a == b)
        if ra.shape != rb.shape:
            return False
        return bool(np.allclose(ra, rb, rtol=self.rtol, atol=self.atol, equal_nan=True))

    def values(self, what: str, keras_value: Any, fitpipe_value: Any) -> None:
        """Compares values only (as float64): shape, then values (naming the first that differs)."""
        try:
            r, g = np.asarray(keras_value, np.float64), np.asarray(fitpipe_value, np.float64)
        except (TypeError, ValueError):
            if not self.close(keras_value, fitpipe_value):
                self.add(what, keras_value, fitpipe_value)
            return
        if r.shape != g.shape:
            self.lines.append(f"{what}: shape keras {r.shape} vs fitpipe {g.shape}")
            return
        bad = ~np.isclose(r, g, self.rtol, self.atol, equal_nan=True)
        if not bad.any():
            return
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if r.ndim else ()
        self.lines.append(
            f"{what}: {int(bad.sum())} of {r.size} values differ; first at index {first}: "
            f"keras {_fmt(r[first])} vs fitpipe {_fmt(g[first])}"
        )

    def arrays(self, what: str, keras_value: Any, fitpipe_value: Any) -> None:
        """Compares two arrays: shape, dtype, then values (naming the first that differs)."""
        r, g = np.asarray(keras_value), np.asarray(fitpipe_value)
        if r.shape == g.shape and r.dtype != g.dtype:
            self.lines.append(f"{what}: dtype keras {r.dtype} vs fitpipe {g.dtype}")
        self.values(what, r, g)

    def structures(self, what: str, keras_value: Any, fitpipe_value: Any) -> None:
        """Compares nested results (dicts, lists, arrays, scalars), types included."""
        if isinstance(keras_value, Mapping):
            if not isinstance(fitpipe_value, Mapping):
                self.add(f"{what} type", type(keras_value).__name__, type(fitpipe_value).__name__)
                return
            if set(keras_value) != set(fitpipe_value):
                self.add(f"{what} keys", sorted(keras_value), sorted(fitpipe_value))
            elif list(keras_value) != list(fitpipe_value):  # what users see, print, tabulate
                self.add(f"{what} key order", list(keras_value), list(fitpipe_value))
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
            if not isinstance(fitpipe_value, np.ndarray):
                self.add(f"{what} type", "ndarray", type(fitpipe_value).__name__)
                return
            self.arrays(what, keras_value, fitpipe_value)
        elif isinstance(fitpipe_value, (list, tuple, Mapping)) or np.ndim(fitpipe_value):
            self.lines.append(
                f"{what}: keras a scalar {keras_value!r} vs fitpipe {fitpipe_value!r:.200}"
            )
        elif not self.close(keras_value, fitpipe_value):
            self.add(what, keras_value, fitpipe_value)

    def histories(self, ref: Any, got: Any, check_params: bool = True) -> None:
        """Compares History keys, epochs, params and every value epoch by epoch."""
        for side, history in (("keras", ref), ("fitpipe", got)):
            if not isinstance(history, keras.callbacks.History):
                self.lines.append(f"{side} fit returned {type(history).__name__}, not History")
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
        if not check_params:
            return
        params_r, params_g = dict(ref.params), dict(got.params)
        for key in sorted(set(params_r) | set(params_g)):
            if params_r.get(key, "<missing>") != params_g.get(key, "<missing>"):
                self.lines.append(
                    f"History.params[{key!r}]: keras {params_r.get(key, '<missing>')!r} vs "
                    f"fitpipe {params_g.get(key, '<missing>')!r}"
                )

    def weights(self, ref: keras.Model, got: keras.Model) -> None:
        """Compares every weight (trainable and not), in order, by path."""
        if len(ref.weights) != len(got.weights):
            self.add("number of weights", len(ref.weights), len(got.weights))
        for r, g in zip(ref.weights, got.weights, strict=False):
            self.arrays(
                f"weight {r.path!r}",
                keras.ops.convert_to_numpy(r),
                keras.ops.convert_to_numpy(g),
            )

    def iterations(self, ref: keras.Model, got: keras.Model) -> None:
        """Compares the optimizers' update counts."""
        counts = [
            int(keras.ops.convert_to_numpy(m.optimizer.iterations))
            if m.optimizer is not None
            else None
            for m in (ref, got)
        ]
        if counts[0] != counts[1]:
            self.add("optimizer.iterations", counts[0], counts[1])

    def raise_if_any(self) -> None:
        """Raises one ``AssertionError`` listing every difference (the first 40)."""
        if not self.lines:
            return
        shown = self.lines[:40]
        more = len(self.lines) - len(shown)
        raise AssertionError(
            f"fitpipe differs from Keras in {len(self.lines)} place(s) "
            f"(rtol={self.rtol}, atol={self.atol}):\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )


def assert_close(ref: Any, got: Any, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Asserts two numbers or arrays have the same shape and close values (NaN equals NaN).

    Args:
        ref: The Keras value.
        got: The fitpipe value.
        what: What is compared, for the message.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Raises:
        AssertionError: Naming ``what``, the number of values that differ and the first one.

    """
    diff = Differences(rtol, atol)
    diff.values(what, ref, got)
    diff.raise_if_any()


def assert_histories_close(
    h_ref: keras.callbacks.History,
    h_got: keras.callbacks.History,
    rtol: float = RTOL,
    atol: float = ATOL,
    check_params: bool = True,
) -> None:
    """Asserts two Histories have the same keys and epochs and close values, epoch by epoch.

    Args:
        h_ref: The History returned by Keras.
        h_got: The History returned by fitpipe.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        check_params: Also compare ``History.params`` (exactly).

    Raises:
        AssertionError: Listing every key, epoch and parameter that differs.

    """
    diff = Differences(rtol, atol)
    diff.histories(h_ref, h_got, check_params)
    diff.raise_if_any()


def assert_weights_close(
    ref: keras.Model, got: keras.Model, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Asserts two models have the same number of weights, each of the same shape and dtype.

    Args:
        ref: The model trained by Keras.
        got: The model trained by fitpipe.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Raises:
        AssertionError: Listing every weight (by path) that differs.

    """
    diff = Differences(rtol, atol)
    diff.weights(ref, got)
    diff.raise_if_any()


def assert_optimizer_iterations_equal(ref: keras.Model, got: keras.Model) -> None:
    """Asserts both models' optimizers applied the same number of updates.

    Args:
        ref: The model trained by Keras.
        got: The model trained by fitpipe.

    Raises:
        AssertionError: With both counts.

    """
    diff = Differences(0.0, 0.0)
    diff.iterations(ref, got)
    diff.raise_if_any()


def assert_structures_close(
    ref: Any, got: Any, what: str, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Asserts two nested results (dicts, lists, arrays, scalars) agree, types included.

    Dicts must have the same keys in the same order, lists and tuples the same length,
    arrays must be arrays of the same shape and dtype, and scalars scalars; numbers are
    compared with the tolerances.

    Args:
        ref: The Keras result.
        got: The fitpipe result.
        what: What is compared, for the message.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Raises:
        AssertionError: Listing every difference by its path in the structure.

    """
    diff = Differences(rtol, atol)
    diff.structures(what, ref, got)
    diff.raise_if_any()
