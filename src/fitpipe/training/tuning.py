"""The tuners of a compiled step: steps per call (``"auto"``) and XLA under ``"auto"``.

Both decide from timings of compiled calls, never from calls during which the step was
traced (and so compiled): the step functions count their traces, and the epoch loop passes
``traced=`` with each timing. A timing counts only once it is *stable*: two consecutive
timings of the same kind within :data:`TOLERANCE` of each other (or, on a machine too noisy
for that, the fastest of :data:`MAX_TIMINGS`). The clock is injectable (``clock=``), so tests
drive both decisions with a fake clock and no real timing.

The default clock is the process's CPU time (all threads), not wall time: both decisions are
about the work a step costs (and Python's per call), and on a shared machine wall time
mostly measures the neighbours. Measured under a load of ~14 on 2 cores, wall time made the
plain graph's MLP step look 3-10x slower than XLA's (its executor hands ops between threads,
each hand-off waiting for a core) and settled calls at 8-16 steps, while per CPU second
the plain graph is the faster (``benchmarks/RESULTS.md``). A trainer whose step runs on an
accelerator gives both wall time instead (``fitpipe.training.placement.step_clock``): the
host's CPU seconds are there only its share of the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fitpipe.training.remembered import Remembered

__all__ = ["TOLERANCE", "ExecutionSize", "XlaChoice", "stable_timing"]

#: Two timings agree when the slower is at most this much slower than the faster.
TOLERANCE = 0.25
#: After this many timings that never agreed, the fastest counts (a noisy machine).
MAX_TIMINGS = 6


def stable_timing(timings: list[float]) -> float | None:
    """The timing a tuner may act on, or None while more are needed.

    Args:
        timings: Seconds (or seconds per step) of calls of one kind, oldest first.

    Returns:
        The faster of the last two timings when they agree within :data:`TOLERANCE`, the
        fastest of all after :data:`MAX_TIMINGS`, else None.
    """
    if len(timings) >= 2:
        a, b = timings[-2:]
        if max(a, b) <= min(a, b) * (1 + TOLERANCE):
            return min(a, b)
    if len(timings) >= MAX_TIMINGS:
        return min(timings)
    return None


class ExecutionSize:
    """How many steps each compiled call runs: fixed, or tuned while training (``"auto"``).

    The tuner grows the size until one call takes at least :attr:`TARGET_SECONDS`, long
    enough to time the steps rather than Python. A call during which the step was traced
    (and so compiled: counted by the step's trace counter, not guessed from its time) is not
    timed at all, nor is a short call (an input's end). Each size is timed until its timings
    are stable (:func:`stable_timing`), so a compile without a trace (XLA meeting a new batch
    shape) or a noisy neighbour does not stop the growth early. The size grows by the factor
    the target asks for (a power of two, from 2 to 64), so it settles within a few calls.

    Once settled (and once ``jit_compile="auto"`` times no variant soon: :meth:`lengthen`),
    the size is scaled once, by the nearest power of two, to calls of about
    :attr:`CALL_SECONDS` at the settled timing: the cost of a call beyond its steps
    (Python's 0.1-1 ms, and in TensorFlow's runtime up to ~10 ms of CPU a call for a Conv1D
    over 512 positions, ``benchmarks/RESULTS.md``) is then a few percent of the call or
    less, and no call of that length had to be timed twice (an epoch of 63 steps holds one
    such call: a short run would never settle, nor try XLA; and the trial of XLA for an
    embedding's gradient, due at once, is timed on shorter calls still). A trial due after
    that (a later ``fit``) runs on calls of the settled size again (:meth:`shorten`). Results
    do not depend on the size: only how often Python (and batch-level callbacks) run.

    Args:
        value: A positive int, or ``"auto"``.
        clock: Seconds, read before and after each call (default ``time.process_time``,
            the process's CPU time; tests give a fake one).

    """

    TARGET_SECONDS = 0.05
    CALL_SECONDS = 0.5
    MAX = 4096

    def __init__(self, value: int | str, clock: Callable[[], float] | None = None) -> None:
        self.auto = value == "auto"
        self.size = 1 if self.auto else int(value)
        self.clock: Callable[[], float] = clock or time.process_time
        self._timings: list[float] = []
        self._settled = not self.auto
        self._whole_epochs = False  # settled at an epoch's length (see fit_epoch)
        self._epoch_steps: int | None = None  # the steps of the epoch running (fit_epoch)
        self._call_seconds: float | None = None  # a settled call's timing, until lengthened
        self._settled_size: int | None = None  # the size that settled, once lengthened
        self._lengthened: int | None = None  # the lengthened size, while a trial runs shorter
        #: Calls recorded, and those of them that traced (shown by the benchmarks).
        self.calls = 0
        self.traced_calls = 0
        #: The stable timing (seconds per call) that decided each size tried.
        self.history: dict[int, float] = {}

    @property
    def settled(self) -> bool:
        """Whether the size is final (fixed, or tuned to the target)."""
        return self._settled

    @property
    def steady(self) -> bool:
        """Whether calls now time the steps more than Python: settled, and not one step each.

        Calls of one step (``steps_per_execution=1`` with a callback on batches) cost mostly
        Python and dispatch; ``jit_compile="auto"`` is not decided from them.
        """
        return self._settled and (self.auto or self.size > 1)

    def record(self, steps: int, seconds: float, traced: bool = False, trial: bool = False) -> None:
        """Feeds the tuner one call's measurements.

        Args:
            steps: Steps the call ran (a short call, at an input's end, is not timed).
            seconds: How long it took.
            traced: Whether the step was traced during the call (then it is not timed).
            trial: The call ran XLA on trial (``jit_compile="auto"``), not the variant the
                calls after the choice may run: not timed either.
        """
        self.calls += 1
        self.traced_calls += int(traced)
        if self._settled or steps < self.size or traced or trial:
            return
        self._timings.append(seconds)
        timing = stable_timing(self._timings)
        if timing is None:
            return
        self._timings = []
        self.history[self.size] = timing
        if timing >= self.TARGET_SECONDS or self.size >= self.MAX:
            self._settled, self._call_seconds = True, timing
            return
        factor = min(64.0, max(2.0, self.TARGET_SECONDS / max(timing, 1e-9)))
        self.size = min(self.MAX, self.size * 2 ** int(math.log2(factor)))

    def fit_epoch(self, steps: int | None) -> None:
        """Settles a tuned size that reached an epoch's ``steps``: calls are whole epochs.

        A larger size would not make calls longer (no call runs past its epoch), and calls
        shorter than the size are never timed, so the tuner would wait for ever. ``steps``
        is also kept for the size scaled up as it settles (see the class), which stops at
        the epoch's steps the same way.
        """
        self._epoch_steps = steps if steps is not None and steps > 0 else None
        if self.auto and not self._settled and steps is not None and 0 < steps <= self.size:
            self.size = steps
            self._settled = True
            self._timings = []
            self._whole_epochs = True

    def lengthen(self) -> None:
        """Scales a settled size once to calls of about :attr:`CALL_SECONDS` (see the class).

        By the nearest power of two, and at most to an epoch's steps. The epoch loop calls
        it once ``jit_compile="auto"`` will not time a variant soon, so both variants are
        timed at one size.
        """
        if self._lengthened is not None:  # a trial timed on shorter calls is over
            self.size, self._lengthened = self._lengthened, None
            return
        if self._call_seconds is None or self._whole_epochs:
            return
        longer = max(1.0, self.CALL_SECONDS / max(self._call_seconds, 1e-9))
        self._call_seconds, self._settled_size = None, self.size
        self.size = min(self.MAX, self.size * 2 ** round(math.log2(longer)))
        if self._epoch_steps is not None and self._epoch_steps <= self.size:
            self.size, self._whole_epochs = self._epoch_steps, True

    def shorten(self) -> None:
        """Calls run the size that settled while ``jit_compile="auto"`` times a variant.

        A trial that comes after the size was lengthened (a later ``fit`` whose steps ahead
        make it worth one) would otherwise compile XLA, and time it, on calls of about
        :attr:`CALL_SECONDS`: on the grid's Conv1D over 512 positions, whose XLA step is 2x
        slower, three such calls cost about 1.5 s. Calls of the settled size cost an eighth
        of that. :meth:`lengthen` goes back to the lengthened size once no trial is due.
        Timed on shorter calls, XLA only looks slower by the cost of a call, so a clear loss
        stands; a win is checked against the plain graph timed again on the same size
        (``XlaChoice``).
        """
        if self._lengthened is None and self._settled_size is not None:
            if self._settled_size < self.size:
                self._lengthened, self.size = self.size, self._settled_size

    def speed_up(self, factor: float) -> None:
        """Scales a size tuned to the target when each step became ``factor`` times faster.

        ``jit_compile="auto"`` decides XLA after the size settled on the plain step's
        timings; calls of the faster step would otherwise last a fraction of the target
        (16 steps of 4 ms, then of 1.2 ms). The size moves by the nearest power of two.
        """
        if not (self.auto and self._settled) or factor <= 0:
            return  # a size the user chose
        scale = 2 ** round(math.log2(factor))

        def scaled(size: int) -> int:
            return max(1, min(self.MAX, size * scale))

        if self._settled_size is not None:
            self._settled_size = scaled(self._settled_size)
        if self._whole_epochs:
            return  # calls of whole epochs already (after a trial's shorter ones, `lengthen`)
        if self._lengthened is not None:  # a trial's shorter calls: `lengthen` restores it
            self._lengthened = scaled(self._lengthened)
        else:
            self.size = scaled(self.size)

    def report(self) -> dict[str, Any]:
        """What the tuner chose and the timings that decided it (for ``Trainer.tuning``)."""
        return {
            "steps_per_execution": self.size,
            "auto": self.auto,
            "settled": self._settled,
            "calls": self.calls,
            "traced_calls": self.traced_calls,
            "seconds_per_call": dict(self.history),
        }


class XlaChoice:
    """Decides ``jit_compile="auto"`` for one step and one input spec by timing both variants.

    The step starts as the plain TensorFlow graph (its first step is not held up by an XLA
    compilation). Once the steps per call have settled, untraced full calls are timed per
    step until stable; then the step is compiled with XLA (that call traces, so it is not
    timed) and its calls are timed the same way. XLA is kept only when it is at least
    :attr:`MARGIN` faster per step, so timings within noise never flip the choice.

    When XLA wins or loses by less than :attr:`RECHECK_BELOW`, or wins on calls shorter
    than those of the plain graph's timing (a trial after the calls were lengthened runs on
    calls of the size that settled, where a call's own cost weighs more: a clear win in CPU
    time could still lose in wall time by that cost alone), the plain graph (already
    compiled) is timed again before the choice, on calls of XLA's size, and that timing
    decides: the first plain
    calls of a fresh model can run slow (a Conv1D over 512 positions timed 28-40 ms of CPU a
    plain step in its first calls, 24-32 ms when timed again, against XLA's 21-25), and
    timings taken calls apart can differ either way on a loaded machine (a Conv1D over
    2,000,000 rows: plain 0.67 ms a step against XLA's 0.76 in one grid run, 0.82 against
    0.52 in the next). A clear result (the text model's 3-7x win, a 2x loss over 512
    positions) stands without the extra plain calls, which cost nothing beyond delaying a
    win: they run the graph the step runs anyway when XLA loses.

    XLA is tried only once the plain graph's timed calls so far, plus what the steps still
    ahead in this ``fit`` would take at the plain speed, add up to :attr:`TRIAL_AFTER_TRACES`
    times the plain graph's first call (the CPU seconds of the call that traced and compiled
    it, tracing before the call included), or to :attr:`TRIAL_AFTER_SECONDS` when that is
    less or the first call was not seen. Compiling XLA costs 3.5-4x that first call on the
    grid's models (0.9-1.1 s of CPU against 0.25-0.29 s for a Conv1D), which a short run
    never pays back: a 2-epoch fit of 64,000 rows ran at a quarter of its plain speed when
    the trial compiled inside it. At 50 first calls (9-18 s on the grid's models) a trial that
    does not pay costs about a tenth of the run at most: over 512 positions, XLA 2x slower,
    200,000 rows for 8 epochs took 22.1-22.3 s of CPU against 20.8-21.8 s without a trial.
    One that pays can pay a lot: over 32 positions at batch 32, XLA steps 2.6x faster, and
    640,000 rows for 2 epochs took 7.0 s against 14.8-14.9 s (the fixed 60 s threshold,
    before, never tried it). An embedding's gradient without XLA (5-7 ms a step against
    XLA's 1.3 ms) does not wait at all (below). Short runs keep the plain graph.

    A step that runs a loop of its own (``graph_ops.loops``: a recurrent layer, whose plain
    graph runs each time step's small ops one at a time) waits for
    :attr:`TRIAL_AFTER_LOOP_TRACES` first calls instead. On CPU, XLA ran such steps
    1.95-3.1x faster where their ops are small (LSTM, GRU and SimpleRNN of 32 units over
    20-100 time steps at batch 32) and 1.04-1.3x where they are not (128-256 units, or
    batches of 256-1,024), for a compilation of 2.9-3.5 first calls (1.3-1.9 s; 5.6 for an
    LSTM of 32 units over 64 steps at batch 256, 7 for one of 128 over 100). At 50 first
    calls (27-31 s here) a 3-epoch run of 64,000 rows of the small LSTM never tried it and
    took 20-33 s of CPU against Keras' 11-12 s with XLA; at 10 it tries it in its first
    seconds (11-12 s). A trial that does not pay costs up to about half a run at the
    threshold, less in longer ones: the grid's LSTM over 64 steps at batch 256, 3 epochs of
    16,000 rows, took 1.2-1.3x the CPU time it took without it.

    A step that scatters a gathered gradient back (an embedding's sparse gradient:
    ``UnsortedSegmentSum`` or ``ResourceScatter*`` in its graph, see :attr:`early`) tries XLA
    as soon as its plain timing is stable (on calls of :attr:`EARLY_CALL_SECONDS` or more,
    before the steps per call settle; the steps' tuner does not time XLA's calls on trial),
    whatever the length of the run: on CPU, the plain
    step ran 1.8-7x more CPU time per sample than XLA's fused one (the grid's Embedding +
    pooling model: batches of 32 to 1,024 under Adam; SGD, RMSprop and Adagrad at batch 256),
    so even a short run wins back the compilation. The trial still measures, and keeps XLA
    only when it is faster.

    So does a step on an accelerator (``early=True``; ``fitpipe.training.placement``): Keras'
    own ``"auto"`` compiles with XLA on a GPU from the first step, where it ran its MLP
    step 2.0x faster than the plain graph (2,000,000 x 512 rows on an H200), and the CPU
    seconds the threshold counts are there only the host's share of the work. And so does a
    test or predict step whose train step chose XLA (see ``StepFunction``'s ``decisions``).

    A choice measured in an earlier process for the same step on this machine
    (:attr:`memory`, ``fitpipe.training.remembered``) moves the trial: a plain graph
    remembered faster is decided at once, without XLA; XLA remembered faster is tried as
    soon as the plain timing is stable, when the steps ahead win back its compilation.

    Args:
        early: Try XLA as soon as the plain timing is stable (see :attr:`early`).
    """

    MARGIN = 0.1
    TRIAL_AFTER_SECONDS = 60.0
    #: XLA is tried once the run's plain seconds reach this many times the plain graph's
    #: first call, when that comes before :attr:`TRIAL_AFTER_SECONDS` (see the class).
    TRIAL_AFTER_TRACES = 50.0
    #: The same for a step that runs a loop of its own (see the class).
    TRIAL_AFTER_LOOP_TRACES = 10.0
    #: An early trial times calls of at least this many seconds before the steps per call
    #: settle (see :meth:`record`).
    EARLY_CALL_SECONDS = 0.01
    #: XLA faster by less than this factor: the plain graph is timed once more before the
    #: choice (see :meth:`record`).
    RECHECK_BELOW = 1.5

    def __init__(self, early: bool = False) -> None:
        #: The variant the step runs now: True for XLA.
        self.variant = False
        #: The choice once made (None while measuring).
        self.decided: bool | None = None
        #: Why the choice was made (``"measured"``, or why XLA was not tried).
        self.reason = ""
        self.timings: dict[bool, list[float]] = {False: [], True: []}
        self.per_step: dict[bool, float] = {}
        #: Wall seconds per step of the same calls, when given (see :meth:`record`).
        self.wall: dict[bool, list[float]] = {False: [], True: []}
        self.plain_seconds = 0.0  # timed seconds of the plain graph's calls
        #: Seconds of each variant's first call, which traced and compiled it (absent: not
        #: seen; the plain graph traced before this input's choice existed).
        self.first_calls: dict[bool, float] = {}
        #: Try XLA as soon as the plain timing is stable (the step scatters gradients, or
        #: runs on an accelerator).
        self.early = early
        #: The step runs a loop of its own: XLA is tried sooner (see the class).
        self.loops = False
        #: Whether the plain graph is being (or was) timed again after XLA.
        self.rechecked = False
        #: The steps per call of each variant's last timed call.
        self.timed_at: dict[bool, int] = {}
        #: The step's key on this machine, and what an earlier process measured for it
        #: (``fitpipe.training.remembered``; None: not read, or nothing kept).
        self.key: str | None = None
        self.memory: Remembered | None = None

    def record(
        self,
        steps: int,
        seconds: float,
        traced: bool,
        size: int,
        settled: bool,
        asked: int | None = None,
        ahead: int | None = None,
        wall: float | None = None,
    ) -> None:
        """Feeds one call of the current variant; may switch the variant or decide.

        Timings are per step, so the last call of an epoch counts too when it runs at least
        half the size (calls of an epoch of 250 steps at 128 per call: 128 and 122 steps).

        Args:
            steps: Steps the call ran.
            seconds: How long it took.
            traced: Whether the step traced (or compiled) during the call: not timed.
            size: The steps per call (calls of under half of it are not timed).
            settled: Whether the steps per call are final. Before that only an early
                trial times calls, of :attr:`EARLY_CALL_SECONDS` or more: waiting for the
                size to settle (calls of 50 ms) ran the grid's text model at batch 256 for
                227 plain steps, 4.5x slower than XLA's, where 36 now run.
            asked: The steps asked of the call (default ``steps``); a call that ran fewer
                (its input ended) is not timed.
            ahead: The steps still to run in this ``fit`` after this call, when known.
            wall: The call's wall seconds, when ``seconds`` is CPU time: XLA is then kept
                only when its calls are not longer to wait for either. Plain kernels use
                every core, XLA's CPU code often fewer: Keras ran that Conv1D with XLA at
                about the plain graph's CPU time a sample but 1.5x its wall time.
        """
        if traced and self.variant not in self.first_calls and not self.timings[self.variant]:
            self.first_calls[self.variant] = seconds  # its trace and compile, and its steps
        short = steps < (steps if asked is None else asked) or 2 * steps < size
        timed = settled or (self.early and seconds >= self.EARLY_CALL_SECONDS)
        if self.decided is not None or traced or not timed or short or steps <= 0:
            return
        timings = self.timings[self.variant]
        timings.append(seconds / steps)
        self.timed_at[self.variant] = size
        if wall is not None:
            self.wall[self.variant].append(wall / steps)
        if not self.variant:
            self.plain_seconds += seconds
        timing = stable_timing(timings)
        if timing is None:
            return
        self.per_step[self.variant] = timing
        if not self.variant and not self.rechecked:
            self._plain_timed(ahead)
            return
        plain, xla = self.per_step[False], self.per_step[True]
        faster = xla <= plain * (1 - self.MARGIN)
        close = plain < xla * self.RECHECK_BELOW and xla < plain * self.RECHECK_BELOW
        shorter = self.timed_at.get(True, 0) < self.timed_at.get(False, 0)  # XLA's calls
        if self.variant and (close or (faster and shorter)) and not self.rechecked:
            self.rechecked, self.variant = True, False
            self.timings[False] = []  # timed again: early plain calls can run slow
            self.wall[False] = []
            return
        plain_wall, xla_wall = self.wall_per_step(False), self.wall_per_step(True)
        if faster and plain_wall is not None and xla_wall is not None and xla_wall > plain_wall:
            faster = False  # less CPU, but longer to wait for: plain kernels use every core
        self.decide(faster, "measured")

    def _plain_timed(self, ahead: int | None) -> None:
        """The plain graph's timing is stable: XLA is tried next when due (see the class)."""
        expected = self.plain_seconds + max(0, ahead or 0) * self.per_step[False]
        remembered = self.memory is not None and self.memory.pays_back(self.per_step[False], ahead)
        if self.early or expected >= self.trial_after or remembered:
            self.variant = True  # the next call compiles with XLA

    @property
    def trial_after(self) -> float:
        """The plain seconds (timed and ahead) after which XLA is tried (see the class)."""
        first = self.first_calls.get(False)
        if first is None:
            return self.TRIAL_AFTER_SECONDS
        traces = self.TRIAL_AFTER_LOOP_TRACES if self.loops else self.TRIAL_AFTER_TRACES
        return min(self.TRIAL_AFTER_SECONDS, traces * first)

    def settled_at(self, seconds_per_step: float, ahead: int | None, size: int) -> None:
        """Takes the steps-per-call tuner's stable timing of the plain graph as this one's.

        The tuner timed calls at the size it settled on until stable; timing them again
        before the trial cost calls an epoch may not have (an Embedding + pooling model at
        64,000 rows and batch 32 settled at 512 steps a call in its first epoch, then tried
        XLA only in the next ``fit``, which paid for the compilation).
        """
        if self.decided is not None or self.variant or self.rechecked or self.timings[False]:
            return
        self.timings[False].append(seconds_per_step)
        self.per_step[False] = seconds_per_step
        self.timed_at[False] = size
        self._plain_timed(ahead)

    @property
    def trial_due(self) -> bool:
        """Undecided, and trying XLA at once (:attr:`early`) or timing a variant for it."""
        return self.decided is None and (self.early or self.variant or self.rechecked)

    def wall_per_step(self, variant: bool) -> float | None:
        """The wall seconds per step of ``variant``'s last timed calls (None: not given)."""
        return min(self.wall[variant][-2:], default=None)

    def decide(self, xla: bool, reason: str) -> None:
        """Makes the choice final (also without timings: XLA cannot compile the step)."""
        self.decided = self.variant = xla
        self.reason = reason

    def report(self) -> dict[str, Any]:
        """The choice and the seconds per step that decided it."""
        return {
            "xla": self.variant,
            "decided": self.decided is not None,
            "reason": self.reason or "measuring",
            "early_trial": self.early,
            "remembered": None if self.memory is None else ("xla" if self.memory.xla else "plain"),
            "loop_step": self.loops,
            "plain_rechecked": self.rechecked,
            "plain_first_call_seconds": self.first_calls.get(False),
            "xla_first_call_seconds": self.first_calls.get(True),
            "trial_after_seconds": self.trial_after,
            "plain_seconds_per_step": self.per_step.get(False),
            "xla_seconds_per_step": self.per_step.get(True),
            "plain_wall_per_step": self.wall_per_step(False),
            "xla_wall_per_step": self.wall_per_step(True),
        }
