"""Compiled step functions: one model step, XLA-compiled, run N times per call from an iterator.

The per-batch body is the model's own ``train_step``/``test_step``/``predict_step`` (so custom
steps keep working and results match Keras); fitpipe compiles it once with
``tf.function(jit_compile=...)`` and wraps it in a graph loop that pulls up to ``n`` batches
from a ``tf.data`` iterator per call. ``n`` is a tensor, so changing it (as
``steps_per_execution="auto"`` does) never retraces.

Here: the step's compiled variants (with and without XLA: the probe that falls back to the
plain graph) and the loops (``step_loops``) built for each input; ``jit_compile="auto"``'s
choice per input is :class:`~fitpipe.training.step_xla.AutoXla`, mixed in.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from fitpipe.adapters import timing
from fitpipe.errors import FitpipeError, FitpipeWarning, warn
from fitpipe.pipeline import ResidentRows
from fitpipe.schemas import Mode
from fitpipe.training import graph_ops, placement, remembered, xla_rules
from fitpipe.training.collect import held_ranks, output_specs
from fitpipe.training.conversions import (
    absent_as_none,
    composite_spec,
    same_spec,
)
from fitpipe.training.logs import loop_outputs
from fitpipe.training.step_errors import step_error, trace_note
from fitpipe.training.step_loops import (
    Fetch,
    LastTrace,
    RowCursor,
    chunked_loop,
    collect_loop,
    counted_loop,
    eager_steps,
    iterator_fetch,
    last_loop,
    merge,
    present,
)
from fitpipe.training.step_xla import AutoXla
from fitpipe.training.tuning import XlaChoice

__all__ = ["ANNOUNCE_XLA", "XLA_NOTICE", "RowCursor", "StepFunction"]

#: Set (by the progress bar, while ``fit`` runs with ``verbose`` on) to say on stdout when
#: the train step is about to be compiled with XLA, which can make the first epoch far slower.
ANNOUNCE_XLA: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fitpipe_announce_xla", default=False
)
XLA_NOTICE = "compiling the train step with XLA (once; the first steps wait for it) ..."


def _compiled(step: Callable[[Any], Any], jit_compile: bool) -> Any:
    """The step as a ``tf.function``, without autograph (as Keras: its errors stay its own)."""
    return tf.function(step, jit_compile=jit_compile, reduce_retracing=True, autograph=False)


class StepFunction(AutoXla):
    """A model step compiled once and run ``n`` batches per call.

    Args:
        step: The model's step method (``model.train_step``, ...), taking one batch.
        jit_compile: Compile the step with XLA. Before the first step, the step is compiled
            once on zeros shaped like a batch; if XLA cannot compile it (an op without an XLA
            kernel), a warning says so and the plain graph runs instead. ``"auto"``: decided
            by measurement, once per input (:class:`~fitpipe.training.tuning.XlaChoice`):
            the step starts as the plain graph, and XLA is compiled and timed once the steps
            per call have settled (see :meth:`record`); kept only when clearly faster.
        run_eagerly: Run everything eagerly (debugging); no tracing at all.
        collect: True for predict: return every step's outputs concatenated, not the last.
        caller: The public method the step serves, for the warning.
        mode: What the step does; training steps announce their XLA compilation.
        decisions: Under ``"auto"``, the train step's choices by :func:`input_key`. A test or
            predict step whose train step chose XLA tries it early, keeping the faster (CPU, a
            Conv1D at batch 256: 0.69x the plain time a train step, 2.82x a predict step).
    """

    #: Seconds the compiled loops waited for input batches, summed over calls (see
    #: :mod:`~fitpipe.training.step_loops`): the input-bound report reads the difference
    #: over an epoch. Stays 0 when the loops are not timed (:attr:`timed`).
    waited: float
    #: Whether the loops over ``tf.data`` iterators can run :attr:`checks` (not eagerly).
    checks_in_loop = True

    def __init__(
        self,
        step: Callable[[Any], Any],
        jit_compile: bool | str,
        run_eagerly: bool,
        collect: bool = False,
        caller: str = "fit",
        mode: Mode = Mode.TRAIN,
        decisions: dict[str, bool] | None = None,
    ) -> None:
        self.step = step
        self.run_eagerly = run_eagerly
        self.collect = collect
        self.held: list[int] = []  # per output, the ragged rank a call holds it at
        self.caller = caller
        self.mode = mode
        self.auto = jit_compile == "auto" and not run_eagerly
        #: The variant the step runs now (under ``"auto"``: for the last input prepared).
        self.jit_compile = bool(jit_compile) and not self.auto and not run_eagerly
        self._probed = not self.jit_compile and not self.auto  # XLA not checked yet
        self._variants: dict[bool, Any] = {}
        #: The op types of the step's first trace (``graph_ops.op_types``; None: not read).
        self._ops: frozenset[str] | None = None
        if run_eagerly:
            self.one_step: Callable[[Any], Any] = step
        else:
            self.one_step = self._variant(self.jit_compile)
        self._loops: dict[tuple[bool, Any, Any], Callable[..., Any]] = {}
        #: The checks the loops over ``tf.data`` iterators run before each step (``BatchChecks``,
        #: set per pass), and the last call's first batch breaking one: (batch, rule, value).
        self.checks: Any = None
        self.noted: tuple[int, int, float] | None = None
        self._spec: Any = None
        self._rows_loops: dict[Any, Callable[..., Any]] = {}
        self._last = LastTrace(weak=True)  # a tf.data iterator's loop and trace
        self._last_batch: tuple[Any, Any, Any] | None = None  # step, spec, trace
        self._retired_traces = 0  # traces of functions replaced since (the XLA fallback)
        self._decisions = decisions if decisions is not None else {}
        self._choices: dict[str, XlaChoice] = {}
        self._choice: tuple[str, XlaChoice] | None = None  # of the last input prepared
        self._ahead: int | None = None  # steps this fit still runs (see expect_steps)
        self._keyed: tuple[Any, str] | None = None  # (element spec, its input key)
        self._xla_fails = False
        #: Time the compiled loops' fetches (the input-bound report), decided when built.
        self.timed = timing()
        self.waited = 0.0

    def _variant(self, jit_compile: bool) -> Any:
        """The step compiled with or without XLA (each made once, traced when first used).

        XLA's variant calls the plain one: its trace reuses the plain graph's trace of the
        model's step (or makes it, kept for a fallback) rather than tracing Keras' Python a
        second time (CPU, the grid's text model: 0.52 -> 0.45 s to its first XLA step).
        Not when a plain trace made first, on its own, loops or branches: XLA cannot compile
        its gradients (``graph_ops.control_flow``), so XLA's variant traces the step itself.
        """
        if jit_compile not in self._variants:
            step = self.step
            if jit_compile and not (self._ops is not None and graph_ops.control_flow(self._ops)):
                plain = self._variant(False)
                step = lambda batch: plain(batch)  # noqa: E731
            self._variants[jit_compile] = _compiled(step, jit_compile)
        return self._variants[jit_compile]

    def _use(self, jit_compile: bool) -> None:
        self.jit_compile = jit_compile
        self.one_step = self._variant(jit_compile)

    @property
    def traces(self) -> int:
        """How many times this step's graphs were traced so far (the step and its loops).

        A call during which this grows paid for tracing and compiling, not only for its
        steps: the tuner of steps per call does not time it.
        """
        functions: list[Any] = [
            self.one_step,
            *self._variants.values(),
            *self._loops.values(),
            *self._rows_loops.values(),
        ]
        unique = {id(f): f for f in functions if hasattr(f, "experimental_get_tracing_count")}
        return (
            sum(f.experimental_get_tracing_count() for f in unique.values()) + self._retired_traces
        )

    def _retire(self, function: Any) -> None:
        """Keeps the traces of a function about to be replaced in :attr:`traces`."""
        if hasattr(function, "experimental_get_tracing_count"):
            self._retired_traces += function.experimental_get_tracing_count()
        for jit, variant in list(self._variants.items()):
            if variant is function:
                del self._variants[jit]

    def _trace(self, element_spec: Any, caller: str | None = None) -> Any:
        """Traces the model's step for batches of ``element_spec`` (once per spec).

        Keras' errors while tracing (a ``metrics`` dict naming no output, a loss unlike the
        outputs) reach the caller unchanged, noted with the batches and ``caller``. A
        ``tf.function`` whose first trace failed is half made (TensorFlow's "replace() should
        be called on dataclass instances" next): dropped, so the next call traces anew.
        """
        if self.jit_compile and not self._probed and composite_spec(element_spec):
            # the plain graph, as Keras on CPU; said, as for any step XLA cannot compile
            self._probed = True
            why = xla_rules.COMPOSITE.format(caller=caller or self.caller)
            self._refuse_xla("sparse or ragged input", why)
        try:
            concrete = self.one_step.get_concrete_function(element_spec)  # type: ignore[attr-defined]
        except Exception as err:
            traced = {j: v.experimental_get_tracing_count() for j, v in self._variants.items()}
            self._variants = {j: v for j, v in self._variants.items() if traced[j]}
            self.one_step = self._variant(self.jit_compile)
            if sys.version_info >= (3, 11):  # notes are new in 3.11; the error is unchanged
                err.add_note(trace_note(caller or self.caller, element_spec))
            raise
        if self._ops is None and (self.auto or self.jit_compile):  # once: a walk of the graph
            self._ops = graph_ops.op_types(concrete)  # (read by _variant, the probe, the trial)
        if self.jit_compile and not self._probed:
            if not self._probe_xla(element_spec):
                concrete = self.one_step.get_concrete_function(element_spec)  # type: ignore[attr-defined]
        return concrete

    def _batch_trace(self, spec: Any, caller: str | None = None) -> Any:
        """The step's trace for a batch of ``spec``, kept for the next batch of the same spec."""
        last = self._last_batch  # (looked up twice a `predict_on_batch`: 0.2 ms of its 0.56)
        if last is not None and last[0] is self.one_step and same_spec(last[1], spec):
            return last[2]
        concrete = self._trace(spec, caller)
        self._last_batch = (self.one_step, spec, concrete)
        return concrete

    def _probe_xla(self, element_spec: Any) -> bool:
        """Falls back to the plain graph if XLA cannot compile (or safely run) the step.

        The step is already traced for ``element_spec``; asking for its XLA HLO on zeros of a
        fitting shape reuses that trace (no second trace), and fails where XLA has no kernel.
        Nor is a ``tf.switch_case`` step compiled (``graph_ops.switches``). Under ``"auto"``
        the fallback is silent (XLA was only being tried).

        Returns:
            False when the step fell back to the plain graph.
        """
        self._probed = True
        if self._ops is not None and graph_ops.switches(self._ops):
            why = f"`{self.caller}` does not compile the model with XLA: {graph_ops.SWITCHES}"
            return self._refuse_xla("a switch_case step (XLA corrupted memory on one)", why)
        leaves = [s for s in tf.nest.flatten(element_spec) if s is not None]
        if not all(isinstance(s, tf.TensorSpec) for s in leaves):
            return True
        if any(None in s.shape.as_list()[1:] for s in leaves if s.shape.rank):
            return True  # zeros of a guessed size may not fit the model: no verdict on XLA
        zeros = tf.nest.map_structure(
            lambda s: (
                None
                if s is None
                else tf.zeros([2 if d is None else d for d in s.shape.as_list()], s.dtype)
            ),
            element_spec,
        )
        try:
            if self.mode is Mode.TRAIN and ANNOUNCE_XLA.get() and not self.auto:
                print(XLA_NOTICE, file=sys.stdout, flush=True)
            self.one_step.experimental_get_compiler_ir(zeros)(stage="hlo")  # type: ignore[attr-defined]
        except Exception as err:  # XLA reports unsupported ops in several error types
            reason = str(err).split("\n", 1)[0][:300]
            return self._refuse_xla(
                "XLA cannot compile the step",
                f"`{self.caller}` cannot compile the model with XLA ({reason})",
            )
        return True

    def _refuse_xla(self, reason: str, message: str) -> bool:
        """Runs the plain graph from now on, saying ``message`` unless XLA was only tried."""
        if not self.auto:
            instead = "It runs the plain TensorFlow graph instead; pass `jit_compile=False`"
            message += f". {instead} to `compile` to skip this check."
            warn(message, FitpipeWarning)
        self._xla_fails = True
        self._plain_instead(reason)
        return False

    def _build_loop(
        self, element_spec: Any, fetch: Fetch, rows: ResidentRows | None = None
    ) -> Callable[..., Any]:
        """Compiles the loop of ``n`` steps; with ``rows``, every one of them has a batch.

        Under ``"auto"`` with XLA on, the last, shorter batch of rows in memory runs the
        plain graph (see :data:`~fitpipe.training.step_loops.Short`).
        """
        concrete = self._trace(absent_as_none(element_spec))
        choice = self.xla_choice if self.auto and not self.jit_compile else None
        if choice is not None and choice.decided is None and self._ops is not None:
            choice.early = choice.early or graph_ops.scatters(self._ops)
            choice.loops = graph_ops.loops(self._ops)
            xla_rules.by_ops(choice, self._ops)  # (decided: nothing is recalled)
            remembered.recall_for(choice, concrete, placement.step_device())
        short = None
        if self.auto and self.jit_compile and rows is not None:
            short = (self._variant(False), rows.full_rows)
        step, short, outputs, restore = loop_outputs(self.one_step, short, concrete)
        out_specs = output_specs(outputs)
        self.held = held_ranks(out_specs)
        chunks = None if rows is None else rows.chunk_functions()
        if chunks is not None:  # rows in memory, dense: every batch exists
            body = chunked_loop(step, out_specs, chunks, short, self.collect)
        elif rows is not None and not self.collect:  # sparse or ragged: a batch at a time
            body = counted_loop(step, out_specs, present(fetch), short)
        elif self.collect:
            body = collect_loop(step, out_specs, fetch, self.timed, short)
        else:
            check = None if self.checks is None else self.checks.graph_check
            body = last_loop(step, out_specs, fetch, self.timed, short, check)
        return tf.function(restore(body), autograph=False, reduce_retracing=True)

    def __call__(self, iterator: Any, n: int, held: bool = False) -> tuple[int, Any]:
        """Runs up to ``n`` steps on batches from ``iterator``.

        Args:
            iterator: A ``tf.data`` iterator of batches, or a :class:`RowCursor` over rows held
                in memory (batches are then sliced inside the compiled loop).
            n: The most steps to run.
            held: The iterator is known to hold ``n`` more batches (see ``iterator_fetch``).

        Returns:
            ``(steps_run, outputs)``: the last step's outputs (train/test), or all steps'
            outputs concatenated along the batch axis (predict). ``steps_run`` is 0 when the
            input was exhausted (outputs are then meaningless).
        """
        if isinstance(iterator, RowCursor):  # rows in memory, or a streamed block at a time
            waited = iterator.waited
            count, outputs = iterator.run(self._call_rows, n, self.collect, self.held)
            if self.timed:
                self.waited += iterator.waited - waited
            return count, outputs
        if self.run_eagerly:
            count, outputs, waited = eager_steps(self.step, iterator, n, self.collect, self.held)
            self.waited += waited if self.timed else 0.0
            return count, outputs
        loop = self.prepare(iterator, held)
        assert loop is not None
        first, steps = tf.constant(0), tf.constant(n)
        count, outputs, waited, noted = self._last.call(loop, iterator, first, steps)
        self.waited += float(waited) if self.timed else 0.0
        found = self.checks is not None and int(noted[0]) >= 0  # nothing to read back without
        self.noted = (int(noted[0]), int(noted[1]), float(noted[2])) if found else None
        return int(count), outputs

    def prepare(self, iterator: Any, held: bool = False) -> Callable[..., Any] | None:
        """Traces the step for ``iterator``'s batches, if not yet done; returns the loop.

        ``held``: see :meth:`__call__` (a loop of its own, reading batches synchronously).

        Errors Keras raises while tracing the model's step come from here unchanged (callers
        word only the errors of running it). None when running eagerly.
        """
        if self.run_eagerly:
            return None
        if self.auto:
            self._select(iterator.element_spec)
        if isinstance(iterator, RowCursor):
            key = iterator.rows.key
            loop = self._rows_loops.get((key, self.jit_compile))
            if loop is None:
                fetch = iterator.rows.fetch_function()
                spec = iterator.rows.batch_spec(iterator.element_spec)
                loop = self._build_loop(spec, fetch, iterator.rows)
                iterator.trace(loop)
                self._rows_loops[(key, self.jit_compile)] = loop  # the variant it was built for
            return loop
        if self._spec != iterator.element_spec:
            for old in self._loops.values():
                self._retire(old)
            self._loops.clear()
            self._spec = iterator.element_spec
        fetch = iterator_fetch(iterator, held)
        key = (self.jit_compile, None if self.checks is None else self.checks.key, fetch)
        loop = self._loops.get(key)
        if loop is None:
            loop = self._loops[key] = self._build_loop(iterator.element_spec, fetch)
        return loop

    def _call_rows(self, cursor: RowCursor, n: int) -> tuple[int, Any]:
        if n <= 0:
            return 0, None
        if self.run_eagerly:
            outputs = [self.step(cursor.batch(cursor.position + i)) for i in range(n)]
            cursor.position += n
            return n, merge(outputs, self.collect, self.held)
        loop = self.prepare(cursor)
        assert loop is not None
        # (count, outputs), and a wait (always 0: rows in memory) from the collecting loop
        count, outputs = cursor.call(loop, n)[:2]
        cursor.position += int(count)
        return int(count), outputs

    def on_batch(self, data: Any, caller: str | None, spec: Any) -> Any:
        """Runs one step on one given batch (for the ``*_on_batch`` methods).

        Args:
            data: The batch, without absent leaves (``conversions.present_with_spec``).
            caller: The public method, for messages (None: the step's, e.g. ``fit``).
            spec: The batch's spec.
        """
        if self.auto:
            self._select(spec)  # the choice made for these inputs, or the plain graph
        step = self.one_step
        if not self.run_eagerly:  # Keras' errors while tracing reach the caller unchanged
            step = self._batch_trace(spec, caller)
        try:
            return step(data)
        except FitpipeError:
            raise
        except (tf.errors.OpError, ValueError, TypeError) as err:
            failure = step_error(err, caller or self.caller, spec, 0, self.step)
        raise failure
