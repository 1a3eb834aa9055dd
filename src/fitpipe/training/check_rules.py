"""The rules of the batch value checks (``batch_checks``): which leaf, which range.

A rule names one leaf of a batch and what it must hold: a sparse label in the model's
classes, a finite sample weight, (``fit(check=...)``) finite features and targets, or rows
of the fixed size of the input a ragged leaf feeds (``ragged_inputs``). Rules
are made from a model and a batch spec (:func:`label_rules`, :func:`finite_rules`,
:func:`weight_rules`) and judge a value in a graph (:meth:`Rule.problem`) or in NumPy
(:meth:`Rule.numpy_problem`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fitpipe.adapters import NATIVE_FLOATS, is_number_dtype
from fitpipe.training.ragged_inputs import numpy_ragged_problem, ragged_problem

__all__ = [
    "Rule",
    "cast_limit",
    "finite_rules",
    "first_broken",
    "label_rules",
    "losses_by_output",
    "target_leaves",
    "weight_rules",
]

_SPARSE_NAMES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}


@dataclasses.dataclass(frozen=True)
class Rule:
    """One checked leaf of a batch: a label, a sample weight, or finite values (``finite``).

    Sparse-label targets lie in the model's classes; sample weights and, with ``finite``
    (``fit(check=...)``), floating features and targets are finite.
    """

    part: int  # 0: features, 1: targets, 2: sample weights
    leaf: int  # position among the flattened leaves of that part
    name: str  # the leaf, in words
    classes: int = 0  # labels must lie in [0, classes) ...
    ignore: int | None = None  # ... or equal the loss' ignore_class
    loss: str = ""
    finite: str | None = None  # "warn" or "error": NaN and infinity (``fit(check=...)``)
    #: For a finite rule's leaf of a float wider than floatx: the magnitude from which the
    #: cast to floatx makes values infinite (float64's 1e300 in float32; None: no such cast).
    limit: float | None = None
    #: For a ragged leaf of features fed to an input of a fixed size: the input's shape,
    #: whose sizes every row of the leaf's ragged dimensions must have (``ragged_inputs``).
    rows: tuple[int | None, ...] | None = None

    @property
    def of_finite_values(self) -> bool:
        """Whether the leaf must hold finite values (a weight, or ``finite``), not labels."""
        return self.finite is not None or self.part == 2

    def found(self, value: tf.Tensor) -> tf.Tensor:
        """Whether this leaf breaks the rule: :meth:`problem`'s ``found`` in fewer ops."""
        if self.rows is not None:
            return ragged_problem(value, self.rows)[0]
        if not self.of_finite_values:
            return tf.reduce_any(self._bad(value))
        if not value.dtype.is_floating:
            return tf.constant(False)  # (a weight's cast to float64 is finite)
        if self.limit is None:
            return tf.logical_not(tf.reduce_all(tf.math.is_finite(value)))
        return tf.reduce_any(_not_finite(value, self.limit))

    def _bad(self, flat: tf.Tensor) -> tf.Tensor:
        """Where ``flat`` breaks this rule (a label rule: out of range and not ignored)."""
        if self.of_finite_values:
            return _not_finite(tf.cast(flat, tf.float64), self.limit)
        flat = _wide_labels(flat)
        bad = tf.logical_not(tf.logical_and(flat >= 0, flat < tf.cast(self.classes, flat.dtype)))
        if self.ignore is not None:
            bad = tf.logical_and(bad, tf.not_equal(flat, tf.cast(self.ignore, flat.dtype)))
        return bad

    def problem(self, value: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(found, first bad position, its value as float64)`` in this leaf (graph ops)."""
        if self.rows is not None:  # (the first row of another length, and that length)
            return ragged_problem(value, self.rows)
        flat = tf.reshape(value, [-1])
        bad = self._bad(flat)
        flat = tf.cast(flat, tf.float64) if self.of_finite_values else _wide_labels(flat)
        # padded: an empty batch (0 rows) has a 0, whose argmax is 0 (none fails on no value)
        first = tf.argmax(tf.concat([tf.cast(bad, tf.int32), [0]], 0), output_type=tf.int32)
        found = tf.reduce_any(bad)
        padded = tf.concat([flat, tf.zeros([1], flat.dtype)], 0)
        return found, first, tf.cast(tf.gather(padded, first), tf.float64)

    def numpy_problem(self, value: Any) -> float | None:
        """The first bad value of this leaf (an array or eager tensor), or None.

        :meth:`problem` in NumPy, for the batches a source checks in Python. A leaf that
        passes is read without a temporary array (:func:`_passes`).
        """
        if self.rows is not None:
            return numpy_ragged_problem(value, self.rows)
        flat = np.asarray(value).reshape(-1)
        if _passes(flat, self):
            return None
        if self.of_finite_values:
            if flat.dtype not in NATIVE_FLOATS:  # bfloat16 and the like: as the graph check
                flat = flat.astype(np.float64)
            good = np.isfinite(flat)
            if self.limit is not None:
                good &= np.abs(flat) < self.limit
        else:
            flat = _wide_numpy_labels(flat)
            good = (flat >= 0) & (flat < self.classes)
            if self.ignore is not None:
                good |= flat == self.ignore
        if good.all():
            return None
        return float(np.float64(flat[int(np.argmin(good))]))


def _passes(flat: np.ndarray, rule: Rule) -> bool:
    """True when ``flat`` surely breaks no part of ``rule``, read in one pass, no temporary.

    A floating sum is finite only if every value is (a NaN or an infinity makes it NaN or
    infinite, whatever the order of the additions); labels lie in range when their minimum
    and maximum do (a NaN makes both NaN). False means "look closer": a sum can also
    overflow. ``np.isfinite`` over a 65,536 x 512 float32 block wrote a 32 MiB temporary
    into fresh memory at every block of every streamed pass.
    """
    if not flat.size:
        return True
    if rule.of_finite_values:
        if flat.dtype.kind in "biu":
            return True
        native = flat.dtype in NATIVE_FLOATS  # (ml_dtypes floats: looked at closer)
        if not (native and bool(np.isfinite(np.add.reduce(flat)))):
            return False
        # (no NaN: the extremes bound every value)
        limit = rule.limit
        return limit is None or (float(flat.min()) > -limit and float(flat.max()) < limit)
    if rule.ignore is not None or not is_number_dtype(flat.dtype):
        return False
    # (the extremes as Python numbers: compared by value, whatever the leaf's dtype holds)
    return float(flat.min()) >= 0 and float(flat.max()) < rule.classes


def _wide_labels(flat: tf.Tensor) -> tf.Tensor:
    """Labels in a dtype holding them, 0, the class count and the ignored class by value.

    Compared in the leaf's own dtype, booleans could not be compared with 0, and the class
    count wrapped (300 is 44 in uint8) or rounded (257 is 256 in bfloat16). Integers and
    booleans become int64 (uint64 float64: past int64's range it stays positive), other
    floats float64; int32, int64, float32 and float64 stay as they are.
    """
    if flat.dtype in (tf.int32, tf.int64, tf.float32, tf.float64):
        return flat
    wide = tf.float64 if flat.dtype.is_floating or flat.dtype == tf.uint64 else tf.int64
    return tf.cast(flat, wide)


def _wide_numpy_labels(flat: np.ndarray) -> np.ndarray:
    """:func:`_wide_labels` in NumPy, for the comparisons with Python ints a label rule makes.

    NumPy compares its own integers and floats with Python ints by value (``uint8 < 300``);
    booleans are read as bytes (no copy); float16 (whose cast of a large int overflows) and
    ``ml_dtypes`` numbers as float64.
    """
    if flat.dtype.kind == "b":
        return flat.view(np.uint8)
    if flat.dtype.kind in "iu" or flat.dtype in _WIDE_FLOATS:
        return flat
    return flat.astype(np.float64)


_WIDE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _is_sparse_loss(loss: Any) -> tuple[bool, int | None, str]:
    """Whether ``loss`` takes sparse class labels; its ``ignore_class``; its name."""
    if isinstance(loss, str):
        return loss in _SPARSE_NAMES, None, loss
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return True, getattr(loss, "ignore_class", None), "SparseCategoricalCrossentropy"
    if loss is keras.losses.sparse_categorical_crossentropy:
        return True, None, "sparse_categorical_crossentropy"
    return False, None, ""


def losses_by_output(model: keras.Model) -> list[Any] | None:
    """The loss of each model output, in the order of ``model.outputs`` (None if unknown)."""
    outputs = getattr(model, "outputs", None)
    names = list(getattr(model, "output_names", None) or [])
    loss = getattr(model, "loss", None)
    if not outputs or loss is None:
        return None
    if isinstance(loss, Mapping):
        return [loss.get(name) for name in names] if len(names) == len(outputs) else None
    if isinstance(loss, (list, tuple)):
        return list(loss) if len(loss) == len(outputs) else None
    return [loss] * len(outputs)


def target_leaves(y_spec: Any, model: keras.Model) -> list[int] | None:
    """The model output each flattened target leaf belongs to (None when they do not align)."""
    outputs = getattr(model, "outputs", None) or []
    leaves = tf.nest.flatten(y_spec)
    if isinstance(y_spec, Mapping) and y_spec:  # by name, or by position (absent targets left out)
        names = list(getattr(model, "output_names", None) or [])
        order = sorted(y_spec)  # tf.nest flattens a dict by sorted key
        if all(type(key) is int and 0 <= key < len(outputs) for key in order):
            owners = order
        elif set(order) <= set(names) and len(names) == len(outputs):
            owners = [names.index(key) for key in order]
        else:
            return None
        return owners if len(leaves) == len(owners) else None
    return list(range(len(leaves))) if len(leaves) == len(outputs) else None


def label_rules(model: keras.Model, y_spec: Any) -> list[Rule]:
    """Class-range rules for the targets of outputs whose loss takes sparse labels."""
    losses, owners = losses_by_output(model), target_leaves(y_spec, model)
    if losses is None or owners is None:
        return []
    rules = []
    names = list(getattr(model, "output_names", None) or [])
    for leaf, (owner, spec) in enumerate(zip(owners, tf.nest.flatten(y_spec), strict=True)):
        sparse, ignore, loss_name = _is_sparse_loss(losses[owner])
        classes = model.outputs[owner].shape[-1]
        if not sparse or not isinstance(spec, tf.TensorSpec) or not classes:
            continue
        name = f"the targets of output {names[owner]!r}" if len(names) > 1 else "the targets"
        rules.append(Rule(1, leaf, name, int(classes), ignore, loss_name))
    return rules


def _leaf_names(spec: Any, noun: str) -> list[str]:
    """Each flattened leaf of ``spec`` in words (``tf.nest`` order: dict keys sorted)."""
    if isinstance(spec, Mapping):
        return [f"{noun} {key!r}" for key in sorted(spec) for _ in tf.nest.flatten(spec[key])]
    if isinstance(spec, (list, tuple)) and len(tf.nest.flatten(spec)) > 1:
        return [f"{noun} {index}" for index, part in enumerate(spec) for _ in tf.nest.flatten(part)]
    return [f"the {noun}s"] * len(tf.nest.flatten(spec))


def finite_rules(element_spec: tuple[Any, ...], mode: str) -> list[Rule]:
    """NaN/infinity rules for the floating leaves of features and targets."""
    rules = []
    for part, noun in ((0, "input"), (1, "target")):
        if len(element_spec) <= part or element_spec[part] is None:
            continue
        leaves = tf.nest.flatten(element_spec[part])
        names = _leaf_names(element_spec[part], noun)
        for leaf, (spec, name) in enumerate(zip(leaves, names, strict=True)):
            if isinstance(spec, tf.TensorSpec) and spec.dtype.is_floating:
                rules.append(Rule(part, leaf, name, finite=mode, limit=cast_limit(spec.dtype)))
    return rules


def cast_limit(dtype: tf.DType | str, floatx: str | None = None) -> float | None:
    """The magnitude from which the cast to floatx makes values of ``dtype`` infinite.

    None unless ``dtype`` is a float wider than floatx (others cast without overflow, or are
    cast by the layers). floatx's largest value and half a step more: the cast rounds to
    the nearest value, ties to even, so what lies below goes to the largest value and the
    rest, the tie included (the largest value's last bit is odd), to infinity. It is exact
    in any wider float (2**128 - 2**103). The batch checks (:attr:`Rule.limit`) and the
    pre-flight scan judge by it alike.

    Args:
        dtype: A TensorFlow dtype, or the name of a NumPy dtype (a scanned column's).
        floatx: The floats of the cast; ``keras.config.floatx()`` when None.
    """
    info = np.finfo(floatx or keras.config.floatx())
    if _largest(dtype) <= float(info.max):
        return None
    largest = float(info.max)
    return largest + (largest - float(np.nextafter(info.max, info.dtype.type(0)))) / 2


def _largest(dtype: tf.DType | str) -> float:
    """The largest value of the float ``dtype`` (0 for others)."""
    if isinstance(dtype, tf.DType):
        return float(dtype.max) if dtype.is_floating else 0.0
    return float(np.finfo(dtype).max) if np.dtype(dtype).kind == "f" else 0.0


def _not_finite(value: tf.Tensor, limit: float | None) -> tf.Tensor:
    """Where ``value`` is not finite or, with ``limit``, as large in magnitude (graph ops).

    Not ``logical_not(abs(value) < limit)``: Grappler rewrites that as ``>=``, false for NaN.
    """
    if limit is None:
        return tf.logical_not(tf.math.is_finite(value))
    return tf.logical_or(tf.math.is_nan(value), tf.abs(value) >= tf.constant(limit, value.dtype))


def weight_rules(w_spec: Any) -> list[Rule]:
    """Finite-value rules for the floating leaves of sample weights (cast to floatx)."""
    leaves = tf.nest.flatten(w_spec)
    return [
        Rule(
            2,
            i,
            "`sample_weight`" if len(leaves) == 1 else f"`sample_weight` leaf {i}",
            limit=cast_limit(spec.dtype),
        )
        for i, spec in enumerate(leaves)
        if isinstance(spec, tf.TensorSpec) and spec.dtype.is_floating
    ]


def first_broken(rules: list[Rule], leaves: list[Any]) -> tuple[tf.Tensor, Any]:
    """Graph ops: whether a rule is broken, and a function giving the first one and its value.

    The finite rules of leaves that share a dtype are judged together, on their values
    joined: one reduction a step for all of them, where a rule each (a model of 100 float32
    inputs) made 300 ops a step and a graph of 1,300 that took 0.4 s to trace. Among rules
    broken, the first in order wins, and the value is its first bad one, as
    :meth:`Rule.problem` finds them one rule at a time.

    Args:
        rules: The rules, in order.
        leaves: Each rule's leaf of the batch.

    Returns:
        ``(found, first)``: a scalar bool; ``first()`` gives ``(rule number int32, value
        float64)``, to be called in the branch taken when ``found``.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for number, (rule, leaf) in enumerate(zip(rules, leaves, strict=True)):
        # (a DType equals its enum's int, so neither alone is a key: float64 == 2)
        finite = _finite_kind(rule, leaf)
        key = ("finite", leaf.dtype.name, rule.limit) if finite else ("own", number)
        groups.setdefault(key, []).append(number)
    parts: list[tuple[tf.Tensor, Callable[[], tuple[tf.Tensor, tf.Tensor]]]] = []
    for numbers in _split_small(groups.values()):
        if len(numbers) == 1:
            rule, leaf = rules[numbers[0]], leaves[numbers[0]]
            parts.append((rule.found(leaf), functools.partial(_one, rule, leaf, numbers[0])))
            continue
        group = [leaves[number] for number in numbers]
        widths = _row_widths(group)
        if widths is not None and len({tuple(leaf.shape[1:]) for leaf in group}) == 1:
            flat = group  # rows of one shape: joined as they are, not reshaped one by one
        else:
            flat = [tf.reshape(leaf, [-1]) for leaf in group]
        joined = tf.reshape(tf.concat(flat, 0), [-1])
        limit = rules[numbers[0]].limit
        found = tf.reduce_any(_not_finite(joined, limit))
        ends = flat if widths is None else widths  # per row: no leaf captured by the branch
        parts.append((found, functools.partial(_joined, joined, ends, numbers, limit)))

    def first() -> tuple[tf.Tensor, tf.Tensor]:
        numbers, values = [], []
        for found, pick in parts:
            number, value = pick()
            numbers.append(tf.where(found, number, tf.int32.max))  # not broken: never first
            values.append(value)
        stacked = tf.stack(numbers)
        winner = tf.argmin(stacked, output_type=tf.int32)
        return tf.gather(stacked, winner), tf.gather(tf.stack(values), winner)

    return tf.reduce_any(tf.stack([found for found, _ in parts])), first


#: Leaves judged together from this many: fewer cost as many ops one by one (three each,
#: against a reshape each, the join and three), and the join copies their values.
JOIN_AT = 4


def _split_small(groups: Any) -> list[list[int]]:
    """The groups, those of fewer than :data:`JOIN_AT` rules split into one rule each."""
    out: list[list[int]] = []
    for numbers in groups:
        out.extend([numbers] if len(numbers) >= JOIN_AT else [[number] for number in numbers])
    return out


def _finite_kind(rule: Rule, leaf: Any) -> bool:
    """Whether ``rule`` asks ``leaf`` for finite values only (floating inputs, targets, weights)."""
    return rule.of_finite_values and leaf.dtype.is_floating


def _one(rule: Rule, leaf: tf.Tensor, number: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``(number, the first bad value)`` of one rule's leaf."""
    return tf.constant(number, tf.int32), rule.problem(leaf)[2]


def _row_widths(leaves: list[Any]) -> list[int] | None:
    """The values a row of each leaf holds, when every one is known from its static shape."""
    widths: list[int] = []
    for leaf in leaves:
        width = leaf.shape[1:].num_elements() if leaf.shape.rank else None
        if width is None:
            return None
        widths.append(int(width))
    return widths


def _joined(
    joined: tf.Tensor, ends: list[Any], numbers: list[int], limit: float | None
) -> tuple[Any, Any]:
    """``(the rule holding the first bad value, that value)`` of finite rules' joined leaves.

    ``ends`` are the leaves' values a row (ints), or the flattened leaves themselves. The
    ints keep the leaves out of the branch that calls this: a tensor a branch reads is one
    more input of it, and 100 of them took 0.1 s to trace. The leaves of a batch share its
    rows (the step fails on any that do not), so ``joined`` holds ``rows * sum(ends)``
    values and a leaf's are the ``rows * width`` after those of the leaves before it.
    """
    _, position, value = Rule(2, 0, "", limit=limit).problem(joined)  # a finite rule, on all
    if all(isinstance(end, int) for end in ends):
        rows = tf.size(joined) // max(sum(ends), 1)
        bounds = tf.constant(np.cumsum(ends), tf.int32) * rows
    else:
        bounds = tf.cumsum(tf.stack([tf.size(part) for part in ends]))
    member = tf.searchsorted(bounds, tf.reshape(position, [1]), side="right")[0]
    return tf.gather(tf.constant(numbers, tf.int32), member), value
