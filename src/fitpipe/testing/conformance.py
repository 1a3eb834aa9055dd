"""``AdapterConformanceTests``: the checks every adapter must pass, as a pytest base class.

An adapter author subclasses it, names the adapter, and says how to build the adapter's
input from arrays; the checks come as inherited test methods::

    from fitpipe.testing import AdapterConformanceTests


    class TestColumnStoreConformance(AdapterConformanceTests):
        adapter_name = "columnstore"

        def make_input(self, x, y, sample_weight, batch_size):
            return ColumnStore(features=x, target=y, weight=sample_weight)

The kit draws the data with Hypothesis (the loaded profile decides how many examples: see
:mod:`fitpipe.testing.profiles`) and checks, through ``fitpipe.adapt`` exactly as users call
it, that:

* the adapter is registered, the registry chooses it for its input, ``can_adapt`` says True;
* the pipeline's element spec has the right structure and dtypes (features of each of
  :attr:`AdapterConformanceTests.feature_dtypes`);
* every row is delivered exactly once per epoch (over two epochs);
* with ``shuffle=False`` rows come in their order, ``batch_size`` rows per batch;
* weights stay with their rows (also when the adapter shuffles);
* ``num_batches``, when the adapter claims to know it, is the number of batches delivered;
* every ``fit`` argument the adapter does not support is rejected with the shared wording
  (``shuffle`` is the documented exception: inputs that fix their own order warn instead;
  :mod:`fitpipe.testing.argument_checks`);
* no batch holds 0 rows;
* each capability its sources declare (split, seek, shard, resume, pace, chunks, class
  counts) keeps its contract (:mod:`fitpipe.testing.capability_checks`);
* each of ``validation_split``, ``split_by``, ``steps`` and ``class_weight`` it claims works
  as ``fit`` uses it (:mod:`fitpipe.testing.claim_checks`);
* a claimed ``shuffle`` reorders the rows every epoch, keeping the batch sizes; ``can_adapt``
  refuses foreign inputs (NumPy arrays, dicts, generators, None, ...); two pipelines open at
  once keep their own rows (:mod:`fitpipe.testing.isolation_checks`).
* the input is left unchanged, ``evaluate`` and ``predict`` read every row in order, and
  128 rows come in order (:mod:`fitpipe.testing.integrity_checks`).

Needs ``hypothesis`` (the ``test`` extra: ``pip install fitpipe[test]``); pytest collects the
checks, but the module itself does not import pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from hypothesis import example, given, settings

import fitpipe
from fitpipe.adapters import ADAPT_ARGUMENTS, Adapter, AdaptRequest, supported
from fitpipe.errors import DataMismatchError
from fitpipe.pipeline import Pipeline
from fitpipe.schemas import Schema
from fitpipe.testing import epoch_batches, flat_rows
from fitpipe.testing.argument_checks import ArgumentChecks
from fitpipe.testing.capability_checks import FIXED as _FIXED
from fitpipe.testing.capability_checks import (
    CapabilityChecks,
    describe_order_difference,
    describe_row_difference,
    row_key,
)
from fitpipe.testing.claim_checks import ClaimChecks
from fitpipe.testing.fixtures import weight_of_rows
from fitpipe.testing.integrity_checks import IntegrityChecks, copied
from fitpipe.testing.isolation_checks import IsolationChecks
from fitpipe.testing.strategies import Example, conformance_examples, edge_examples

__all__ = ["AdapterConformanceTests"]


def _tuplify(value: Any) -> Any:
    """Lists become tuples (as in ``tf.data`` structures); dicts keep their keys."""
    if isinstance(value, dict):
        return {k: _tuplify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


class AdapterConformanceTests(
    CapabilityChecks, ArgumentChecks, ClaimChecks, IsolationChecks, IntegrityChecks
):
    """Base class of an adapter's conformance suite; subclass it in a ``test_*.py`` module.

    Set :attr:`adapter_name` and implement :meth:`make_input`; everything else is optional.
    The name of the subclass must start with ``Test`` for pytest to collect it.

    Optional hooks:

    * :meth:`schema_for`: the :class:`fitpipe.Schema` that reads the input (columnar
      adapters such as Arrow tables and Parquet files); the kit passes it as ``schema=``
      when the adapter supports ``schema``;
    * :meth:`expected_x`, :meth:`expected_y`, :meth:`expected_sample_weight`: the structure
      the batches' ``x``, ``y`` and ``sample_weight`` should have, when the adapter reshapes
      or renames them (defaults: the arrays as given).

    * :meth:`split_by_for`: what to pass as ``split_by`` (adapters that claim it);
    * :attr:`foreign_inputs_taken`: kinds of foreign inputs the adapter does take (see
      :data:`fitpipe.testing.isolation_checks.FOREIGN_INPUTS`).

    Attributes:
        adapter_name: The registered name the registry must choose for the input.
        one_shot: True when the input is read once (like a generator): a second epoch goes
            on where the first stopped, so every row comes once over both epochs together.
            None (the default) infers it: an input that is its own iterator is one-shot.
        max_examples: Caps the Hypothesis examples per check (None: the loaded profile's).
        max_rows: The most rows of generated data.
        max_batch_size: The largest generated batch size.
        feature_dtypes: The dtypes generated features come in (narrow it for an adapter
            whose input holds only some, e.g. ``("float32",)``).

    """

    adapter_name: ClassVar[str] = ""
    one_shot: ClassVar[bool | None] = None
    max_examples: ClassVar[int | None] = None
    max_rows: ClassVar[int] = 24
    max_batch_size: ClassVar[int] = 8
    feature_dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64", "int32", "int64")

    # The hooks an author provides -------------------------------------------------------
    def make_input(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        sample_weight: np.ndarray | None,
        batch_size: int,
    ) -> Any:
        """Builds the adapter's input holding the given data; override it.

        The kit calls it for every check, so a one-shot input (a generator) is fresh each
        time. Arguments the adapter supports (per its ``supports``) are also passed to
        ``fitpipe.adapt`` by the kit: an adapter that supports ``y`` gets ``y=y`` there and
        its input need not hold the targets; one that does not must put them in the input.
        An input that comes in batches must hold ``batch_size`` rows per batch (the last may
        hold fewer).

        Args:
            x: Features of shape ``(rows, features)``, of a dtype of :attr:`feature_dtypes`
                (float32, float64, int32 or int64).
            y: Targets of shape ``(rows,)`` (int64 labels or float32 values), or None.
            sample_weight: float32 weights of shape ``(rows,)``, or None (always None when
                ``y`` is None).
            batch_size: Rows per batch.

        Returns:
            The input, as a user would pass it to ``fitpipe.adapt`` or ``fit``.

        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `make_input(self, x, y, sample_weight, "
            "batch_size)` returning the adapter's input"
        )

    def expected_x(self, x: np.ndarray) -> Any:
        """The ``x`` part of the batches, as the pipeline should deliver it; override if needed.

        Args:
            x: The features given to :meth:`make_input`.

        Returns:
            The structure of arrays whose rows the batches' ``x`` holds (default: ``x``
            itself); e.g. ``{"a": x}`` for an input that names its one feature array, or
            ``{"f0": x[:, 0], "f1": x[:, 1]}`` for one that stores columns.

        """
        return x

    def expected_y(self, y: np.ndarray) -> Any:
        """The ``y`` part of the batches, as the pipeline should deliver it; override if needed.

        Args:
            y: The targets given to :meth:`make_input` (never None here).

        Returns:
            The structure of arrays whose rows the batches' ``y`` holds (default: ``y``
            itself, of shape ``(rows,)``); e.g. ``y[:, None]`` for an adapter that delivers
            targets as ``(rows, 1)``, or ``{"label": y}`` for named outputs.

        """
        return y

    def expected_sample_weight(self, sample_weight: np.ndarray) -> Any:
        """The ``sample_weight`` part of the batches; override if the adapter reshapes it.

        Args:
            sample_weight: The weights given to :meth:`make_input` (never None here).

        Returns:
            The array whose rows the batches' ``sample_weight`` holds (default: the weights
            themselves, of shape ``(rows,)``).

        """
        return sample_weight

    def schema_for(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        sample_weight: np.ndarray | None,
    ) -> Schema | None:
        """The declared schema that reads the input of :meth:`make_input`; override if needed.

        Columnar adapters (Arrow tables and streams, Parquet files) need a ``schema=``
        naming the feature, target and weight columns. When the adapter supports ``schema``
        and this returns a schema, the kit passes it to ``fitpipe.adapt`` with every input it
        builds from the same arguments (also when checking that unsupported arguments are
        rejected).

        Args:
            x: The features given to :meth:`make_input`.
            y: The targets given to :meth:`make_input`, or None.
            sample_weight: The weights given to :meth:`make_input`, or None.

        Returns:
            The schema, or None (the default) to pass no ``schema``.

        """
        return None

    # Helpers ----------------------------------------------------------------------------
    def _require_name(self) -> str:
        assert self.adapter_name, (
            f"{type(self).__name__} must set the class attribute `adapter_name` to the "
            "registered name of the adapter under test"
        )
        return self.adapter_name

    def _input(self, data: Example) -> Any:
        data = copied(data)  # the kit's own data is never handed out
        return self.make_input(data.x, data.y, data.sample_weight, data.batch_size)

    def _adapter(self) -> Adapter:
        name = self._require_name()
        found = fitpipe.registry.find(self._input(_FIXED))
        assert found.name == name, (
            f"the registry chose the adapter {found.name!r} for the input of "
            f"{type(self).__name__}, expected {name!r}"
        )
        return found

    def _is_one_shot(self, obj: Any) -> bool:
        if self.one_shot is not None:
            return self.one_shot
        return isinstance(obj, Iterator)

    def _supports(self, data: Example) -> frozenset[str]:
        """The arguments the adapter honours for ``data``'s input (``adapters.supported``).

        An adapter may honour different arguments per request (``supports_for``: a pandas
        frame read by a schema takes its targets from the schema, not from ``y``).
        """
        adapter = self._adapter()
        kwargs = self._schema_kwargs(data, adapter.supports)
        return supported(adapter, AdaptRequest(x=self._input(data), caller="fit", **kwargs))

    def _schema_kwargs(self, data: Example, supports: frozenset[str]) -> dict[str, Any]:
        """``{"schema": ...}`` when the adapter supports it and :meth:`schema_for` gives one."""
        if "schema" not in supports:
            return {}
        schema = self.schema_for(data.x, data.y, data.sample_weight)
        return {} if schema is None else {"schema": schema}

    def _expected_part(self, name: str, value: np.ndarray) -> Any:
        """The structure the batches should hold for ``x``, ``y`` or ``sample_weight``."""
        hooks: dict[str, Callable[[np.ndarray], Any]] = {
            "x": self.expected_x,
            "y": self.expected_y,
            "sample_weight": self.expected_sample_weight,
        }
        return hooks[name](value)

    def _adapt_kwargs(
        self, data: Example, supports: frozenset[str], shuffle: bool = False
    ) -> dict[str, Any]:
        """The arguments the adapter supports, taken from ``data`` (schema, y, weights, ...)."""
        kwargs: dict[str, Any] = self._schema_kwargs(data, supports)
        for name in ("y", "sample_weight"):
            if name in supports and getattr(data, name) is not None:
                kwargs[name] = np.array(getattr(data, name), copy=True)
        if "batch_size" in supports:
            kwargs["batch_size"] = data.batch_size
        if shuffle and "shuffle" in supports:
            kwargs["shuffle"] = True
        return kwargs

    def _adapt(self, data: Example, supports: frozenset[str], shuffle: bool = False) -> Pipeline:
        pipeline = fitpipe.adapt(self._input(data), **self._adapt_kwargs(data, supports, shuffle))
        assert pipeline.adapter == self.adapter_name, (
            f"fitpipe.adapt used the adapter {pipeline.adapter!r}, expected {self.adapter_name!r}"
        )
        return pipeline

    def _expected_rows(self, data: Example) -> np.ndarray:
        parts = [flat_rows(self.expected_x(data.x))]
        for name in ("y", "sample_weight"):
            part = getattr(data, name)
            if part is not None:
                parts.append(flat_rows(self._expected_part(name, part)))
        return np.concatenate(parts, axis=1)

    def _epoch(self, pipeline: Pipeline, what: str = "an epoch") -> list[Any]:
        """One epoch's batches as NumPy, failing on a batch of 0 rows (named by its index).

        Read up to a bound (see :func:`fitpipe.testing.epoch_batches`): an epoch that does
        not end where the source says fails at once.
        """
        try:
            batches = epoch_batches(pipeline)
        except DataMismatchError as err:
            raise AssertionError(f"{what} did not end: {err}") from None
        sizes = [len(tf.nest.flatten(batch[0])[0]) for batch in batches]
        empty = [index for index, size in enumerate(sizes) if size == 0]
        assert not empty, (
            f"batch {empty[0]} of {what} has no rows (batch sizes {sizes}): adapter "
            f"{self.adapter_name!r} must not yield empty batches; skip a slice of 0 rows "
            "instead of yielding it"
        )
        return batches

    @staticmethod
    def _rows_of(batches: list[Any], width: int) -> np.ndarray:
        if not batches:
            return np.zeros((0, width))
        return np.concatenate(
            [np.concatenate([flat_rows(part) for part in batch], axis=1) for batch in batches]
        )

    def _for_all(self, check: Callable[[Example], None], **strategy_kwargs: Any) -> None:
        """Runs ``check`` on generated data, under the loaded profile (capped if asked)."""
        strategy = conformance_examples(
            self.max_rows,
            self.max_batch_size,
            feature_dtypes=self.feature_dtypes,
            **strategy_kwargs,
        )
        options: dict[str, Any] = {}
        if self.max_examples is not None:
            options["max_examples"] = min(self.max_examples, settings().max_examples)

        def run(data: Example) -> None:
            check(data)

        test = given(data=strategy)(run)
        dtypes = self.feature_dtypes
        edges = edge_examples(self.max_batch_size, feature_dtypes=dtypes, **strategy_kwargs)
        for edge in reversed(edges):
            test = example(data=edge)(test)
        settings(**options)(test)()

    # The checks -------------------------------------------------------------------------
    def test_adapter_is_registered_and_chosen(self) -> None:
        """The registry knows the adapter and chooses it for the input."""
        adapter = self._adapter()
        assert isinstance(adapter, Adapter), f"{adapter!r} lacks the adapter protocol"
        assert fitpipe.registry[adapter.name] is adapter
        assert isinstance(adapter.accepts, str) and adapter.accepts, "`accepts` is empty"
        answer = adapter.can_adapt(self._input(_FIXED))
        assert answer is True, f"`can_adapt` of the suite's input returned {answer!r}, not True"
        unknown = set(adapter.supports) - set(ADAPT_ARGUMENTS)
        assert not unknown, f"`supports` names unknown arguments {sorted(unknown)}"
        with self._adapt(_FIXED, self._supports(_FIXED)) as pipeline:
            assert pipeline.adapter == adapter.name

    def test_element_spec(self) -> None:
        """Batches are ``(x,)``, ``(x, y)`` or ``(x, y, sw)`` of the given structure and dtypes."""

        def check(data: Example) -> None:
            supports = self._supports(data)
            with self._adapt(data, supports) as pipeline:
                spec = pipeline.element_spec
            parts = [
                (n, self._expected_part(n, getattr(data, n)))
                for n in ("x", "y", "sample_weight")
                if getattr(data, n) is not None
            ]
            assert isinstance(spec, tuple) and len(spec) == len(parts), (
                f"element spec should be a tuple of {[n for n, _ in parts]}, got {spec}"
            )
            for (name, value), part_spec in zip(parts, spec, strict=True):
                expected = _tuplify(value)
                try:
                    tf.nest.assert_same_structure(expected, part_spec, check_types=True)
                except (TypeError, ValueError) as err:
                    raise AssertionError(
                        f"structure of `{name}` in the element spec differs: expected "
                        f"{tf.nest.map_structure(lambda a: a.shape, expected)}, got "
                        f"{part_spec} ({err})"
                    ) from None
                for leaf, leaf_spec in zip(
                    tf.nest.flatten(expected), tf.nest.flatten(part_spec), strict=True
                ):
                    want = tf.as_dtype(np.asarray(leaf).dtype)
                    assert leaf_spec.dtype == want, (
                        f"dtype of `{name}` differs: expected {want.name}, got "
                        f"{leaf_spec.dtype.name} ({leaf_spec})"
                    )
                    shape = np.shape(leaf)
                    assert leaf_spec.shape.rank == len(shape), (
                        f"rank of `{name}` differs: expected {len(shape)}, got {leaf_spec}"
                    )
                    assert leaf_spec.shape[1:].is_compatible_with(shape[1:]), (
                        f"shape of `{name}` differs: rows of shape {shape[1:]}, got {leaf_spec}"
                    )

        self._for_all(check)

    def test_every_row_once_per_epoch(self) -> None:
        """Over two epochs (shuffled when supported) every row is delivered exactly once."""

        def check(data: Example) -> None:
            supports = self._supports(data)
            expected = self._expected_rows(data)
            one_shot = self._is_one_shot(self._input(data))
            epochs: list[np.ndarray] = []
            with self._adapt(data, supports, shuffle=True) as pipeline:
                for _ in range(2):
                    batches = self._epoch(pipeline, f"epoch {len(epochs)}")
                    epochs.append(self._rows_of(batches, expected.shape[1]))
                    pipeline.on_epoch_end()
            delivered = [np.concatenate(epochs)] if one_shot else epochs
            for index, got in enumerate(delivered):
                what = "over both epochs (one-shot input)" if one_shot else f"epoch {index}"
                assert sorted(map(row_key, got)) == sorted(map(row_key, expected)), (
                    describe_row_difference(expected, got, what)
                )

        self._for_all(check)

    def test_order_without_shuffle(self) -> None:
        """With ``shuffle=False`` rows come in their order, ``batch_size`` rows per batch."""

        def check(data: Example) -> None:
            supports = self._supports(data)
            expected = self._expected_rows(data)
            with self._adapt(data, supports) as pipeline:
                batches = self._epoch(pipeline, "an epoch (shuffle=False)")
            got = self._rows_of(batches, expected.shape[1])
            assert got.shape == expected.shape and np.array_equal(got, expected), (
                "rows differ from the given rows in order (x | y | sample_weight joined): "
                + describe_order_difference(expected, got, "an epoch (shuffle=False)")
            )
            sizes = [len(tf.nest.flatten(batch[0])[0]) for batch in batches]
            full, last = divmod(data.rows, data.batch_size)
            want = [data.batch_size] * full + ([last] if last else [])
            assert sizes == want, f"batch sizes {sizes}, expected {want}"

        self._for_all(check)

    def test_weights_aligned_with_rows(self) -> None:
        """Each weight travels with its row (shuffled when the adapter supports it)."""

        def check(data: Example) -> None:
            supports = self._supports(data)
            given = weight_of_rows(data.x)  # each weight identifies its row
            data = Example(data.x, data.y, given, data.batch_size)
            with self._adapt(data, supports, shuffle=True) as pipeline:
                batches = self._epoch(pipeline)
            assert batches and all(len(batch) == 3 for batch in batches), (
                "batches should be (x, y, sample_weight) when weights are given, got "
                f"{[len(batch) for batch in batches]} parts"
            )
            weight_of = {
                row_key(row): float(weight)
                for row, weight in zip(flat_rows(self.expected_x(data.x)), given, strict=True)
            }
            x_rows = np.concatenate([flat_rows(batch[0]) for batch in batches])
            weights = np.concatenate([flat_rows(batch[2]) for batch in batches])[:, 0]
            for index, (row, weight) in enumerate(zip(x_rows, weights, strict=True)):
                want = weight_of.get(row_key(row))
                assert want == float(weight), (
                    f"the weight of delivered row {index} ({row.tolist()}) is {weight}, "
                    f"but the weight given with that row is {want}"
                )

        self._for_all(check, targets_given=True)

    def test_num_batches(self) -> None:
        """``num_batches``, when known (not None), counts the batches of each epoch."""

        def check(data: Example) -> None:
            supports = self._supports(data)
            with self._adapt(data, supports) as pipeline:
                for epoch in range(2):
                    claimed = pipeline.num_batches
                    delivered = len(self._epoch(pipeline, f"epoch {epoch}"))
                    pipeline.on_epoch_end()
                    assert claimed is None or claimed == delivered, (
                        f"epoch {epoch}: num_batches is {claimed} but {delivered} batches "
                        "were delivered"
                    )

        self._for_all(check)
