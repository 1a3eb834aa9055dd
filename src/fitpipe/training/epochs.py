"""Drives a pipeline through epochs, ``steps_per_execution`` batches per compiled call.

Epoch semantics follow Keras: without ``steps_per_epoch`` every epoch is one full pass over a
fresh iterator; with it, the iterator carries over between epochs and is restarted only when
the data runs out, so consecutive epochs see consecutive batches. What an input that runs out
is told (warnings, the no-batch error) is worded in :mod:`fitpipe.training.ran_out`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

from fitpipe.adapters import RowBlocks, count_dataset
from fitpipe.errors import FitpipeError, FitpipeWarning, warn
from fitpipe.pipeline import Pipeline, device_bytes
from fitpipe.training import placement
from fitpipe.training.batch_checks import BatchChecks
from fitpipe.training.block_cursor import BlockCursor
from fitpipe.training.input_report import EpochTiming
from fitpipe.training.ran_out import (
    RAN_OUT,
    RAN_OUT_OF_STEPS,
    RAN_OUT_VALIDATING,
    RAN_SHORT,
    no_step_error,
    warn_no_step,
)
from fitpipe.training.step_errors import step_error
from fitpipe.training.step_loops import RowCursor
from fitpipe.training.steps import StepFunction
from fitpipe.training.tuning import ExecutionSize

__all__ = [
    "RAN_OUT_OF_STEPS",
    "RAN_OUT_VALIDATING",
    "EpochRunner",
    "no_step_error",
    "warn_no_step",
]


def _held(dataset: Any) -> float:
    """The batches ``dataset`` is known to hold: ``tf.data``'s cardinality (exact when known).

    0 when unknown (a generator, a ``filter``) or not a ``tf.data.Dataset``; infinite for a
    repeated dataset.
    """
    if not isinstance(dataset, tf.data.Dataset):
        return 0.0
    count, finite = count_dataset(dataset)
    return math.inf if not finite else float(count or 0)


class EpochRunner:
    """Runs epochs of one pipeline through one step function.

    Args:
        pipeline: The batches.
        steps_per_epoch: Steps per epoch; None for one full pass; -1 for "until the data
            ends" on inputs that never end.

    """

    def __init__(self, pipeline: Pipeline, steps_per_epoch: int | None) -> None:
        self.pipeline = pipeline
        self.steps_per_epoch = steps_per_epoch if steps_per_epoch != -1 else None
        self.forever = steps_per_epoch == -1
        self._iterator: Iterator[Any] | RowCursor | None = None
        self._seen = 0
        self._passes = 0
        self._skip = 0
        self.ran_nothing = False
        self.ran_out = RAN_OUT  # the warning of a pass cut short (another for validation)
        #: Value checks of the batches (labels in range, finite weights), or None.
        self.checks: BatchChecks | None = None
        self._rows_checked = False
        self._checked_for: tuple[tuple[int, int], Any, Any] | None = None
        self._staged: Any = None  # the distributed dataset of checked batches (a strategy's)
        #: What the last :meth:`run` measured (see ``fitpipe.training.input_report``).
        self.timing: EpochTiming | None = None
        self._compiling = 0.0  # seconds of this run's calls that traced the step ...
        self._compiling_waited = 0.0  # ... and their waits for input
        #: Full passes the caller will run after the coming one: a streamed input in blocks
        #: reads the next pass's first block while this pass's last one trains.
        self.passes_after = 0
        self._pending: BlockCursor | None = None  # the next pass, reading ahead
        #: The accelerator the step runs on (rows in memory are copied there), or None, and
        #: the bytes of rows copied there (named when the step runs out of memory).
        self.device = placement.step_device()
        self.device_bytes = 0
        self._stopped: list[BlockCursor] = []  # passes dropped, their threads perhaps running
        self._held = 0.0  # batches the current tf.data iterator is known to hold still

    @property
    def num_batches(self) -> int | None:
        """Steps of the coming epoch, or None when unknown."""
        if self.steps_per_epoch:
            return self.steps_per_epoch
        return None if self.forever else self.pipeline.num_batches

    def input_ended(self) -> bool:
        """Whether the input, read once, has no batch left for the coming epoch.

        Its passes take only the batches they train on (``expect``): a batch it still has
        is one the coming epoch takes.
        """
        return self.pipeline.ended()

    def restart(self) -> None:
        """Makes the next epoch start from the beginning of the input."""
        self._drop()

    @property
    def position(self) -> tuple[int, int]:
        """``(pass, batches_read)``: where the input stands, to resume from after a restart."""
        if self._iterator is None:
            return self._passes, 0
        return self._passes - 1, self._seen

    def resume(self, pass_index: int, seen: int) -> None:
        """Makes the next epoch read pass ``pass_index`` of the input from batch ``seen``."""
        self.close()
        self._passes, self._skip = pass_index, seen

    def close(self) -> None:
        """Stops reading: the pass read ahead, and the current pass's blocks thread.

        A pass read ahead for an epoch that will not run is dropped, and a call ends with no
        reading thread of its own left (``fit``, ``evaluate`` and ``predict`` close their
        runners last).
        """
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.close()
        self._drop()
        stopped, self._stopped = self._stopped, []
        for cursor in stopped:
            cursor.close()

    def _drop(self) -> None:
        """Lets go of the current pass; its blocks thread (if any) is stopped.

        Not waited for here (a validation with ``validation_steps`` drops its pass every
        epoch, its thread perhaps converting a block): :meth:`close` waits for it.
        """
        current, self._iterator, self._held = self._iterator, None, 0.0
        if isinstance(current, BlockCursor):
            current.stop()
            self._stopped = [c for c in self._stopped if c.reading]
            self._stopped.append(current)

    def _fresh(self, function: StepFunction) -> None:
        skip, self._skip, self._held = self._skip, 0, 0.0
        # (``predict``'s loop, which collects outputs, runs none: a ``tf.data`` stage checks)
        in_loop = function.checks_in_loop and not (function.run_eagerly or function.collect)
        function.checks = None
        rows = self.pipeline.rows_on(self.device)
        if rows is not None:  # rows in memory: batches are sliced inside the compiled loop
            self.device_bytes = device_bytes(rows, self.pipeline.rows)  # 0: the host's own
            if self.checks is not None and not self._rows_checked:
                if parts := self.checks.parts_read():  # (only the leaves a rule reads)
                    self.checks.check(rows.as_batch(parts))
                self._rows_checked = True  # the rows never change: checked once, as a whole
            cursor = RowCursor(rows, self._passes, self.pipeline.element_spec)
            cursor.position = skip
            self._iterator = cursor
        elif self.pipeline.row_blocks is not None:  # streamed in blocks: sliced in the loop too
            self._iterator = self._next_pass(self.pipeline.row_blocks, skip)
        else:
            self.pipeline.seek(self._passes)
            dataset, skipped = self._pass_dataset(function, skip, in_loop)
            iterator = iter(dataset)
            for _ in range(0 if skipped else skip):  # a distributed dataset: batch by batch
                next(iterator)
            self._iterator, self._held = iterator, _held(dataset)
        self._passes += 1
        self._seen = skip

    def _next_pass(self, row_blocks: Callable[[], RowBlocks], skip: int) -> BlockCursor:
        """The cursor of the coming pass (read ahead when it was), past ``skip`` batches.

        With :attr:`passes_after` full passes to come, the pass after it is made too: its
        thread reads once this pass's blocks are all read.
        """
        cursor, self._pending = self._pending, None
        if cursor is None or skip:
            if cursor is not None:
                cursor.close()
            cursor = self._blocks(row_blocks, self._passes, skip)
            cursor.skip(skip)
        ahead = self.passes_after > 0 and not cursor.batched  # its source decides each pass
        if ahead and not self.steps_per_epoch and not self.forever:
            self._pending = self._blocks(row_blocks, self._passes + 1, 0, cursor)
        return cursor

    def _blocks(
        self,
        row_blocks: Callable[[], RowBlocks],
        pass_index: int,
        skip: int,
        after: BlockCursor | None = None,
    ) -> BlockCursor:
        """A cursor over pass ``pass_index``'s blocks (checked from batch ``skip`` on).

        Its thread reads once ``after``'s blocks are all read (None: at once).
        """
        self.pipeline.seek(pass_index)
        scanned = self.pipeline.block_checks is not None  # arrays, scanned whole before
        python = self.checks.in_python(skip, scanned) if self.checks is not None else None
        self.pipeline.check_batches(python, blocks=True)  # on the blocks, before class weights
        pipeline = self.pipeline
        return BlockCursor(row_blocks(), pipeline.element_spec, pipeline.block_spec, after)

    def _pass_dataset(self, function: StepFunction, skip: int, in_loop: bool) -> tuple[Any, bool]:
        """The pass's dataset, each batch checked as it passes; and whether ``skip`` is done.

        Checked by the source, in Python, when it can (``Checkable``); else by the compiled
        loop, or by a ``tf.data`` stage. Under a strategy the stage goes before the batches
        are split over the replicas (``DistributedPipeline.staged``), numbered from 0: the
        skipped batches of a distributed pass are read one by one.
        """
        dataset = self.pipeline.dataset
        skipped = hasattr(dataset, "skip") and skip > 0
        dataset = dataset.skip(skip) if skipped else dataset
        staged = getattr(self.pipeline, "staged", None)
        if not isinstance(dataset, tf.data.Dataset) and staged is None:
            return dataset, skipped
        python = self.checks.in_python(skip) if self.checks is not None else None
        if self.pipeline.check_batches(python) or self.checks is None:
            return dataset, skipped
        if staged is not None:  # built once: the stage's tracing costs ~0.1 s
            if self._staged is None:
                self._staged = staged(lambda data: self.checks.on_dataset(data, 0))
            return self._staged, skipped
        if in_loop:
            function.checks = self.checks
            return dataset, skipped
        return self._checked(dataset, skip), skipped

    def _checked(self, dataset: tf.data.Dataset, skip: int) -> tf.data.Dataset:
        """``dataset`` with the batch checks, built once per dataset (tracing costs ~0.1 s)."""
        assert self.checks is not None
        key = (id(dataset), skip)
        if self._checked_for is None or self._checked_for[0] != key:
            self._checked_for = (key, dataset, self.checks.on_dataset(dataset, skip))
        return self._checked_for[2]

    def _prepare(self, function: StepFunction, held: bool) -> None:
        """Prepares the call's loop (traces it for new inputs; a lookup once traced)."""
        begin = time.perf_counter()
        try:  # tracing: what Keras raises here reaches the user unchanged
            function.prepare(self._iterator, held)
        except BaseException:
            self._drop()
            raise
        self._compiling += time.perf_counter() - begin  # tracing (a no-op once traced)

    def _failure(self, err: BaseException, function: StepFunction) -> BaseException:
        """What a failed call raises: a value check's error, the input's, or the step's."""
        spec, step = self.pipeline.element_spec, function.step
        return (
            self._check_error(err, function)
            or self.pipeline.take_error()
            or step_error(err, function.caller, spec, self.device_bytes, step)
        )

    def _call(self, function: StepFunction, n: int, execution: ExecutionSize) -> tuple[int, Any]:
        held = n <= self._held  # read synchronously (see `step_loops.iterator_fetch`)
        # Timed from before the preparation: a call after a trace there compiles what was
        # traced, so it counts as traced (not timed), and its seconds, the trace's included,
        # are the variant's first call (`XlaChoice.first_calls`).
        traces, start = function.traces, execution.clock()
        self._prepare(function, held)
        wall = time.perf_counter()
        trial = function.xla_on_trial
        waited = function.waited
        failure: BaseException | None = None
        try:
            count, outputs = function(self._iterator, n, held)
            self._held -= count
        except FitpipeError:
            self._drop()
            raise
        except (tf.errors.OpError, ValueError, TypeError) as err:
            failure = self._failure(err, function)
        if failure is not None:
            # Raised outside the `except` block, with the iterator dropped: no reference cycle
            # through TensorFlow's error keeps the input's threads alive.
            self._drop()
            raise failure.with_traceback(failure.__traceback__)
        self._warn_noted(function)
        seconds, traced = execution.clock() - start, function.traces != traces
        # Wall time beside the default CPU clock (an injected clock decides alone).
        walled = time.perf_counter() - wall if execution.clock is time.process_time else None
        if traced:  # a compile is no input wait: the call counts neither way
            self._compiling += time.perf_counter() - wall
            self._compiling_waited += function.waited - waited
        size, settled = execution.size, execution.steady  # as they were for this call
        execution.record(count, seconds, traced=traced, trial=trial)
        timing = execution.history.get(size) if execution.steady and not settled else None
        plain = None if timing is None else timing / size  # this call settled the size
        faster = function.record(count, seconds, traced, size, settled, n, walled, plain)
        if faster is not None:  # XLA chosen: calls of as many steps would now be too short
            execution.speed_up(faster)
        if function.trial_due:  # both variants timed on calls of the size that settled
            execution.shorten()
        else:
            execution.lengthen()  # settled: calls of ~0.5 s (once; a no-op until settled)
        return count, outputs

    def _check_error(self, err: BaseException, function: StepFunction) -> Any:
        """The batch checks' error for a failed call, or None (not a check's failure)."""
        if self.checks is None:
            return None
        offset = self._seen if function.checks is not None else 0  # the loop's: from the call
        return self.checks.error_of(err, offset)

    def _warn_noted(self, function: StepFunction) -> None:
        """Warns once of a bad value a check noted under ``check="warn"`` (see BatchChecks)."""
        if self.checks is None:
            return
        if function.checks is not None and function.noted is not None:
            index, rule, value = function.noted  # the loop's: batch ``index`` of the call
            self.checks.note(self._seen + index, rule, value)
        self.checks.warn_found()

    def run(
        self,
        function: StepFunction,
        execution: ExecutionSize,
        before: Callable[[int], None],
        after: Callable[[int, Any], None],
        stop: Callable[[], bool],
        first: int = 0,
    ) -> tuple[int, Any]:
        """Runs one epoch.

        Args:
            function: The compiled step.
            execution: How many steps each compiled call runs.
            before: Called with the first step index of each call.
            after: Called with the last step index of each call and its outputs.
            stop: Asked after each call; True ends the epoch early. Under
                ``steps_per_execution="auto"`` it is asked before each call too: True then
                (set by ``on_epoch_begin``, ``on_test_begin``, ...) makes the call one step,
                the step Keras (one step a call) runs before it looks at the flag.
            first: Steps of this epoch already run (a run resumed mid-epoch).

        Returns:
            ``(steps_run, last_outputs)``. :attr:`ran_nothing` then tells whether the input
            ran out before the epoch's first step (no metric may be reported for it); the
            usual "ran out of data" warning is then left to the caller.

        """
        began, waited = time.perf_counter(), function.waited
        stages, self._compiling, self._compiling_waited = self.pipeline.stage_seconds(), 0.0, 0.0
        known = self.pipeline.num_batches
        limit = self.steps_per_epoch or (None if self.forever else known)
        fresh = self._iterator is None or not self.steps_per_epoch
        ended = fresh and self._resumed_at_pass_end(known, first)
        limit = first if ended else limit  # (the epoch ended with its pass: no step left)
        # The batches asked for, told before a fresh pass reads (a resumed one reads its skips)
        skipped = self._skip if fresh else 0
        self.pipeline.on_epoch_begin()  # (also when the pass goes on: once every epoch)
        self.pipeline.expect(None if limit is None else limit - first + skipped)
        if fresh and not ended:
            self._fresh(function)
        assert ended or self._iterator is not None
        in_memory = isinstance(self._iterator, RowCursor) and self._iterator.in_memory
        step, outputs = first, None
        while limit is None or step < limit:
            if self.steps_per_epoch and known and self._seen >= known:
                self._ran_out(step == first)
                break
            n = execution.size if limit is None else min(execution.size, limit - step)
            if execution.auto and stop():  # set before the call (say at an epoch's begin):
                n = 1  # one step, the step Keras runs (one a call) before it looks at the flag
            before(step)
            count, last = self._call(function, n, execution)
            if count:
                self._seen += count
                step += count
                outputs = last
                after(step - 1, last)
            if count < n:
                self._drop()
                self._ended_early(step, first, limit)
                break
            if stop():
                break
        if known and self._seen >= known:
            self._drop()
        # No step, and not because a resumed epoch was already complete: the caller warns or
        # raises (it knows what stops), and reports no metric for the epoch.
        self.ran_nothing = step == first and (first == 0 or limit is None or first < limit)
        now = self.pipeline.stage_seconds()
        self.timing = EpochTiming(
            steps=step - first,
            seconds=max(0.0, time.perf_counter() - began - self._compiling),
            waited=function.waited - waited - self._compiling_waited,
            stages={name: now[name] - stages.get(name, 0.0) for name in now},
            in_memory=in_memory,
        )
        return step, outputs

    def _resumed_at_pass_end(self, known: int | None, first: int) -> bool:
        """Whether a resumed epoch stopped where its pass ended, under ``steps_per_epoch``.

        A position at the end of a pass is the start of the next: the uninterrupted run ends
        the epoch there (with the "ran out of data" warning when steps were left) and its
        next epoch reads the next pass. The runner is moved to that pass's start.
        """
        if not (self.steps_per_epoch and known and self._skip >= known):
            return False
        self._passes, self._skip = self._passes + 1, 0
        if first == 0:
            return False  # an epoch to run from the next pass's start
        if first < self.steps_per_epoch:
            self._ran_out(False)
        return True

    def _ended_early(self, step: int, first: int, limit: int | None) -> None:
        """Warns of a pass that ended at ``step``, before the epoch's ``limit``.

        Under ``steps_per_epoch`` (or ``steps``), or before the first step, as
        :meth:`_ran_out` says; otherwise ``limit`` is the input's length, which promised more.
        """
        if self.steps_per_epoch or step == first:
            self._ran_out(step == first)
        elif limit is not None:
            warn(RAN_SHORT.format(steps=step, known=limit), FitpipeWarning)

    def _ran_out(self, before_first_step: bool) -> None:
        if not before_first_step:
            warn(self.ran_out, FitpipeWarning)
