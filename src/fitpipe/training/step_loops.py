"""The graph loops that run a compiled step up to ``n`` times per call, and their inputs.

:class:`~fitpipe.training.steps.StepFunction` compiles the model's step; the loops here call
it on up to ``n`` batches per call, fetched from a ``tf.data`` iterator (ending early when
the input does) or sliced from rows held in memory (:class:`RowCursor`: every batch is known
to exist). A loop keeps the last step's outputs (train, test) or every step's, concatenated
(predict), and sums the seconds it waited for its batches (the input-bound report).

The loops are explicit ``tf.while_loop``s, not autograph loops: autograph would transpile
them (and every function they call) from source on the first ``fit`` of a process, about a
second before the first step. The next batch is fetched only while more steps are due, so no
batch is lost between calls.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from fitpipe.pipeline import Chunks
from fitpipe.training.collect import (
    concat_outputs,
    held_specs,
    join_steps,
    output_arrays,
    write_outputs,
)
from fitpipe.training.conversions import absent_as_none

__all__ = [
    "Check",
    "Fetch",
    "LastTrace",
    "RowCursor",
    "chunked_loop",
    "collect_loop",
    "counted_loop",
    "eager_steps",
    "iterator_fetch",
    "last_loop",
    "merge",
    "next_of_iterator",
    "output_zeros",
    "present",
]

#: ``fetch(source, i)`` returns the ``i``-th batch of ``source`` as a ``tf.experimental.Optional``.
Fetch = Callable[[Any, tf.Tensor], Any]

#: The value checks of a batch, run in the loop before its step (``BatchChecks.graph_check``):
#: ``check(batch, i) -> (guard, found, rule, value)``: what the step waits for, which fails
#: the call when a rule that stops training is broken (naming batch ``i`` of the call; None
#: when no rule can stop it), whether a rule is broken, the first one broken and its bad
#: value (float64).
Check = Callable[[Any, tf.Tensor], tuple[Any, tf.Tensor, tf.Tensor, tf.Tensor]]

#: A step: the model's compiled step, called on one batch.
Step = Callable[[Any], Any]

#: Under ``jit_compile="auto"`` with XLA chosen: the plain step, and the graph function
#: ``(loop source) -> rows of a full batch``. Batches of any other size (the last, shorter
#: batch of an epoch) run the plain step: XLA compiles once per batch shape, and a second
#: compilation for one batch an epoch costs more than that batch (1.5 s of CPU for the
#: grid's text model, whose plain step at 1,024 rows takes 20 ms).
Short = tuple[Step, Callable[[Any], tf.Tensor]]


def output_zeros(structure: Any) -> Any:
    """Zeros shaped like each tensor spec or tensor in ``structure``, of its static shape.

    A size the step leaves unknown (a custom ``train_step`` logging its per-sample losses,
    of shape ``(None,)``) is 0 in the value and stays unknown in the static shape, so a
    loop that carries the step's outputs takes them at any size.
    """

    def zeros(spec: Any) -> tf.Tensor:
        shape = spec.shape
        if shape.is_fully_defined():
            return tf.zeros(shape, spec.dtype)
        sizes = [] if shape.rank is None else [size or 0 for size in shape.as_list()]
        return tf.raw_ops.PlaceholderWithDefault(input=tf.zeros(sizes, spec.dtype), shape=shape)

    return tf.nest.map_structure(zeros, structure)


def next_of_iterator(iterator: Any, _: tf.Tensor) -> Any:
    """The :data:`Fetch` of a ``tf.data`` iterator: its next batch (the index is unused)."""
    return iterator.get_next_as_optional()


def iterator_fetch(iterator: Any, held: bool) -> Fetch:
    """The :data:`Fetch` of ``iterator``; ``held``: it holds every batch the call asks for.

    A batch known to be there is read by ``IteratorGetNextSync``, run in the loop's own
    thread: ``get_next`` and ``get_next_as_optional`` are asynchronous kernels, each batch
    handed from the loop to the iterator's thread and back, which cost about 35 us a batch
    on 2 cores (the grid's MLP from a user's ``tf.data.Dataset``: ``predict`` at batch 256
    1.05M against 1.17M samples a CPU second, ``fit`` at batch 32 135k against 152k). Only
    for a plain ``tf.data`` iterator of dense tensors (whose flat components are the
    tensors); any other reads its batches as Optionals.
    """
    dense = all(type(s) is tf.TensorSpec for s in tf.nest.flatten(iterator.element_spec))
    if held and dense and isinstance(iterator, tf.data.Iterator):
        return _next_held
    return next_of_iterator


def _next_held(iterator: Any, _: tf.Tensor) -> Any:
    """The next batch of ``iterator``, read synchronously (see :func:`iterator_fetch`)."""
    (resource,) = tf.nest.flatten(iterator, expand_composites=True)
    spec = iterator.element_spec
    specs = tf.nest.flatten(spec)
    values = tf.raw_ops.IteratorGetNextSync(
        iterator=resource,
        output_types=[s.dtype for s in specs],
        output_shapes=[s.shape for s in specs],
    )
    return tf.experimental.Optional.from_value(tf.nest.pack_sequence_as(spec, values))


def eager_steps(
    step: Step, iterator: Any, n: int, collect: bool, held: list[int]
) -> tuple[int, Any, float]:
    """Runs up to ``n`` steps eagerly (``run_eagerly``): ``(steps run, outputs, seconds waited)``.

    The outputs are the last step's, or every step's joined (``collect``; see :func:`merge`
    for ``held``); the seconds are those spent waiting for the batches.
    """
    outputs: list[Any] = []
    waited = 0.0
    for _ in range(n):
        begin = time.perf_counter()
        batch = iterator.get_next_as_optional()
        present = bool(batch.has_value())
        waited += time.perf_counter() - begin
        if not present:
            break
        outputs.append(step(batch.get_value()))
    if not outputs:
        return 0, None, waited
    return len(outputs), merge(outputs, collect, held), waited


def merge(outputs: list[Any], collect: bool, held: list[int] | None = None) -> Any:
    """Steps' outputs: all of them joined (``collect``), or the last.

    ``held``: per output, the ragged rank the calls hold it at; raised in place for dense
    outputs whose sizes differ between steps (see ``collect.join_steps``).
    """
    if collect:
        if len(outputs) == 1:
            return outputs[0]
        return join_steps(outputs, [] if held is None else held)
    return outputs[-1]


class LastTrace:
    """Calls a compiled loop, through the trace of its last call while its source is the same.

    A ``tf.function`` finds the trace for a call from its arguments' types, at every call:
    0.1 ms for the loop over held rows (the MLP's step at batch 32 takes 0.2 ms), paid at
    every step when a callback's batch hooks ask for calls of one step. A loop's source (an
    epoch's rows, a streamed block, a ``tf.data`` iterator) is the same object for many
    calls: the first finds the trace, which the later ones run directly.

    Args:
        weak: Keep the source by a weak reference (an iterator, whose buffers and threads
            must not outlive its use), not a strong one (a tuple of tensors held anyway).
    """

    def __init__(self, weak: bool) -> None:
        self._weak = weak
        self._last: tuple[Callable[[], Any], Any, Any] | None = None  # source, loop, trace

    def call(self, loop: Any, source: Any, *rest: tf.Tensor) -> Any:
        """``loop(source, *rest)``."""
        last = self._last
        if last is not None and last[0]() is source and last[1] is loop:
            return last[2](source, *rest)
        outputs = loop(source, *rest)
        try:
            handle = weakref.ref(source) if self._weak else (lambda: source)
        except TypeError:  # a source no weak reference can name: every call looks it up
            return outputs
        self._last = (handle, loop, loop.get_concrete_function(source, *rest))
        return outputs


class RowCursor:
    """Where an epoch over rows held in memory stands: its row order and its next batch.

    Args:
        rows: The pipeline's :class:`~fitpipe.pipeline.ResidentRows`.
        epoch: Which epoch (selects the permutation when shuffling).
        element_spec: The spec of one batch.
    """

    #: The rows are all in memory: the loop never waits for input.
    in_memory = True

    def __init__(self, rows: Any, epoch: int, element_spec: Any) -> None:
        self.rows = rows
        self.arguments = rows.loop_arguments(epoch)
        self.position = 0
        self.element_spec = element_spec
        #: Seconds spent waiting for rows (none: they are in memory).
        self.waited = 0.0
        self._last = LastTrace(weak=False)  # the arguments, a tuple, live as long as this

    @property
    def remaining(self) -> int:
        """Batches of this epoch not yet run."""
        return int(self.rows.num_batches) - self.position

    def batch(self, index: Any) -> Any:
        """The rows of batch ``index`` of this epoch."""
        return self.rows.batch(self.arguments, index)

    def call(self, loop: Any, n: int) -> Any:
        """``loop(arguments, position, n)``: up to ``n`` steps (see :class:`LastTrace`)."""
        first, steps = tf.constant(self.position, tf.int32), tf.constant(n, tf.int32)
        return self._last.call(loop, self.arguments, first, steps)

    def run(
        self,
        call: Callable[[RowCursor, int], Any],
        n: int,
        collect: bool,
        held: list[int] | None = None,
    ) -> Any:
        """Runs up to ``n`` steps: ``call(self, n)``, the trainer's call on these rows.

        ``held``: unused here (one call, no outputs to join); see :meth:`BlockCursor.run`.

        Returns:
            ``(steps_run, outputs)``: fewer than ``n`` steps when the epoch ends first.
        """
        return call(self, min(n, self.remaining))

    def trace(self, loop: Any) -> None:
        """Traces a loop just built for these rows ahead of its first call (no need here)."""


def _more_batches(n: tf.Tensor) -> Callable[..., tf.Tensor]:
    """The condition of a loop of up to ``n`` steps that ends early when the input does."""

    def more(i: tf.Tensor, _: Any, batch: Any, *waited: Any) -> tf.Tensor:
        return tf.logical_and(i < n, batch.has_value())

    return more


def _waited(batch: Any, after: Any = None) -> tf.Tensor:
    """The seconds a loop waited for ``batch`` after the step whose outputs are ``after``.

    The fetch runs alongside that step, and counts only from the step's end to the batch
    (none when the batch came first). Fetched only once the step was done, a user's
    prefetched ``tf.data`` input trained at 0.6-0.65x the wall speed of the same loop
    untimed (64,000 x 32 rows, the MLP at batch 32).
    """
    done = [t for t in tf.nest.flatten(after) if isinstance(t, tf.Tensor)]
    with tf.control_dependencies(done):
        begin = tf.timestamp()
    with tf.control_dependencies([batch.has_value()]):
        end = tf.timestamp()
    return tf.maximum(end - begin, 0.0)


def present(fetch: Fetch) -> Callable[[Any, tf.Tensor], Any]:
    """``fetch`` for a source known to hold the batch: the value, with no Optional."""
    return lambda source, index: fetch(source, index).get_value()


def sized_step(one_step: Step, short: Short | None, source: Any) -> Step:
    """``one_step`` for full batches of ``source``; the plain step of ``short`` for others."""
    if short is None:
        return one_step
    plain, full_rows = short
    full = tf.cast(full_rows(source), tf.int32)

    def step(batch: Any) -> Any:
        leaf = next(t for t in tf.nest.flatten(batch) if isinstance(t, tf.Tensor))
        whole = tf.equal(tf.shape(leaf)[0], full)
        return tf.cond(whole, lambda: one_step(batch), lambda: plain(batch))

    return step


def counted_loop(
    one_step: Step,
    out_specs: Any,
    fetch: Callable[[Any, tf.Tensor], Any],
    short: Short | None = None,
) -> Callable[..., Any]:
    """A loop over batches known to exist (rows in memory): no end-of-input checks.

    ``fetch`` gives the batch itself (see :func:`present`); the loop returns ``(n, outputs)``
    of the last step. ``short``: see :data:`Short` and :func:`_last_step`.
    """

    def loop(source: Any, start: tf.Tensor, n: tf.Tensor) -> tuple[tf.Tensor, Any]:
        direct = n if short is None else n - 1

        def body(i: tf.Tensor, logs: Any) -> tuple[Any, ...]:
            return i + 1, one_step(absent_as_none(fetch(source, start + i)))

        initial = (tf.constant(0, tf.int32), output_zeros(out_specs))
        _, logs = tf.while_loop(lambda i, _: i < direct, body, initial)
        if short is not None:
            logs = _last_step(one_step, short, source, n, lambda: fetch(source, start + n - 1))
        return n, logs

    return loop


def chunked_loop(
    one_step: Step,
    out_specs: Any,
    chunks: Chunks,
    short: Short | None = None,
    collect: bool = False,
) -> Callable[..., Any]:
    """:func:`counted_loop` gathering the rows of several batches at once (see ``Chunks``).

    An outer loop gathers each chunk (at most the batches still due in this call), an inner
    one runs a step on each of its batches, sliced. The batches and their order are those of
    :func:`counted_loop`. ``collect``: the loop returns every step's outputs, concatenated
    along the batch axis (predict: as :func:`collect_loop`), not the last step's.
    """
    start, keep, result = _kept(out_specs, collect)

    def loop(source: Any, first: tf.Tensor, n: tf.Tensor) -> tuple[tf.Tensor, Any]:
        per_chunk = chunks.batches(source)
        direct = n if short is None else n - 1

        def chunk(done: tf.Tensor, kept: Any) -> tuple[Any, ...]:
            count = tf.minimum(per_chunk, direct - done)
            rows = chunks.gather(source, first + done, count)

            def body(i: tf.Tensor, kept: Any) -> tuple[Any, ...]:
                outputs = one_step(absent_as_none(chunks.pick(rows, source, i)))
                return i + 1, keep(done + i, kept, outputs)

            _, kept = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), kept))
            return done + count, kept

        _, kept = tf.while_loop(lambda done, _: done < direct, chunk, (tf.constant(0), start()))
        if short is not None:

            def last() -> Any:
                rows = chunks.gather(source, first + n - 1, tf.constant(1))
                return chunks.pick(rows, source, tf.constant(0))

            kept = keep(n - 1, kept, _last_step(one_step, short, source, n, last))
        return n, result(n, kept)

    return loop


def _kept(out_specs: Any, collect: bool) -> tuple[Callable[..., Any], ...]:
    """``(start, keep, result)`` of a loop keeping its last step's outputs, or all of them."""
    if collect:  # outputs of sizes None in the model held ragged (collect.held_specs)
        held = held_specs(out_specs)
        return (
            lambda: output_arrays(held),
            lambda i, written, outputs: write_outputs(written, i, outputs, held),
            lambda count, written: concat_outputs(count, written, held),
        )
    return lambda: output_zeros(out_specs), lambda i, kept, outputs: outputs, lambda n, kept: kept


def _last_step(
    one_step: Step, short: Short, source: Any, n: tf.Tensor, batch: Callable[[], Any]
) -> Any:
    """The outputs of a call's last step, on ``batch()``: the plain step when it is short.

    Only the epoch's last batch can be shorter than the others, and a call over rows in
    memory never runs past an epoch's end, so only a call's last batch can be short: the
    steps before it call ``one_step`` directly. A branch between the XLA and the plain step
    at every step cost 44 us of a 123 us step (CPU, the grid's MLP at batch 64). ``n`` is at
    least 1: the callers never run a loop of no steps.
    """
    with tf.control_dependencies([tf.debugging.assert_positive(n)]):
        return sized_step(one_step, short, source)(absent_as_none(batch()))


def last_loop(
    one_step: Step,
    out_specs: Any,
    fetch: Fetch,
    timed: bool,
    short: Short | None = None,
    check: Check | None = None,
) -> Callable[..., Any]:
    """A loop returning the last step's outputs (train, test); ``timed``: see ``_waited``.

    ``check``: see :data:`Check`.
    """
    start, keep, result = _kept(out_specs, False)
    return _fetching_loop(one_step, fetch, timed, short, start, keep, result, check=check)


def collect_loop(
    one_step: Step, out_specs: Any, fetch: Fetch, timed: bool, short: Short | None = None
) -> Callable[..., Any]:
    """A loop returning every step's outputs, concatenated along the batch axis (predict)."""
    start, keep, result = _kept(out_specs, True)
    return _fetching_loop(one_step, fetch, timed, short, start, keep, result)


def _fetching_loop(
    one_step: Step,
    fetch: Fetch,
    timed: bool,
    short: Short | None,
    start: Callable[[], Any],
    keep: Callable[[tf.Tensor, Any, Any], Any],
    result: Callable[[tf.Tensor, Any], Any],
    check: Check | None = None,
) -> Callable[..., Any]:
    """A loop of up to ``n`` steps that ends early when the input does.

    Each next batch is fetched while the step runs, only while more steps are due; when
    ``timed``, the loop sums the seconds it waited for them (see :func:`_waited`). What
    the loop keeps of the steps' outputs is its own: ``start()`` makes it (inside the
    graph), ``keep(i, kept, outputs)`` adds step ``i``'s outputs, and ``result(count,
    kept)`` gives the loop's outputs. The loop returns ``(count, outputs, waited, noted)``;
    ``noted`` is :func:`_checked`'s (``(-1, 0, 0)`` without ``check``, carried through the
    loop only with one: each loop variable costs every step). ``short``: see :data:`Short`.
    """

    def loop(source: Any, first: tf.Tensor, n: tf.Tensor) -> tuple[tf.Tensor, Any, Any, Any]:
        run = sized_step(one_step, short, source)
        none = tf.constant(0.0, tf.float64)

        def body(i: tf.Tensor, kept: Any, batch: Any, *state: Any) -> tuple[Any, ...]:
            waited, noted = state[0], state[1:]
            data = absent_as_none(batch.get_value())
            guard, noted = _checked(check, data, i, noted)
            with tf.control_dependencies(guard):
                outputs = run(data)
            kept = keep(i, kept, outputs)
            # the branch takes no output of the step: the fetch does not wait for the step
            more = tf.cond(i + 1 < n, lambda: fetch(source, first + i + 1), lambda: batch)
            took = _waited(more, outputs) if timed else none
            return i + 1, kept, more, waited + took, *noted

        batch = fetch(source, first)
        took = _waited(batch) if timed else none
        noted = _nothing_noted() if check is not None else ()
        initial = (tf.constant(0, tf.int32), start(), batch, took, *noted)
        count, kept, _, waited, *noted = tf.while_loop(_more_batches(n), body, initial)
        return count, result(count, kept), waited, tuple(noted) or _nothing_noted()

    return loop


def _nothing_noted() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(batch -1, rule 0, value 0)``: no batch noted yet (graph constants)."""
    return tf.constant(-1, tf.int32), tf.constant(0, tf.int32), tf.constant(0.0, tf.float64)


def _checked(check: Check | None, batch: Any, i: tf.Tensor, noted: Any) -> tuple[list, Any]:
    """Runs ``check`` on step ``i``'s batch: the guard the step waits for, and what is noted.

    The guard fails the call when the first broken rule stops training; else the first
    batch of the call breaking a rule is noted as ``(i, rule, value)``, kept over later
    ones (``tf.where``, no branch of its own).
    """
    if check is None:
        return [], noted
    guard, found, rule, value = check(batch, i)
    fresh = tf.logical_and(found, noted[0] < 0)
    kept = (
        tf.where(fresh, i, noted[0]),
        tf.where(fresh, rule, noted[1]),
        tf.where(fresh, value, noted[2]),
    )
    return ([] if guard is None else [guard]), kept
