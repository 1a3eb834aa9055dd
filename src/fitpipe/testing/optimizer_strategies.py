"""Hypothesis strategies of optimizer settings: the state an optimizer carries between steps.

Re-exported by :mod:`fitpipe.testing.strategies`. A trainer must carry all of it from step
to step, call to call and from one compiled variant of the step to another (the plain graph
to XLA's, mid-``fit``): moving averages of the weights, accumulated gradients, a learning
rate that follows a schedule of the step count, clipping and weight decay.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
from hypothesis import strategies as st

__all__ = ["OPTIMIZER_NAMES", "OptimizerSetting", "optimizer_settings"]

#: The ``keras.optimizers`` classes drawn (each takes every option drawn below).
OPTIMIZER_NAMES = ("SGD", "Adam", "AdamW", "RMSprop")


@dataclasses.dataclass(frozen=True)
class OptimizerSetting:
    """An optimizer class and its arguments; :meth:`build` makes a new one each call.

    Attributes:
        name: The class' name in ``keras.optimizers``.
        kwargs: Its arguments, ``learning_rate`` excepted.
        schedule: A ``keras.optimizers.schedules`` class name and its arguments for the
            learning rate, or None for :attr:`learning_rate`.
        learning_rate: The constant learning rate when there is no schedule.
    """

    name: str
    kwargs: tuple[tuple[str, Any], ...]
    schedule: tuple[str, tuple[tuple[str, Any], ...]] | None = None
    learning_rate: float = 0.01

    def build(self) -> keras.optimizers.Optimizer:
        """A new optimizer of this setting (two models never share one)."""
        rate: Any = self.learning_rate
        if self.schedule is not None:
            kind, arguments = self.schedule
            rate = getattr(keras.optimizers.schedules, kind)(**dict(arguments))
        optimizer: keras.optimizers.Optimizer = getattr(keras.optimizers, self.name)(
            learning_rate=rate, **dict(self.kwargs)
        )
        return optimizer


def _schedules() -> st.SearchStrategy[tuple[str, tuple[tuple[str, Any], ...]] | None]:
    """None (a constant rate) or a schedule that moves within a few steps."""
    decay = st.builds(
        lambda steps, rate: (
            "ExponentialDecay",
            (("initial_learning_rate", 0.05), ("decay_steps", steps), ("decay_rate", rate)),
        ),
        st.integers(1, 8),
        st.sampled_from([0.5, 0.9]),
    )
    piecewise = st.integers(1, 12).map(
        lambda at: ("PiecewiseConstantDecay", (("boundaries", [at]), ("values", [0.05, 0.005])))
    )
    return st.one_of(st.none(), decay, piecewise)


def optimizer_settings() -> st.SearchStrategy[OptimizerSetting]:
    """Optimizer settings: a class, a rate or schedule, clipping, EMA, accumulation, decay.

    At most one clipping option (Keras refuses two); ``use_ema`` with or without overwriting
    the weights every few steps; gradients accumulated over 2-3 steps or not; weight decay
    (always for ``AdamW``, which requires it).

    Returns:
        A strategy of :class:`OptimizerSetting`.

    """
    clipping = st.one_of(
        st.just(()),
        st.tuples(
            st.sampled_from(["clipnorm", "clipvalue", "global_clipnorm"]),
            st.sampled_from([0.01, 0.1, 1.0]),
        ).map(lambda option: (option,)),
    )
    ema = st.one_of(
        st.just(()),
        st.one_of(st.none(), st.integers(1, 4)).map(
            lambda every: (("use_ema", True), ("ema_overwrite_frequency", every))
        ),
    )
    accumulation = st.one_of(
        st.just(()), st.integers(2, 3).map(lambda n: (("gradient_accumulation_steps", n),))
    )
    decay = st.one_of(st.just(()), st.just((("weight_decay", 0.05),)))

    def setting(name: str, *parts: Any) -> OptimizerSetting:
        schedule, rate, *options = parts
        kwargs = tuple(item for option in options for item in option)
        if name == "AdamW" and not any(key == "weight_decay" for key, _ in kwargs):
            kwargs += (("weight_decay", 0.004),)
        return OptimizerSetting(name, kwargs, schedule, rate)

    return st.builds(
        setting,
        st.sampled_from(OPTIMIZER_NAMES),
        _schedules(),
        st.sampled_from([0.01, 0.05]),
        clipping,
        ema,
        accumulation,
        decay,
    )
