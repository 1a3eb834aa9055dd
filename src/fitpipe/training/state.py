"""What fitpipe keeps per model between calls: compile's settings, the compiled steps, the tuners.

A :class:`ModelState` lives on its model and as long as it (:func:`state_of`), so every
``Trainer`` of one model shares it and nothing is retraced per call.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import keras

from fitpipe.pipeline import is_multi_worker
from fitpipe.schemas import Mode
from fitpipe.training import callbacks as callbacks_mod
from fitpipe.training import conversions, distribute, placement
from fitpipe.training.compile_watch import still_compiled
from fitpipe.training.steps import StepFunction
from fitpipe.training.tuning import ExecutionSize

__all__ = ["ModelState", "state_of"]

_CALLERS = {"train": "fit", "test": "evaluate", "predict": "predict"}
_STEP_MODES = {"train": Mode.TRAIN, "test": Mode.EVALUATE, "predict": Mode.PREDICT}


@dataclasses.dataclass
class ModelState:
    """What fitpipe keeps per model between calls (so nothing is retraced per call)."""

    steps_per_execution: int | str | None = None
    jit_compile: bool | str | None = None
    execution: ExecutionSize | None = None
    fused: ExecutionSize | None = None
    last: ExecutionSize | None = None  # the one the last call used (for ``tuning``)
    functions: dict[str, StepFunction] = dataclasses.field(default_factory=dict)
    key: tuple[Any, ...] = ()
    #: ``jit_compile="auto"``: XLA or not, by the input key of the batches, as the train
    #: step measured it (evaluation and prediction then try XLA early, and measure).
    xla: dict[str, bool] = dataclasses.field(default_factory=dict)
    #: The ranks of the batch leaves each step in :attr:`functions` was made for.
    ranks: dict[str, tuple[int | None, ...]] = dataclasses.field(default_factory=dict)
    #: The compile fitpipe's settings belong to: the optimizer and metrics it made (every
    #: compile makes its loss tracker and compiled metrics anew; a built model may add its
    #: outputs' loss trackers later). A later Keras ``model.compile`` takes over.
    compile_mark: tuple[Any, ...] | None = None
    #: The thread training or evaluating the model, and its call (``one_thread``).
    owner: tuple[int, str] | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> ModelState:
        """A fresh state: a copied model's steps are its own, made when it first runs."""
        return ModelState()

    def settings(self, model: keras.Model) -> tuple[int | str | None, bool | str | None]:
        """The ``steps_per_execution`` and ``jit_compile`` of fitpipe's compile, if in force.

        Both None when fitpipe's ``compile`` never ran, or Keras' own came after it.
        """
        self._follow_keras(model, model.metrics)
        return self.steps_per_execution, self.jit_compile

    def restore(
        self, model: keras.Model, steps_per_execution: int | str | None, jit: bool | str | None
    ) -> None:
        """Sets :meth:`settings` of a model again on its copy (compiled as the original).

        A copy Keras did not compile (nothing to train with) keeps none: as the original
        would after a Keras ``compile``.
        """
        if steps_per_execution is not None and getattr(model, "compiled", False):
            self.compiled(model, steps_per_execution, jit if jit is not None else "auto")

    def compiled(
        self, model: keras.Model, steps_per_execution: int | str, jit_compile: bool | str
    ) -> None:
        """Forgets the steps and tuners of an earlier ``compile``; keeps the new settings."""
        self.steps_per_execution = steps_per_execution
        self.jit_compile = jit_compile
        self.compile_mark = (getattr(model, "optimizer", None), *model.metrics)
        self.execution = None
        self.fused = self.last = None
        self.functions.clear()
        self.ranks.clear()
        self.xla.clear()

    def tuning(self) -> dict[str, Any]:
        """What the tuners chose so far, and the timings that decided it (``Trainer.tuning``)."""
        size = self.last
        steps: dict[str, Any] = {}
        for name, function in self.functions.items():
            choice = function.xla_choice
            steps[name] = choice.report() if choice is not None else {"xla": function.jit_compile}
        return {
            "steps_per_execution": size.report() if size is not None else {},
            "jit_compile": self.jit_compile,
            "xla": steps,
        }

    def execution_size(
        self, model: keras.Model, cbs: keras.callbacks.CallbackList, *modes: str
    ) -> ExecutionSize:
        """Steps per compiled call: as compiled; or tuned, when nobody listens per batch.

        With the default ``steps_per_execution=1`` or ``"auto"`` and no callback hooked on
        batches (fitpipe's own History and progress bar aside), several steps run per call:
        the same steps in the same order, so results do not change; only how often Python
        runs. With such a callback, ``"auto"`` runs one step a call, as the default does: the
        callback sees every batch, and a stop it sets (``TerminateOnNaN``) ends training
        after that batch, as in Keras at one step a call.
        """
        self._follow_keras(model, model.metrics)
        value = self.steps_per_execution or getattr(model, "steps_per_execution", 1) or 1
        strategy = distribute.strategy_of(model)
        if strategy is not None and is_multi_worker(strategy):
            # Every worker must run the same steps per call (each call's collectives pair up
            # across the workers): never a size tuned from this worker's own timings.
            size = value if isinstance(value, int) else 1
            if self.execution is None or self.execution.auto or self.execution.size != size:
                self.execution = ExecutionSize(size, placement.step_clock())
            self.last = self.execution
            return self.execution
        if value in (1, "auto") and not callbacks_mod.listens_per_batch(cbs, modes):
            if self.fused is None:
                self.fused = ExecutionSize("auto", placement.step_clock())
            self.last = self.fused
            return self.fused
        if value == "auto":  # a callback reads every batch: it sees each, and can stop there
            value = 1
        if self.execution is None:
            self.execution = ExecutionSize(value, placement.step_clock())
        self.last = self.execution
        return self.execution

    def jit(self, model: keras.Model) -> bool | str:
        """The ``jit_compile`` of the steps: as compiled (False when running eagerly)."""
        requested = self.jit_compile
        if requested is None:  # compiled by Keras directly: keep its decision
            return bool(model.jit_compile)
        if model.run_eagerly:
            return False
        return "auto" if requested == "auto" else bool(requested)

    def function(self, model: keras.Model, mode: str, batches: Any = None) -> StepFunction:
        """The compiled step of ``mode`` for ``batches`` (a pipeline, or one batch's spec).

        Args:
            model: The model (whose state this is).
            mode: ``"train"``, ``"test"`` or ``"predict"``.
            batches: What the step will read: whether it casts its inputs to ``floatx``.

        """
        metrics = model.metrics
        self._follow_keras(model, metrics)
        key = (
            id(getattr(model, "optimizer", None)),
            self.jit(model),
            bool(model.run_eagerly),
            tuple(id(m) for m in metrics),
            id(distribute.strategy_of(model)),
        )
        if key != self.key:  # a new optimizer, metrics, strategy or compilation: new steps
            self.functions.clear()
            self.ranks.clear()
            self.key = key
        cast = conversions.cast_for(batches)
        name = f"{mode}+floatx" if cast else mode
        ranks = conversions.ranks_of(batches)
        if ranks is not None and self.ranks.setdefault(name, ranks) != ranks:
            # Batches of other ranks (targets of shape (n,) after (n, 1)) get a step of their
            # own: one step retraced for both would take leaves of unknown rank, which Keras'
            # losses reject ("Cannot take the length of shape with unknown rank").
            name = f"{name} ranks={ranks}"
        function = self.functions.get(name)
        if function is None:
            function = self.functions[name] = self._new_function(model, mode, cast)
        return function

    def _follow_keras(self, model: keras.Model, metrics: list[Any]) -> None:
        """Drops fitpipe's compile settings once Keras' own ``model.compile`` came after.

        As in Keras, the last compile wins: its ``steps_per_execution`` and ``jit_compile``
        (fitpipe kept running its own, "auto" and XLA, after a Keras compile of 4 and False).
        Told by the objects fitpipe's compile made being gone (held here: no id reused).
        """
        if self.compile_mark is None:
            return
        optimizer, *made = self.compile_mark
        if still_compiled(model, optimizer, made, metrics):
            return
        self.steps_per_execution = self.jit_compile = self.compile_mark = None
        self.execution = self.fused = None

    def _new_function(self, model: keras.Model, mode: str, cast: bool) -> StepFunction:
        steps = {"train": model.train_step, "test": model.test_step, "predict": model.predict_step}
        step = conversions.prepared_step(steps[mode], model, cast)
        caller, step_mode = _CALLERS[mode], _STEP_MODES[mode]
        strategy, collect = distribute.strategy_of(model), step_mode is Mode.PREDICT
        eager = bool(model.run_eagerly)
        if strategy is not None:  # the replicas' step, reduced outside XLA
            return distribute.step_function(strategy, step, eager, collect, caller, step_mode)
        if step_mode is Mode.TRAIN:
            conversions.build_optimizer(model)
        return StepFunction(step, self.jit(model), eager, collect, caller, step_mode, self.xla)


#: The model's attribute holding its :class:`ModelState`.
ATTRIBUTE = "_fitpipe_state"


def state_of(model: keras.Model) -> ModelState:
    """The state fitpipe keeps for ``model`` (made on first use, dropped with the model).

    Kept on the model itself, as Keras keeps its own ``train_function``: the compiled steps
    hold the model's step methods, so a mapping from the model to its state (a
    ``WeakKeyDictionary``) kept every model fitpipe had trained alive for the process' life,
    the value holding its own key (60 models made, fitted and dropped: 60 alive, 8.5 MiB
    each). On the model, the state and the model form a cycle Python's collector frees.
    Set past Keras' attribute tracking, so saving, cloning and pickling never see it; a
    copy of the model (``copy.deepcopy``) starts with a fresh state.
    """
    state = model.__dict__.get(ATTRIBUTE)
    if not isinstance(state, ModelState):
        state = ModelState()
        object.__setattr__(model, ATTRIBUTE, state)
    return state
