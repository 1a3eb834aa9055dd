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

The same checks read the rows of ragged features fed to an input of a fixed size, which only
the batches' values tell (``ragged_inputs``, :func:`ragged_rules`): a row of another length
is a ``DataMismatchError`` naming the batch, before the step Keras would fail inside. They
run for ``predict`` too, whose batches have no targets.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from fitpipe.errors import (
    DataCheckError,
    DataCheckWarning,
    FitpipeError,
    FitpipeValueError,
    message,
    raw,
    warn,
)
from fitpipe.training.check_rules import (
    Rule,
    finite_rules,
    first_broken,
    label_rules,
    weight_rules,
)
from fitpipe.training.inputs import input_label, input_pairs
from fitpipe.training.ragged_inputs import fixed_rows, ragged_error

__all__ = ["BatchChecks", "check_one_batch", "ragged_rules"]

_MARKER = "fitpipe-batch-check"
_FOUND = re.compile(_MARKER + r"\] \[(-?\d+)\] \[(\d+)\] \[(\S+?)\]")


class BatchChecks:
    """The value checks of one model on batches of one structure.

    Args:
        rules: What to check.
        caller: The public method being run, for messages.

    Attributes:
        of: Said after the batch or row a message names: ``" of the validation data"`` for
            ``fit``'s validation batches, so that an error in them is not read as one in ``x``.
    """

    def __init__(self, rules: list[Rule], caller: str) -> None:
        self.rules = rules
        self.caller = caller
        self.of = ""
        self._lock = threading.Lock()
        self._found: tuple[int, int, float] | None = None  # (batch, rule, value) to warn of
        self._warned = False

    @classmethod
    def for_model(
        cls, model: keras.Model, element_spec: Any, caller: str, finite: str | None = None
    ) -> BatchChecks | None:
        """The checks batches of ``element_spec`` need for ``model``; None when none does.

        Features alone (``predict``'s ``(x,)``) need only those of ragged rows.

        Args:
            model: The compiled model.
            element_spec: The spec of one batch.
            caller: The public method, for messages.
            finite: ``"warn"`` or ``"error"``: also check that the floating features and
                targets of streamed batches are finite (``fit(check=...)``); rows held in
                memory are left to the pre-flight scan.
        """
        if not isinstance(element_spec, tuple) or not element_spec:
            return None
        rules = ragged_rules(model, element_spec, caller)  # first: rows the step cannot take
        rules += finite_rules(element_spec, finite) if finite is not None else []
        if len(element_spec) > 1:
            rules += label_rules(model, element_spec[1])
        if len(element_spec) > 2 and element_spec[2] is not None:
            rules += weight_rules(element_spec[2])
        return cls(rules, caller) if rules else None

    def parts_read(self) -> frozenset[int]:
        """The parts of a batch (0: x, 1: y, 2: weights) :meth:`check` reads of held rows.

        Those of the rules other than the finite ones, which the pre-flight scan judged.
        """
        return frozenset(rule.part for rule in self.rules if rule.finite is None)

    def check(self, batch: tuple[Any, ...], where: str | None = None) -> None:
        """Checks one batch now, named ``where``; or, without it, all rows (naming the row)."""
        flat: dict[int, list[Any]] = {}
        for number, rule in enumerate(self.rules):
            if rule.finite is not None:
                continue  # rows in memory: the pre-flight scan has judged every value
            if len(batch) <= rule.part or batch[rule.part] is None:
                continue  # rows without weights (class weights are applied per batch)
            leaves = _part_leaves(flat, batch, rule.part)
            if rule.leaf >= len(leaves):
                continue  # one weight array for several outputs: per-output class weights
                # make one leaf per output of the batches; the array is the first leaf
            value = leaves[rule.leaf]
            if not isinstance(value, tf.RaggedTensor):  # (a ragged leaf's rows: `Rule.rows`)
                value = tf.convert_to_tensor(value)
            found, first, shown = rule.problem(value)
            if bool(found) and rule.rows is not None:  # (a row's length)
                raise self._error(number, where or f"row {int(first)}", float(shown))
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
            flat: dict[int, list[Any]] = {}
            for number, rule in enumerate(rules):  # in order: the first rule broken is named
                leaf = _part_leaves(flat, batch, rule.part)[rule.leaf]
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
    def key(self) -> tuple[Rule, ...]:
        """What a compiled loop running :meth:`graph_check` depends on: the rules."""
        return tuple(self.rules)

    def graph_check(self, batch: Any, index: tf.Tensor) -> tuple[Any, ...]:
        """The checks of :meth:`on_dataset` as graph ops a compiled loop runs before a step.

        A ``tf.data`` stage cost a function instantiated per iterator and traced per ``fit``
        (20-25% of a 64,000 x 32 ``fit``'s CPU at batch 256). Here, on the host, where an
        iterator's batches are: one reduction a rule at every step, one for all the finite
        rules of leaves sharing a dtype (``check_rules.first_broken``); the first broken
        rule, its value and the ``Assert`` in a branch taken only then.
        Run at every step, they doubled the check's cost (14 against 7 us a step, the
        MLP's 32 x 32 batches, whose step takes 200 us: each op costs 1-3 us on a CPU).

        Returns:
            ``(guard, found, rule, value)`` (``step_loops.Check``): the branch's output, after
            an ``Assert`` failing with batch ``index`` named (see :meth:`error_of`) when the
            first broken rule stops training (all but the finite ones under ``"warn"``), or
            None when no rule can stop it (the step then need not wait for the check);
            whether a rule is broken; the first one broken (int32); its value (float64).
        """
        rules, flat = self.rules, dict[int, list[Any]]()
        with tf.device("/CPU:0"):
            leaves = [_part_leaves(flat, batch, rule.part)[rule.leaf] for rule in rules]
            found, broken = first_broken(rules, leaves)

            def first() -> tuple[tf.Tensor, tf.Tensor]:
                number, value = broken()
                stop = tf.gather(tf.constant([rule.finite != "warn" for rule in rules]), number)
                data = [_MARKER, index, number, value]
                with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(stop), data)]):
                    return tf.identity(number), tf.identity(value)

            def nothing() -> tuple[tf.Tensor, tf.Tensor]:
                return tf.constant(0, tf.int32), tf.constant(0.0, tf.float64)

            rule, value = tf.cond(found, first, nothing)
        # Under "warn" no finite rule stops training: the step need not wait for the check
        # (a control input of the inlined step is an edge to each of its inputs and constants,
        # and the loop graph of a 100-input model took grappler 0.15 s where Keras' takes 0.03)
        stops = any(rule.finite != "warn" for rule in rules)
        return (value if stops else None), found, rule, value

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
        warn(
            DataCheckWarning(self._finite_text(rule, f"batch index {index}", value, True)),
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

    def _finite_text(self, rule: Rule, where: str, value: float, warn: bool) -> str:
        where += self.of
        what = "NaN" if math.isnan(value) else f"the infinite value {value}"
        if math.isfinite(value):  # beyond floatx's range (``Rule.limit``)
            floatx = keras.config.floatx()
            what = f"the value {value:g}, which the cast to {floatx} makes infinite,"
        then = (
            'Training goes on (warned once per `fit`); pass `check="error"` to stop '
            "before the step, or fix the data"
            if warn
            else "Fix or drop the rows with NaN or infinite values (scale or clip those "
            "beyond floatx's range), or pass `check=False` "
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
        if rule.rows is not None:
            return ragged_error(self.caller, rule.name, rule.rows, where + self.of, value)
        if rule.finite is not None:
            return DataCheckError(self._finite_text(rule, where, value, False))
        shown_where = where + self.of
        shown: float | int = int(value) if math.isfinite(value) and value == int(value) else value
        if rule.part == 2:
            return FitpipeValueError(
                message(
                    self.caller,
                    f"got the {_weight_text(value)} in {shown_where}",
                    "Sample weights are finite numbers (a NaN or infinite weight makes the "
                    "loss and then every model weight NaN)",
                    "Replace or drop the samples with NaN or infinite weights",
                    sample_weight=raw(f"{value} in {rule.name} of {shown_where}"),
                )
            )
        ignore = "" if rule.ignore is None else f", or the ignored class {rule.ignore}"
        return FitpipeValueError(
            message(
                self.caller,
                f"got the label {shown} in {where} of {rule.name}{self.of}, outside the model's "
                f"{rule.classes} classes",
                f"With `{rule.loss}` the targets are class indices from 0 to "
                f"{rule.classes - 1}{ignore} (the valid range is [0, {rule.classes}))",
                "Fix or drop the samples with that label, or give the model an output per class",
                y=raw(f"the label {shown} in {shown_where}"),
            )
        )


def _part_leaves(flat: dict[int, list[Any]], batch: tuple[Any, ...], part: int) -> list[Any]:
    """The leaves of ``batch[part]``, flattened once a batch (``flat`` keeps them by part).

    Flattened once per rule instead, a batch of 100 inputs was flattened 100 times: 2.6 ms a
    batch on a generator's reading thread, 1.1 ms now (a rule per input).
    """
    if part not in flat:
        flat[part] = tf.nest.flatten(batch[part])
    return flat[part]


class _InPython:
    """:meth:`BatchChecks.in_python`'s check: ``check(index, batch)`` and ``check.clean(rows)``."""

    def __init__(self, checks: BatchChecks, start: int, scanned: bool = False) -> None:
        self.checks = checks
        self.start = start
        self.scanned = scanned

    def _problems(self, rows: tuple[Any, ...]) -> Iterator[tuple[int, float]]:
        flat: dict[int, list[Any]] = {}
        for number, rule in enumerate(self.checks.rules):  # in order: the first broken first
            if self.scanned and rule.finite is not None:
                continue  # judged by the pre-flight scan
            if len(rows) <= rule.part or rows[rule.part] is None:
                continue  # blocks before class weights: their weights are made per batch
            leaves = _part_leaves(flat, rows, rule.part)
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


def ragged_rules(model: keras.Model, element_spec: Any, caller: str) -> list[Rule]:
    """The rules checking each batch's ragged ``x`` leaves fed to inputs of a fixed size.

    A stream's ragged batches, whose rows the spec does not tell (``ragged_inputs``): each
    batch is checked as it is read (:class:`BatchChecks`), none refused before. A leaf is
    found by identity among ``x``'s (the pairs hold the spec's own leaves).
    """
    try:
        pairs = input_pairs(model, element_spec, caller)
    except FitpipeError:  # (refused by `check_model_inputs` before any batch is read)
        return []
    flat = tf.nest.flatten(element_spec[0])
    rules = []
    for position, (tensor, spec) in enumerate(pairs):
        leaf = next((i for i, one in enumerate(flat) if one is spec), None)
        shape = tuple(tensor.shape)
        if leaf is None or not fixed_rows(tensor, spec) or len(shape) != spec.shape.rank:
            continue
        rules.append(Rule(0, leaf, input_label(tensor, position), rows=shape))
    return rules


def check_one_batch(model: keras.Model, data: Any, caller: str, spec: Any) -> None:
    """Checks the values of one batch given to ``train_on_batch`` or ``test_on_batch``.

    Args:
        model: The model.
        data: The batch, without absent leaves.
        caller: The public method, for messages.
        spec: The batch's spec (``conversions.present_with_spec``).
    """
    checks = BatchChecks.for_model(model, spec, caller)
    if checks is not None:
        checks.check(data, "the batch")


def _weight_text(value: float) -> str:
    """A sample weight a finite rule refused, in words: non-finite, or beyond floatx's range."""
    if math.isfinite(value):  # (``Rule.limit``)
        return f"sample weight {value:g}, which the cast to {keras.config.floatx()} makes infinite,"
    return f"non-finite sample weight {value}"
