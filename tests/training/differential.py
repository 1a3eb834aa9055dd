"""Helpers for differential tests: train a Keras model and a fitpipe twin.

Every differential case follows the same recipe:

1. build a reference Keras model and a twin with identical initial weights
   (:func:`make_twins`);
2. compile both the same way (fresh optimizer / loss / metric objects each);
3. train the reference with ``model.fit`` and the twin with
   ``fitpipe.Trainer(twin).fit`` (or ``twin.fit`` for ``fitpipe.Model`` and
   ``fitpipe.Sequential``) on the same data, ``shuffle=False``;
4. compare ``History`` objects, ``evaluate``, ``predict`` and final weights
   (:func:`run_both` does all of it).

Comparison helpers raise ``AssertionError`` with messages that show the
reference (Keras) value next to the fitpipe value.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import keras
import numpy as np

import fitpipe

RTOL: float = 1e-3
ATOL: float = 1e-5

Side = Literal["keras", "fitpipe"]
BuildFn = Callable[[], keras.Model]
KwargsSpec = Mapping[str, Any] | Callable[[Side], Mapping[str, Any]]
Via = Literal["trainer", "model"]


class TrainingAPI(Protocol):
    """The Keras training surface shared by ``keras.Model`` and ``fitpipe.Trainer``."""

    def fit(self, *args: Any, **kwargs: Any) -> keras.callbacks.History: ...

    def evaluate(self, *args: Any, **kwargs: Any) -> Any: ...

    def predict(self, *args: Any, **kwargs: Any) -> Any: ...

    def train_on_batch(self, *args: Any, **kwargs: Any) -> Any: ...

    def test_on_batch(self, *args: Any, **kwargs: Any) -> Any: ...

    def predict_on_batch(self, *args: Any, **kwargs: Any) -> Any: ...


# --------------------------------------------------------------------------
# Data and model factories
# --------------------------------------------------------------------------


def regression_data(
    n: int = 96, d: int = 4, outputs: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Make a small, deterministic regression problem.

    Args:
        n: Number of rows.
        d: Number of features.
        outputs: Number of target columns.
        seed: NumPy seed.

    Returns:
        ``(x, y)`` float32 arrays of shapes ``(n, d)`` and ``(n, outputs)``.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    w = rng.normal(size=(d, outputs)).astype("float32")
    y = (x @ w + 0.1 * rng.normal(size=(n, outputs))).astype("float32")
    return x, y


def classification_data(
    n: int = 96, d: int = 6, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Make a small, deterministic classification problem with sparse labels.

    Args:
        n: Number of rows.
        d: Number of features.
        classes: Number of classes (2 gives binary 0/1 labels).
        seed: NumPy seed.

    Returns:
        ``(x, labels)`` with ``x`` float32 ``(n, d)`` and ``labels`` int32 ``(n,)``.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    w = rng.normal(size=(d, classes)).astype("float32")
    labels = np.argmax(x @ w + 0.5 * rng.normal(size=(n, classes)), axis=1)
    return x, labels.astype("int32")


def dense_model(
    d: int = 4,
    units: int = 1,
    activation: str | None = None,
    hidden: int = 8,
    cls: type[keras.Sequential] = keras.Sequential,
) -> keras.Sequential:
    """Build a small built Sequential MLP.

    Args:
        d: Input feature width.
        units: Output width.
        activation: Output activation.
        hidden: Hidden width (0 for no hidden layer).
        cls: Sequential class to instantiate (``keras.Sequential`` or
            ``fitpipe.Sequential``).

    Returns:
        The built model.
    """
    layers: list[keras.layers.Layer] = [keras.Input((d,))]
    if hidden:
        layers.append(keras.layers.Dense(hidden, activation="tanh"))
    layers.append(keras.layers.Dense(units, activation=activation))
    return cls(layers)


# --------------------------------------------------------------------------
# Twins
# --------------------------------------------------------------------------


def make_twins(
    build_fn: BuildFn, seed: int = 0, twin_build_fn: BuildFn | None = None
) -> tuple[keras.Model, keras.Model]:
    """Build a reference model and a twin with identical initial weights.

    ``build_fn`` must return a *built* model (subclassed models should be
    called on a sample or ``build()`` inside ``build_fn``).

    Args:
        build_fn: Zero-argument factory returning a built ``keras.Model``.
        seed: Seed set before each build.
        twin_build_fn: Optional different factory for the twin (e.g. one that
            builds a ``fitpipe.Sequential``); it must create the same weights.

    Returns:
        ``(reference, twin)``.
    """
    keras.utils.set_random_seed(seed)
    ref = build_fn()
    keras.utils.set_random_seed(seed)
    twin = (twin_build_fn or build_fn)()
    assert ref is not twin, "build_fn must return a new model on each call"
    twin.set_weights(ref.get_weights())
    assert_weights_close(ref, twin, rtol=0.0, atol=0.0)
    return ref, twin


def fresh(value: Any) -> Any:
    """Return a structure with fresh copies of optimizers, losses and metrics.

    Keras objects such as optimizers hold state and cannot be shared by two
    models; this rebuilds them from their config. Plain values, strings and
    callables are returned unchanged.

    Args:
        value: A compile argument (possibly a nested list / tuple / dict).

    Returns:
        An equivalent value with independent Keras objects.
    """
    if isinstance(value, keras.optimizers.Optimizer):
        return value.__class__.from_config(value.get_config())
    if isinstance(value, (keras.losses.Loss, keras.metrics.Metric)):
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        return {k: fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fresh(v) for v in value]
    if isinstance(value, tuple):
        return tuple(fresh(v) for v in value)
    return value


def resolve_kwargs(spec: KwargsSpec | None, side: Side) -> dict[str, Any]:
    """Materialise keyword arguments for one side of a differential run.

    Args:
        spec: A mapping (copied with :func:`fresh`) or a callable taking the
            side name and returning a mapping (used for generators, callbacks
            and other single-use objects).
        side: ``"keras"`` or ``"fitpipe"``.

    Returns:
        A new dict of keyword arguments.
    """
    if spec is None:
        return {}
    if callable(spec):
        return dict(spec(side))
    return {k: fresh(v) for k, v in spec.items()}


def fitpipe_api(model: keras.Model, via: Via = "trainer") -> TrainingAPI:
    """Return the fitpipe training entry point for ``model``.

    Args:
        model: The twin model.
        via: ``"trainer"`` wraps it in ``fitpipe.Trainer``; ``"model"`` uses
            the model's own methods (for ``fitpipe.Model`` / ``fitpipe.Sequential``).

    Returns:
        An object with the Keras training methods.
    """
    if via == "model":
        return model
    return fitpipe.Trainer(model)


@dataclass
class DiffResult:
    """Everything produced by :func:`run_both`.

    Attributes:
        ref: The Keras-trained reference model.
        twin: The fitpipe-trained twin model.
        api: The fitpipe entry point used for the twin.
        ref_history: History returned by Keras ``fit``.
        twin_history: History returned by fitpipe ``fit``.
        ref_fit_kwargs: The kwargs the Keras side was fitted with.
        twin_fit_kwargs: The kwargs the fitpipe side was fitted with.
    """

    ref: keras.Model
    twin: keras.Model
    api: TrainingAPI
    ref_history: keras.callbacks.History | None = None
    twin_history: keras.callbacks.History | None = None
    ref_fit_kwargs: dict[str, Any] = field(default_factory=dict)
    twin_fit_kwargs: dict[str, Any] = field(default_factory=dict)


def compile_both(
    ref: keras.Model,
    twin: keras.Model,
    compile_kwargs: KwargsSpec | None,
    via: Via = "trainer",
) -> TrainingAPI:
    """Compile the reference with Keras and the twin through fitpipe.

    Args:
        ref: Reference model.
        twin: Twin model.
        compile_kwargs: Compile arguments (see :func:`resolve_kwargs`).
        via: How to reach fitpipe (see :func:`fitpipe_api`).

    Returns:
        The fitpipe entry point for the twin.
    """
    ref_kw = resolve_kwargs(compile_kwargs, "keras")
    if ref_kw.get("steps_per_execution") == "auto":
        ref_kw["steps_per_execution"] = 1  # documented equivalent in Keras 3
    ref.compile(**ref_kw)
    api = fitpipe_api(twin, via)
    api.compile(**resolve_kwargs(compile_kwargs, "fitpipe"))  # type: ignore[attr-defined]
    return api


def run_both(
    build_fn: BuildFn,
    compile_kwargs: KwargsSpec | None,
    fit_kwargs: KwargsSpec,
    *,
    eval_kwargs: KwargsSpec | None = None,
    predict_x: Any = None,
    via: Via = "trainer",
    twin_build_fn: BuildFn | None = None,
    check_weights: bool = True,
    check_params: bool = True,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> DiffResult:
    """Train Keras and fitpipe twins identically and compare everything.

    Args:
        build_fn: Factory for a built model (called twice).
        compile_kwargs: Arguments for ``compile``.
        fit_kwargs: Arguments for ``fit``; ``verbose=0`` and ``shuffle=False``
            are added unless given.
        eval_kwargs: If given, ``evaluate`` is compared with these arguments,
            both as list/scalar and with ``return_dict=True``.
        predict_x: If given, ``predict`` outputs on it are compared.
        via: How to reach fitpipe (see :func:`fitpipe_api`).
        twin_build_fn: Optional different factory for the twin (see
            :func:`make_twins`).
        check_weights: Compare final weights and optimizer iterations.
        check_params: Compare ``History.params`` too.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Returns:
        A :class:`DiffResult`.
    """
    ref, twin = make_twins(build_fn, twin_build_fn=twin_build_fn)
    api = compile_both(ref, twin, compile_kwargs, via)
    res = DiffResult(ref=ref, twin=twin, api=api)
    res.ref_fit_kwargs = _with_fit_defaults(resolve_kwargs(fit_kwargs, "keras"))
    res.twin_fit_kwargs = _with_fit_defaults(resolve_kwargs(fit_kwargs, "fitpipe"))
    keras.utils.set_random_seed(1)
    res.ref_history = ref.fit(**res.ref_fit_kwargs)
    keras.utils.set_random_seed(1)
    res.twin_history = api.fit(**res.twin_fit_kwargs)
    assert_histories_close(
        res.ref_history, res.twin_history, rtol=rtol, atol=atol, check_params=check_params
    )
    if check_weights:
        assert_weights_close(ref, twin, rtol=rtol, atol=atol)
        assert_optimizer_iterations_equal(ref, twin)
    if eval_kwargs is not None:
        assert_evaluate_close(ref, api, eval_kwargs, rtol=rtol, atol=atol)
    if predict_x is not None:
        assert_predict_close(ref, api, predict_x, rtol=rtol, atol=atol)
    return res


def _with_fit_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("shuffle", False)
    return kwargs


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------


def _fmt(values: Any) -> str:
    arr = np.asarray(values, dtype="float64")
    return np.array2string(arr, precision=6, separator=", ", threshold=20)


def assert_close(ref: Any, got: Any, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Assert two numeric values / arrays are close (NaNs compare equal).

    Args:
        ref: Keras value.
        got: fitpipe value.
        what: Description for the failure message.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
    """
    r = np.asarray(ref, dtype="float64")
    g = np.asarray(got, dtype="float64")
    if r.shape != g.shape:
        raise AssertionError(f"{what}: shape differs: keras {r.shape} vs fitpipe {g.shape}")
    if not np.allclose(r, g, rtol=rtol, atol=atol, equal_nan=True):
        diff = np.abs(r - g)
        raise AssertionError(
            f"{what}: values differ (rtol={rtol}, atol={atol}); "
            f"max abs diff {np.nanmax(diff) if diff.size else 0:.3g}\n"
            f"  keras:   {_fmt(r)}\n  fitpipe: {_fmt(g)}"
        )


def assert_histories_close(
    h_ref: keras.callbacks.History,
    h_got: keras.callbacks.History,
    rtol: float = RTOL,
    atol: float = ATOL,
    check_params: bool = True,
) -> None:
    """Compare two ``History`` objects key by key and epoch by epoch.

    Args:
        h_ref: History from Keras.
        h_got: History from fitpipe.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        check_params: Also compare ``History.params``.
    """
    assert isinstance(h_got, keras.callbacks.History), (
        f"fitpipe fit returned {type(h_got).__name__}, expected keras.callbacks.History"
    )
    ref_keys, got_keys = set(h_ref.history), set(h_got.history)
    if ref_keys != got_keys:
        raise AssertionError(
            "History keys differ:\n"
            f"  only in keras:   {sorted(ref_keys - got_keys)}\n"
            f"  only in fitpipe: {sorted(got_keys - ref_keys)}\n"
            f"  common:          {sorted(ref_keys & got_keys)}"
        )
    assert list(h_got.epoch) == list(h_ref.epoch), (
        f"History.epoch differs: keras {list(h_ref.epoch)} vs fitpipe {list(h_got.epoch)}"
    )
    for key in sorted(ref_keys):
        r, g = list(h_ref.history[key]), list(h_got.history[key])
        assert len(r) == len(g), (
            f"History[{key!r}] length differs: keras {len(r)} vs fitpipe {len(g)}"
        )
        assert_close(r, g, f"History[{key!r}]", rtol=rtol, atol=atol)
    if check_params:
        assert dict(h_got.params) == dict(h_ref.params), (
            f"History.params differ: keras {h_ref.params} vs fitpipe {h_got.params}"
        )


def assert_weights_close(
    ref: keras.Model, got: keras.Model, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Compare all model weights (trainable and not) in order.

    Args:
        ref: Keras model.
        got: fitpipe model.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
    """
    rw, gw = ref.weights, got.weights
    assert len(rw) == len(gw), f"number of weights differs: keras {len(rw)} vs fitpipe {len(gw)}"
    for i, (r, g) in enumerate(zip(rw, gw, strict=True)):
        assert_close(
            keras.ops.convert_to_numpy(r),
            keras.ops.convert_to_numpy(g),
            f"weight #{i} ({r.path})",
            rtol=rtol,
            atol=atol,
        )


def assert_optimizer_iterations_equal(ref: keras.Model, got: keras.Model) -> None:
    """Assert both optimizers applied the same number of updates.

    Args:
        ref: Keras model.
        got: fitpipe model.
    """
    r = int(keras.ops.convert_to_numpy(ref.optimizer.iterations))
    g = int(keras.ops.convert_to_numpy(got.optimizer.iterations))
    assert r == g, f"optimizer.iterations differ: keras {r} vs fitpipe {g}"


def assert_structures_close(
    ref: Any, got: Any, what: str, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Compare nested results (scalars, arrays, lists, dicts) incl. their types.

    Args:
        ref: Keras result.
        got: fitpipe result.
        what: Description for failure messages.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
    """
    if isinstance(ref, Mapping):
        assert isinstance(got, Mapping), f"{what}: keras gave a dict, fitpipe {type(got).__name__}"
        assert set(ref) == set(got), (
            f"{what}: dict keys differ: keras {sorted(ref)} vs fitpipe {sorted(got)}"
        )
        for k in ref:
            assert_structures_close(ref[k], got[k], f"{what}[{k!r}]", rtol, atol)
        return
    if isinstance(ref, (list, tuple)):
        assert isinstance(got, (list, tuple)), (
            f"{what}: keras gave a {type(ref).__name__}, fitpipe {type(got).__name__}: {got!r}"
        )
        assert len(ref) == len(got), (
            f"{what}: length differs: keras {len(ref)} vs fitpipe {len(got)}"
        )
        for i, (r, g) in enumerate(zip(ref, got, strict=True)):
            assert_structures_close(r, g, f"{what}[{i}]", rtol, atol)
        return
    if isinstance(ref, np.ndarray) and ref.ndim > 0:
        assert isinstance(got, np.ndarray), (
            f"{what}: keras gave np.ndarray, fitpipe {type(got).__name__}"
        )
        assert got.dtype == ref.dtype, (
            f"{what}: dtype differs: keras {ref.dtype} vs fitpipe {got.dtype}"
        )
    else:
        assert not isinstance(got, (list, tuple, Mapping)), (
            f"{what}: keras gave a scalar {ref!r}, fitpipe {type(got).__name__}: {got!r}"
        )
        assert np.ndim(got) == 0, f"{what}: keras gave a scalar, fitpipe shape {np.shape(got)}"
    assert_close(ref, got, what, rtol, atol)


def assert_evaluate_close(
    ref: keras.Model,
    api: TrainingAPI,
    eval_kwargs: KwargsSpec,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> None:
    """Compare ``evaluate`` in list/scalar form and with ``return_dict=True``.

    Args:
        ref: Keras model.
        api: fitpipe entry point for the twin.
        eval_kwargs: ``evaluate`` arguments (``verbose=0`` is added).
        rtol: Relative tolerance.
        atol: Absolute tolerance.
    """
    for return_dict in (False, True):
        rk = resolve_kwargs(eval_kwargs, "keras")
        gk = resolve_kwargs(eval_kwargs, "fitpipe")
        for kw in (rk, gk):
            kw.setdefault("verbose", 0)
            kw["return_dict"] = return_dict
        r = ref.evaluate(**rk)
        g = api.evaluate(**gk)
        assert_structures_close(r, g, f"evaluate(return_dict={return_dict})", rtol, atol)


def assert_predict_close(
    ref: keras.Model,
    api: TrainingAPI,
    x: Any,
    rtol: float = RTOL,
    atol: float = ATOL,
    **predict_kwargs: Any,
) -> None:
    """Compare ``predict`` outputs (structure, dtype and values).

    Args:
        ref: Keras model.
        api: fitpipe entry point for the twin.
        x: Input data (must be reusable, i.e. not a generator).
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        **predict_kwargs: Extra ``predict`` arguments.
    """
    predict_kwargs.setdefault("verbose", 0)
    r = ref.predict(x, **predict_kwargs)
    g = api.predict(x, **predict_kwargs)
    assert_structures_close(r, g, "predict", rtol, atol)


def history_epochs(history: keras.callbacks.History) -> int:
    """Return the number of epochs recorded in a History.

    Args:
        history: A Keras History.

    Returns:
        The number of entries in ``history.epoch``.
    """
    return len(history.epoch)


def is_finite_sequence(values: Sequence[float]) -> bool:
    """Tell whether every value in ``values`` is a finite number.

    Args:
        values: Numbers.

    Returns:
        True when all are finite.
    """
    return all(math.isfinite(float(v)) for v in values)


class RecordingCallback(keras.callbacks.Callback):
    """Record every callback hook call as ``(hook, index, sorted log keys)``.

    Attributes:
        events: Recorded calls, in order.
        models_seen: ``id`` of ``self.model`` at each ``on_train_begin``.
    """

    HOOKS: tuple[str, ...] = (
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_end",
        "on_test_batch_begin",
        "on_test_batch_end",
        "on_predict_begin",
        "on_predict_end",
        "on_predict_batch_begin",
        "on_predict_batch_end",
    )

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int | None, tuple[str, ...]]] = []
        self.models_seen: list[keras.Model] = []

    def _record(self, hook: str, index: int | None, logs: Mapping[str, Any] | None) -> None:
        self.events.append((hook, index, tuple(sorted(logs or {}))))

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.models_seen.append(self.model)
        self._record("on_train_begin", None, logs)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_train_end", None, logs)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_train_batch_begin", None, logs)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_train_batch_end", None, logs)

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_begin", None, logs)

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_end", None, logs)

    def on_test_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_batch_begin", None, logs)

    def on_test_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_batch_end", None, logs)

    def on_predict_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_begin", None, logs)

    def on_predict_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_end", None, logs)

    def on_predict_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_batch_begin", None, logs)

    def on_predict_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_batch_end", None, logs)

    def counts(self) -> dict[str, int]:
        """Count calls per hook.

        Returns:
            Mapping hook name -> number of calls (hooks never called omitted).
        """
        out: dict[str, int] = {}
        for hook, _, _ in self.events:
            out[hook] = out.get(hook, 0) + 1
        return out


def assert_events_equal(ref: RecordingCallback, got: RecordingCallback) -> None:
    """Assert two recorders saw the same hooks, in order, with the same log keys.

    Args:
        ref: Recorder used with Keras.
        got: Recorder used with fitpipe.
    """
    assert ref.counts() == got.counts(), (
        f"callback hook counts differ:\n  keras:   {ref.counts()}\n  fitpipe: {got.counts()}"
    )
    for i, (r, g) in enumerate(zip(ref.events, got.events, strict=True)):
        assert r == g, f"callback event #{i} differs: keras {r} vs fitpipe {g}"
