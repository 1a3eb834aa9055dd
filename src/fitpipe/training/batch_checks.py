"""Checks of batch values that a compiled step cannot make: labels in range, finite weights.

Under XLA a sparse label outside the model's classes (5 for 3 classes, or -1) gives a NaN loss
and NaN weights, where Keras without XLA raises; a NaN or infinite sample weight does the same
on every path. XLA drops assert ops, so the checks run outside the compiled step:

* rows held in memory are checked once, as a whole, before the first step;
* streamed batches (generators, ``PyDataset``, ``tf.data``, Arrow, Parquet) are checked one by
  one (a few reductions per batch, outside XLA), before the step that would use a bad batch,
  which so never changes the weights. Batches a source makes in Python (generators; Parquet
  streamed from disk, a converted block at a time) are checked there with NumPy as it makes
  them (:meth:`BatchChecks.in_python`); the batches of a ``tf.data`` iterator by the compiled
  loop, before each step (:meth:`BatchChecks.graph_check`); per-replica batches and eager
  steps by a ``tf.data`` stage (:meth:`BatchChecks.on_dataset`);
* the single batches of ``train_on_batch``/``test_on_batch`` are checked before their step.

Each failure is a :class:`~fitpipe.errors.FitpipeValueError` naming the batch, the target, the
value and the valid range.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fitpipe.errors import DataCheckError, DataCheckWarning, FitpipeValueError, message, raw
from fitpipe.training.conversions import spec_of

__all__ = ["BatchChecks", "check_one_batch"]

_MARKER = "fitpipe-batch-check"
_FOUND = re.compile(_MARKER + r"\] \[(-?\d+)\] \[(\d+)\] \[(\S+?)\]")
_SPARSE_NAMES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}


@dataclasses.dataclass(frozen=True)
class _Rule:
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

    def found(self, value: tf.Tensor) -> tf.Tensor:
        """Whether this leaf breaks the rule: :meth:`problem`'s ``found`` in fewer ops."""
        if self.finite is None and self.part != 2:
            return tf.reduce_any(self._bad(value))
        if not value.dtype.is_floating:
            return tf.constant(False)  # (a weight's cast to float64 is finite)
        return tf.logical_not(tf.reduce_all(tf.math.is_finite(value)))

    def _bad(self, flat: tf.Tensor) -> tf.Tensor:
        """Where ``flat`` breaks this rule (a label rule: out of range and not ignored)."""
        if self.finite is not None or self.part == 2:
            return tf.logical_not(tf.math.is_finite(tf.cast(flat, tf.float64)))
        bad = tf.logical_not(tf.logical_and(flat >= 0, flat < tf.cast(self.classes, flat.dtype)))
        if self.ignore is not None:
            bad = tf.logical_and(bad, tf.not_equal(flat, tf.cast(self.ignore, flat.dtype)))
        return bad

    def problem(self, value: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(found, first bad position, its value as float64)`` in this leaf (graph ops)."""
        flat = tf.reshape(value, [-1])
        bad = self._bad(flat)
        if self.finite is not None or self.part == 2:
            flat = tf.cast(flat, tf.float64)
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
        flat = np.asarray(value).reshape(-1)
        if _passes(flat, self):
            return None
        if self.finite is not None or self.part == 2:
            if flat.dtype.kind != "f":  # bfloat16 and the like: cast as the graph check does
                flat = flat.astype(np.float64)
            good = np.isfinite(flat)
        else:
            classes = np.asarray(self.classes).astype(flat.dtype)  # as tf.cast: the leaf's
            good = (flat >= 0) & (flat < classes)
            if self.ignore is not None:
                good |= flat == np.asarray(self.ignore).astype(flat.dtype)
        if good.all():
            return None
        return float(np.float64(flat[int(np.argmin(good))]))


def _passes(flat: np.ndarray, rule: _Rule) -> bool:
    """True when ``flat`` surely breaks no part of ``rule``, read in one pass, no temporary.

    A floating sum is finite only if every value is (a NaN or an infinity makes it NaN or
    infinite, whatever the order of the additions); labels lie in range when their minimum
    and maximum do (a NaN makes both NaN). False means "look closer": a sum can also
    overflow. ``np.isfinite`` over a 65,536 x 512 float32 block wrote a 32 MiB temporary
    into fresh memory at every block of every streamed pass.
    """
    if not flat.size:
        return True
    kind = flat.dtype.kind
    if rule.finite is not None or rule.part == 2:
        return kind in "biu" or (kind == "f" and bool(np.isfinite(np.add.reduce(flat))))
    if kind not in "iuf" or rule.ignore is not None:
        return False
    classes = np.asarray(rule.classes).astype(flat.dtype)  # as tf.cast: the leaf's dtype
    return bool(flat.min() >= 0) and bool(flat.max() < classes)


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
    if len(leaves) != len(outputs):
        return None
    if isinstance(y_spec, Mapping):
        names = list(getattr(model, "output_names", None) or [])
        order = sorted(y_spec)  # tf.nest flattens a dict by sorted key
        if set(order) != set(names):
            return None
        return [names.index(key) for key in order]
    return list(range(len(leaves)))


def _label_rules(model: keras.Model, y_spec: Any) -> list[_Rule]:
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
        rules.append(_Rule(1, leaf, name, int(classes), ignore, loss_name))
    return rules


def _leaf_names(spec: Any, noun: str) -> list[str]:
    """Each flattened leaf of ``spec`` in words (``tf.nest`` order: dict keys sorted)."""
    if isinstance(spec, Mapping):
        return [f"{noun} {key!r}" for key in sorted(spec) for _ in tf.nest.flatten(spec[key])]
    if isinstance(spec, (list, tuple)) and len(tf.nest.flatten(spec)) > 1:
        return [f"{noun} {index}" for index, part in enumerate(spec) for _ in tf.nest.flatten(part)]
    return [f"the {noun}s"] * len(tf.nest.flatten(spec))


def _finite_rules(element_spec: tuple[Any, ...], mode: str) -> list[_Rule]:
    """NaN/infinity rules for the floating leaves of features and targets."""
    rules = []
    for part, noun in ((0, "input"), (1, "target")):
        if len(element_spec) <= part or element_spec[part] is None:
            continue
        leaves = tf.nest.flatten(element_spec[part])
        names = _leaf_names(element_spec[part], noun)
        for leaf, (spec, name) in enumerate(zip(leaves, names, strict=True)):
            if isinstance(spec, tf.TensorSpec) and spec.dtype.is_floating:
                rules.append(_Rule(part, leaf, name, finite=mode))
    return rules


def _weight_rules(w_spec: Any) -> list[_Rule]:
    leaves = tf.nest.flatten(w_spec)
    return [
        _Rule(2, i, "`sample_weight`" if len(leaves) == 1 else f"`sample_weight` leaf {i}")
        for i, spec in enumerate(leaves)
        if isinstance(spec, tf.TensorSpec) and spec.dtype.is_floating
    ]


class BatchChecks:
    """The value checks of one model on batches of one structure.

    Args:
        rules: What to check.
        caller: The public method being run, for messages.
    """

    def __init__(self, rules: list[_Rule], caller: str) -> None:
        self.rules = rules
        self.caller = caller
        self._lock = threading.Lock()
        self._found: tuple[int, int, float] | None = None  # (batch, rule, value) to warn of
        self._warned = False

    @classmethod
    def for_model(
        cls, model: keras.Model, element_spec: Any, caller: str, finite: str | None = None
    ) -> BatchChecks | None:
        """The checks batches of ``element_spec`` need for ``model``; None when none does.

        Args:
            model: The compiled model.
            element_spec: The spec of one batch.
            caller: The public method, for messages.
            finite: ``"warn"`` or ``"error"``: also check that the floating features and
                targets of streamed batches are finite (``fit(check=...)``); rows held in
                memory are left to the pre-flight scan.
        """
        if not isinstance(element_spec, tuple) or len(element_spec) < 2:
            return None
        rules = _finite_rules(element_spec, finite) if finite is not None else []
        rules += _label_rules(model, element_spec[1])
        if len(element_spec) > 2 and element_spec[2] is not None:
            rules += _weight_rules(element_spec[2])
        return cls(rules, caller) if rules else None

    def _leaf(self, batch: tuple[Any, ...], rule: _Rule) -> Any:
        return tf.nest.flatten(batch[rule.part])[rule.leaf]

    def check(self, batch: tuple[Any, ...], where: str | None = None) -> None:
        """Checks one batch now, named ``where``; or, without it, all rows (naming the row)."""
        for number, rule in enumerate(self.rules):
            if rule.finite is not None:
                continue  # rows in memory: the pre-flight scan has judged every value
            if len(batch) <= rule.part or batch[rule.part] is None:
                continue  # rows without weights (class weights are applied per batch)
            if rule.leaf >= len(tf.nest.flatten(batch[rule.part])):
                continue  # one weight array for several outputs: per-output class weights
                # make one leaf per output of the batches; the array is the first leaf
            value = tf.convert_to_tensor(self._leaf(batch, rule))
            found, first, shown = rule.problem(value)
            if bool(found):
                width = max(1, int(tf.size(value)) // max(1, int(tf.shape(value)[0])))
                place = where or f"row {int(first) // width}"
                raise self._error(number, place, float(shown))

    def on_dataset(self, dataset: tf.data.Dataset, start: int) -> tf.data.Dataset:
        """``dataset`` with each batch checked as it passes (batches numbered from ``start``).

        A bad batch makes the iterator fail with an error :meth:`error_of` turns into the
        fitpipe error; the step that would have used it never runs.
        """
        rules, note = self.rules, self.note

        def noted(index: tf.Tensor, number: int, value: tf.Tensor) -> tf.Tensor:
            return tf.py_function(note, [index, number, value], tf.bool)

        def non_finite(index: tf.Tensor, number: int, leaf: tf.Tensor) -> tf.Tensor:
            """Notes (``"warn"``) or stops on (``"error"``) a leaf known to hold a bad value."""
            _, _, value = rules[number].problem(leaf)
            if rules[number].finite == "warn":  # warned of once, by the trainer
                return noted(index, number, value)
            data = [_MARKER, index, number, value]
            with tf.control_dependencies([tf.debugging.Assert(False, data, summarize=1)]):
                return tf.constant(True)

        @tf.autograph.experimental.do_not_convert
        def checked(index: tf.Tensor, batch: Any) -> Any:
            done: list[Any] = []
            for number, rule in enumerate(rules):  # in order: the first rule broken is named
                leaf = tf.nest.flatten(batch[rule.part])[rule.leaf]
                with tf.control_dependencies(done):
                    if rule.finite is not None:  # one reduction; the details only when found
                        found = rule.found(leaf)
                        done = [
                            tf.cond(
                                found,
                                lambda n=number, v=leaf: non_finite(index, n, v),
                                lambda: tf.constant(False),
                            )
                        ]
                        continue
                    found, _, value = rule.problem(leaf)
                    data = [_MARKER, index, number, value]
                    done = [tf.debugging.Assert(tf.logical_not(found), data, summarize=1)]
            with tf.control_dependencies(done):
                return tf.nest.map_structure(tf.identity, batch)

        return dataset.enumerate(start=start).map(checked)

    @property
    def key(self) -> tuple[_Rule, ...]:
        """What a compiled loop running :meth:`graph_check` depends on: the rules."""
        return tuple(self.rules)

    def graph_check(self, batch: Any, index: tf.Tensor) -> tuple[Any, ...]:
        """The checks of :meth:`on_dataset` as graph ops a compiled loop runs before a step.

        A ``tf.data`` stage cost a function instantiated per iterator and traced per ``fit``
        (20-25% of a 64,000 x 32 ``fit``'s CPU at batch 256). Here, on the host, where an
        iterator's batches are: one reduction a rule at every step (:meth:`_Rule.found`);
        the first broken rule, its value and the ``Assert`` in a branch taken only then.
        Run at every step, they doubled the check's cost (14 against 7 us a step, the
        MLP's 32 x 32 batches, whose step takes 200 us: each op costs 1-3 us on a CPU).

        Returns:
            ``(guard, found, rule, value)`` (``step_loops.Check``): the branch's output, after
            an ``Assert`` failing with batch ``index`` named (see :meth:`error_of`) when the
            first broken rule stops training (all but the finite ones under ``"warn"``);
            whether a rule is broken; the first one broken (int32); its value (float64).
        """
        rules = self.rules
        with tf.device("/CPU:0"):
            leaves = [(rule, tf.nest.flatten(batch[rule.part])[rule.leaf]) for rule in rules]
            flags = tf.stack([rule.found(leaf) for rule, leaf in leaves])
            found = tf.reduce_any(flags)

            def first() -> tuple[tf.Tensor, tf.Tensor]:
                number = tf.argmax(tf.cast(flags, tf.int32), output_type=tf.int32)
                values = tf.stack([rule.problem(leaf)[2] for rule, leaf in leaves])
                value = tf.gather(values, number)
                stop = tf.gather(tf.constant([rule.finite != "warn" for rule in rules]), number)
                data = [_MARKER, index, number, value]
                with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(stop), data)]):
                    return tf.identity(number), tf.identity(value)

            def nothing() -> tuple[tf.Tensor, tf.Tensor]:
                return tf.constant(0, tf.int32), tf.constant(0.0, tf.float64)

            rule, value = tf.cond(found, first, nothing)
        return value, found, rule, value

    def in_python(self, start: int, scanned: bool = False) -> _InPython:
        """The check of :meth:`on_dataset` in Python, for sources that make batches in Python.

        ``check(index, batch)`` (see ``Pipeline.check_batches``) raises the fitpipe error, or
        notes the value under ``"warn"``, for a batch of the iteration; the batches before
        ``start`` (skipped when resuming) are not checked. ``check.clean(rows)`` tells,
        without noting or raising, whether any rows (a block of several batches) pass every
        rule, so a source that converts large blocks checks a clean block at once. With
        ``scanned`` (arrays the pre-flight scan read whole) NaN and infinity are left to
        the scan, as for rows held in memory (:meth:`check`): one warning for a value.
        """
        return _InPython(self, start, scanned)

    def note(self, index: Any, number: Any, value: Any) -> bool:
        """Keeps the first non-finite value found under ``"warn"`` (from any thread)."""
        with self._lock:
            if self._found is None:
                self._found = (int(index), int(number), float(value))
        return True

    def warn_found(self) -> None:
        """Warns once of the first non-finite value noted in a batch (``check="warn"``)."""
        with self._lock:
            found, self._found = self._found, None
            if found is None or self._warned:
                return
            self._warned = True
        index, number, value = found
        rule = self.rules[number]
        warnings.warn(
            DataCheckWarning(self._finite_text(rule, f"batch index {index}", value, True)),
            stacklevel=5,
        )

    def error_of(self, err: BaseException, offset: int = 0) -> FitpipeValueError | None:
        """The fitpipe error for a failure raised by :meth:`on_dataset`'s check.

        Or by :meth:`graph_check`'s, whose batch index counts from the call's first batch:
        ``offset`` is the batches of the pass before it.
        """
        found = _FOUND.search(str(getattr(err, "message", err)))
        if found is None:
            return None
        index, number, value = found.groups()
        return self._error(int(number), f"batch index {int(index) + offset}", float(value))

    def _finite_text(self, rule: _Rule, where: str, value: float, warn: bool) -> str:
        what = "NaN" if math.isnan(value) else f"the infinite value {value}"
        then = (
            'Training goes on (warned once per `fit`); pass `check="error"` to stop '
            "before the step, or fix the data"
            if warn
            else "Fix or drop the rows with NaN or infinite values, or pass `check=False` "
            "to train anyway"
        )
        received = {"x" if rule.part == 0 else "y": raw(f"{value} in {rule.name} of {where}")}
        return message(
            self.caller,
            f"found {what} in {rule.name} of {where}",
            "Feature and target values are finite numbers (a single NaN makes the loss and "
            "then every model weight NaN); batches streamed from generators, `tf.data`, "
            "`PyDataset` and Parquet read from disk are checked as they pass",
            then,
            **received,
        )

    def _error(self, number: int, where: str, value: float) -> FitpipeValueError:
        rule = self.rules[number]
        if rule.finite is not None:
            return DataCheckError(self._finite_text(rule, where, value, False))
        shown: float | int = int(value) if math.isfinite(value) and value == int(value) else value
        if rule.part == 2:
            return FitpipeValueError(
                message(
                    self.caller,
                    f"got the non-finite sample weight {value} in {where}",
                    "Sample weights are finite numbers (a NaN or infinite weight makes the "
                    "loss and then every model weight NaN)",
                    "Replace or drop the samples with NaN or infinite weights",
                    sample_weight=raw(f"{value} in {rule.name} of {where}"),
                )
            )
        ignore = "" if rule.ignore is None else f", or the ignored class {rule.ignore}"
        return FitpipeValueError(
            message(
                self.caller,
                f"got the label {shown} in {where} of {rule.name}, outside the model's "
                f"{rule.classes} classes",
                f"With `{rule.loss}` the targets are class indices from 0 to "
                f"{rule.classes - 1}{ignore} (the valid range is [0, {rule.classes}))",
                "Fix or drop the samples with that label, or give the model an output per class",
                y=raw(f"the label {shown} in {where}"),
            )
        )


class _InPython:
    """:meth:`BatchChecks.in_python`'s check: ``check(index, batch)`` and ``check.clean(rows)``."""

    def __init__(self, checks: BatchChecks, start: int, scanned: bool = False) -> None:
        self.checks = checks
        self.start = start
        self.scanned = scanned

    def _problems(self, rows: tuple[Any, ...]) -> Iterator[tuple[int, float]]:
        for number, rule in enumerate(self.checks.rules):  # in order: the first broken first
            if self.scanned and rule.finite is not None:
                continue  # judged by the pre-flight scan
            if len(rows) <= rule.part or rows[rule.part] is None:
                continue  # blocks before class weights: their weights are made per batch
            leaves = tf.nest.flatten(rows[rule.part])
            if rule.leaf >= len(leaves):
                continue  # one weight array for several outputs (see BatchChecks.check)
            value = rule.numpy_problem(leaves[rule.leaf])
            if value is not None:
                yield number, value

    def clean(self, rows: tuple[Any, ...]) -> bool:
        """Whether ``rows`` break no rule (nothing is noted or raised)."""
        return next(self._problems(rows), None) is None

    def __call__(self, index: int, batch: tuple[Any, ...]) -> None:
        if index < self.start:
            return
        for number, value in self._problems(batch):
            if self.checks.rules[number].finite == "warn":
                self.checks.note(index, number, value)
            else:
                raise self.checks._error(number, f"batch index {index}", value)


def check_one_batch(model: keras.Model, data: Any, caller: str) -> None:
    """Checks the values of one batch given to ``train_on_batch`` or ``test_on_batch``."""
    checks = BatchChecks.for_model(model, spec_of(data), caller)
    if checks is not None:
        checks.check(data, "the batch")
