"""``jit_compile="auto"``'s side of a step function: XLA chosen by measurement, per input.

:class:`AutoXla` is the part of :class:`~fitpipe.training.steps.StepFunction` that keeps one
:class:`~fitpipe.training.tuning.XlaChoice` per input (by :func:`input_key`), runs the variant
chosen or being timed for the input prepared, and feeds each call's timing to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fitpipe.schemas import Mode
from fitpipe.training import remembered, xla_rules
from fitpipe.training.conversions import composite_spec, input_key, same_spec
from fitpipe.training.tuning import XlaChoice

__all__ = ["AutoXla"]


class AutoXla:
    """The choice of XLA under ``"auto"``, mixed into the step function.

    The step function sets these attributes in its ``__init__`` and provides :meth:`_use`.
    """

    auto: bool
    mode: Mode
    _choices: dict[str, XlaChoice]
    _choice: tuple[str, XlaChoice] | None
    _decisions: dict[str, bool]
    _keyed: tuple[Any, str] | None
    _ahead: int | None
    _xla_fails: bool
    _use: Callable[[bool], None]

    @property
    def xla_choice(self) -> XlaChoice | None:
        """Under ``"auto"``, the choice for the last input prepared (None before any)."""
        return self._choice[1] if self._choice is not None else None

    def _select(self, element_spec: Any) -> None:
        """Under ``"auto"``: runs the variant chosen (or being timed) for this input."""
        if self._keyed is None or not same_spec(self._keyed[0], element_spec):
            self._keyed = (element_spec, input_key(element_spec))
        key = self._keyed[1]
        choice = self._choices.get(key)
        if choice is None:
            composite, fails = composite_spec(element_spec), self._xla_fails
            choice = self._choices[key] = xla_rules.first_choice(composite, fails)
        if self.mode is not Mode.TRAIN and self._decisions.get(key) and choice.decided is None:
            choice.early = True  # the train step chose XLA: timed here as soon as can be
        self._choice = (key, choice)
        self._use(choice.variant)

    def expect_steps(self, steps: int | None) -> None:
        """Tells ``jit_compile="auto"`` how many steps this ``fit`` still runs (None: unknown)."""
        self._ahead = steps

    @property
    def trial_due(self) -> bool:
        """Whether ``jit_compile="auto"`` times a variant now or as soon as it can.

        An undecided choice that tries XLA at once (:attr:`XlaChoice.early`) or is timing
        XLA. The steps per call are not lengthened meanwhile (both timed at one size).
        """
        return self.auto and self._choice is not None and self._choice[1].trial_due

    @property
    def xla_on_trial(self) -> bool:
        """Whether calls now run XLA on trial: ``"auto"``, undecided, timing XLA."""
        choice = self.xla_choice if self.auto else None
        return choice is not None and choice.decided is None and choice.variant

    def record(
        self,
        steps: int,
        seconds: float,
        traced: bool,
        size: int,
        settled: bool,
        asked: int,
        wall: float | None = None,
        plain: float | None = None,
    ) -> float | None:
        """Feeds ``jit_compile="auto"`` one call's timing (see :class:`XlaChoice`).

        Args:
            steps: Steps the call ran.
            seconds: How long the call took.
            traced: Whether a step function traced during the call (it is then not timed).
            size: The steps per call.
            settled: Whether the steps per call are final.
            asked: The steps asked of the call.
            wall: The call's wall seconds, when ``seconds`` is CPU time (see XlaChoice).
            plain: The call settled the steps per call: their tuner's timing, seconds a step.

        Returns:
            When this call made XLA the choice, how many times faster it runs a step (the
            steps per call may grow by as much); else None.
        """
        self._ahead = None if self._ahead is None else self._ahead - steps
        if not self.auto or self._choice is None:
            return None
        key, choice = self._choice
        if choice.decided is not None:
            return None
        if plain is not None:
            choice.settled_at(plain, self._ahead, size)
        choice.record(steps, seconds, traced, size, settled, asked, self._ahead, wall)
        if choice.decided is None:
            return None
        if self.mode is Mode.TRAIN:
            self._decisions[key] = choice.decided
        remembered.store_choice(choice)
        if not choice.decided:
            return None
        return choice.per_step[False] / max(choice.per_step[True], 1e-12)

    def _plain_instead(self, reason: str) -> None:
        """Runs the plain graph from now on: XLA cannot (or should not) compile the step."""
        if self._choice is not None:
            self._choice[1].decide(False, reason)
        self._use(False)
