"""A clock for the tuners' tests: it charges each compiled call what a model of the machine says.

No timing is asserted in the tests: the tuners (``fitpipe.training.tuning``) read an injected
clock, and :class:`FakeClock` makes every decision deterministic.
"""

from __future__ import annotations

import fitpipe


class FakeClock:
    """A clock for ``ExecutionSize(clock=...)`` that models the machine from trace counts.

    The epoch loop reads it before and after each call. A call during which the step
    function's trace count grew costs ``trace_seconds``; any other call costs ``overhead``
    plus, per step asked for, the cost of the variant that ran (XLA or not). It times the
    step of :attr:`mode` (the test sets it before ``evaluate`` or ``predict``).
    """

    def __init__(
        self,
        trainer: fitpipe.Trainer,
        plain: float = 1e-3,
        xla: float = 1e-3,
        trace_seconds: float = 3.5,
        overhead: float = 4e-4,
    ) -> None:
        self.trainer = trainer
        self.cost = {False: plain, True: xla}
        self.trace_seconds = trace_seconds
        self.overhead = overhead
        self.now = 0.0
        self.started: tuple[int, int] | None = None
        self.charged: list[tuple[bool, float]] = []  # (traced, seconds) per call
        self.sizes: list[tuple[bool, int]] = []  # (XLA, steps asked) of each untraced call
        #: (XLA, traced, steps asked, a trial due) of every call.
        self.calls: list[tuple[bool, bool, int, bool]] = []
        self.mode = "train"

    def __call__(self) -> float:
        function = self.trainer._state.functions[self.mode]
        size = self.trainer._state.fused
        assert size is not None
        if self.started is None:
            self.started = (function.traces, size.size)
            return self.now
        traces, steps = self.started
        self.started = None
        traced = function.traces != traces
        seconds = (
            self.trace_seconds
            if traced
            else self.overhead + steps * self.cost[function.jit_compile]
        )
        self.charged.append((traced, seconds))
        self.calls.append((function.jit_compile, traced, steps, function.trial_due))
        if not traced:
            self.sizes.append((function.jit_compile, steps))
        self.now += seconds
        return self.now
