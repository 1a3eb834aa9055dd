"""The kit's checks of claimed arguments, shuffling, ``can_adapt``, empty batches and pipelines
open together: a sound adapter passes each, and an adapter broken on purpose fails it.

The adapter of this module batches (and shuffles) rows itself, in Python; the input names
the bug to make (if any). The suites are run by hand (their names lack ``Test``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import Phase, settings

import fitpipe
from fitpipe.adapters import AdaptRequest, ArraySource, BatchSource, Mode, Source
from fitpipe.columnar import key_array
from fitpipe.testing import AdapterConformanceTests, flat_rows

#: Each bug, and the check that must fail an adapter that has it.
BUGS = {
    "no_split": "test_claimed_validation_split_splits",
    "ignores_split_by": "test_claimed_split_by_keeps_keys_together",
    "steps_as_batch_size": "test_claimed_steps_are_taken",
    "labels_shifted": "test_claimed_class_weight_weights_rows",
    "never_shuffles": "test_claimed_shuffle_reorders_rows",
    "same_shuffle_every_epoch": "test_claimed_shuffle_reorders_rows",
    "one_row_when_shuffled": "test_claimed_shuffle_reorders_rows",
    "empty_batch": "test_order_without_shuffle",
    "shared_state": "test_two_pipelines_open_at_once",
    "zeroes_input_after_copy": "test_input_left_unchanged",
    "zeroes_given_y_after_copy": "test_input_left_unchanged",
    "evaluate_drops_weights": "test_evaluate_and_predict_deliver_the_rows",
    "predict_drops_last_row": "test_evaluate_and_predict_deliver_the_rows",
    "swaps_one_pair": "test_claimed_shuffle_reorders_rows",
    "drops_every_32nd_row": "test_every_row_in_order_on_many_rows",
    "narrows_float64": "test_element_spec",
}
NEW_CHECKS = sorted(set(BUGS.values()) | {"test_can_adapt_refuses_foreign_inputs"})


class Box:
    """The input: rows, and the bug the adapter makes of them."""

    def __init__(self, x: np.ndarray, y: Any, sample_weight: Any, bug: str | None) -> None:
        self.x, self.y, self.sample_weight, self.bug = x, y, sample_weight, bug


class BoxAdapter:
    """Takes :class:`Box`: batches in Python (shuffled per epoch), rows for ``split_by``."""

    name = "box-mutants"
    accepts = "a Box"
    supports = frozenset(
        {"y", "sample_weight", "batch_size", "shuffle", "steps", "class_weight"}
        | {"validation_split", "split_by"}
    )

    def __init__(self) -> None:
        self.request: AdaptRequest | None = None  # used by the "shared_state" bug only

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Box)

    def adapt(self, request: AdaptRequest) -> Source:
        box: Box = request.x
        y = request.y if request.y is not None else box.y
        weight = request.sample_weight if request.sample_weight is not None else box.sample_weight
        if box.bug == "labels_shifted" and y is not None:
            y = y + 1
        x = _bugged_features(request, box)
        if box.bug == "zeroes_given_y_after_copy" and request.y is not None:
            y = request.y.copy()
            request.y[...] = 0  # the caller's array changes
        if box.bug == "evaluate_drops_weights" and request.mode is Mode.EVALUATE:
            weight = None
        parts = [p for p in (x, y, weight if y is not None else None) if p is not None]
        if request.split_by is not None:
            keys = None if box.bug == "ignores_split_by" else key_array(request.split_by, "keys")
            return ArraySource(*(parts + [None] * (3 - len(parts))), len(box.x), keys=keys)
        self.request = request
        return self._batches(request, parts, box.bug)

    def _batches(self, request: AdaptRequest, parts: list[Any], bug: str | None) -> Source:
        size = request.batch_size or 32
        if bug == "steps_as_batch_size" and request.steps:
            size = request.steps
        if bug == "one_row_when_shuffled" and request.shuffle:
            size = 1
        epoch = [0]

        def epoch_batches() -> Iterator[tuple[np.ndarray, ...]]:
            now = self.request if bug == "shared_state" else request
            assert now is not None
            rows = parts if bug != "shared_state" else _parts_of(now)
            order = np.arange(len(rows[0]))
            if bug == "drops_every_32nd_row":
                order = order[order % 32 != 31]
            if bug == "predict_drops_last_row" and request.mode is Mode.PREDICT:
                order = order[:-1]
            if request.shuffle and bug == "swaps_one_pair":
                i = epoch[0] % (len(order) - 1) if len(order) > 1 else 0
                order[[i, i + 1]] = order[[i + 1, i]] if len(order) > 1 else order[[i, i]]
            elif request.shuffle and bug != "never_shuffles":
                seed = 0 if bug == "same_shuffle_every_epoch" else epoch[0] + 1
                order = np.random.default_rng(seed).permutation(len(order))
            epoch[0] += 1
            for start in range(0, len(order), size):
                yield tuple(p[order[start : start + size]] for p in rows)
            if bug == "empty_batch":
                yield tuple(p[:0] for p in rows)

        spec = tuple(tf.TensorSpec((None, *p.shape[1:]), tf.as_dtype(p.dtype)) for p in parts)

        def split(at: int, _: int | None) -> tuple[Source, Source]:
            return _rows(parts, 0, at), _rows(parts, at, len(parts[0]))

        return BatchSource(
            make_dataset=lambda: tf.data.Dataset.from_generator(
                epoch_batches, output_signature=spec
            ),
            count_batches=lambda: -(-len(parts[0]) // size) + (bug == "empty_batch"),
            rows=None if bug == "no_split" else len(parts[0]),
            split=None if bug == "no_split" else split,
        )


def _bugged_features(request: AdaptRequest, box: Box) -> np.ndarray:
    """The features the adapter reads, with the bugs that touch them."""
    if box.bug == "narrows_float64" and box.x.dtype == np.float64:
        return box.x.astype(np.float32)
    if box.bug == "zeroes_input_after_copy":
        x = box.x.copy()
        box.x[...] = 0  # the user's array changes
        return x
    return box.x


def _parts_of(request: AdaptRequest) -> list[Any]:
    box: Box = request.x
    y = request.y if request.y is not None else box.y
    weight = request.sample_weight if request.sample_weight is not None else box.sample_weight
    return [p for p in (box.x, y, weight if y is not None else None) if p is not None]


def _rows(parts: list[Any], start: int, stop: int) -> ArraySource:
    sliced = [p[start:stop] for p in parts] + [None] * (3 - len(parts))
    return ArraySource(sliced[0], sliced[1], sliced[2], stop - start)


class GreedyAdapter(BoxAdapter):
    """Takes everything: it would hijack every input of the process."""

    name = "box-greedy"

    def can_adapt(self, x: Any) -> bool:
        return True


class TouchyAdapter(BoxAdapter):
    """Raises on inputs other than its own."""

    name = "box-touchy"

    def can_adapt(self, x: Any) -> bool:
        if not isinstance(x, Box):
            raise AttributeError("the input has no `.x`")
        return True


class TruthyAdapter(BoxAdapter):
    """Answers a non-bool."""

    name = "box-truthy"

    def can_adapt(self, x: Any) -> Any:
        return isinstance(x, Box) or None


class SchemaClaimingAdapter(BoxAdapter):
    """Claims ``schema`` but raises a raw TypeError when given one."""

    name = "box-schema"
    supports = BoxAdapter.supports | {"schema"}

    def adapt(self, request: AdaptRequest) -> Source:
        if request.schema is not None:
            raise TypeError("schemas are not implemented")
        return super().adapt(request)


class OwnTruthyAdapter(BoxAdapter):
    """Answers a non-bool (1) for its own input."""

    name = "box-own-truthy"

    def can_adapt(self, x: Any) -> Any:
        return 1 if isinstance(x, Box) else False


class PerRequestAdapter(BoxAdapter):
    """Honours neither ``class_weight`` nor ``steps`` for any request (``supports_for``).

    Its static ``supports`` still names them; ``fitpipe`` asks ``supports_for`` and refuses
    them with the shared error, so the adapter is sound, and the kit must judge it by what
    it honours for each request, as ``fit`` does.
    """

    name = "box-per-request"

    def supports_for(self, request: AdaptRequest) -> frozenset[str]:
        return self.supports - {"class_weight", "steps"}


def suite(bug: str | None, adapter: type[BoxAdapter] = BoxAdapter) -> AdapterConformanceTests:
    class _Suite(AdapterConformanceTests):
        adapter_name = adapter.name
        max_examples = 3

        def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
            return Box(x, y, sample_weight, bug)

    return _Suite()


@pytest.fixture
def register(clean_registry: Callable[[str], None]) -> Callable[[type[BoxAdapter]], None]:
    def add(adapter: type[BoxAdapter]) -> None:
        fitpipe.register_adapter(adapter(), priority=1000)
        clean_registry(adapter.name)

    return add


@pytest.mark.parametrize("check", NEW_CHECKS)
def test_a_sound_adapter_passes(register: Callable[[type], None], check: str) -> None:
    register(BoxAdapter)
    getattr(suite(None), check)()


@pytest.fixture
def no_shrinking() -> Iterator[None]:
    """Failing checks stop at their first failing example (these tests expect failures)."""
    before = settings._current_profile  # restored so other tests keep the suite's profile
    settings.register_profile(
        "fitpipe-mutants-no-shrink", settings(), phases=(Phase.explicit, Phase.generate)
    )
    settings.load_profile("fitpipe-mutants-no-shrink")
    try:
        yield
    finally:
        settings.load_profile(before or "default")


@pytest.mark.usefixtures("no_shrinking")
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_broken_adapter_fails(register: Callable[[type], None], bug: str) -> None:
    register(BoxAdapter)
    with pytest.raises(AssertionError):
        getattr(suite(bug), BUGS[bug])()


@pytest.mark.parametrize(
    ("adapter", "wording"),
    [
        (GreedyAdapter, "returned True"),
        (TouchyAdapter, "raised AttributeError"),
        (TruthyAdapter, "returned None"),
    ],
)
def test_can_adapt_of_foreign_inputs(
    register: Callable[[type], None], adapter: type[BoxAdapter], wording: str
) -> None:
    register(adapter)
    with pytest.raises(AssertionError, match=wording):
        suite(None, adapter).test_can_adapt_refuses_foreign_inputs()


def test_a_claimed_schema_needs_schema_for(register: Callable[[type], None]) -> None:
    register(SchemaClaimingAdapter)
    with pytest.raises(AssertionError, match="override `schema_for"):
        suite(None, SchemaClaimingAdapter).test_claimed_schema_is_exercised()


def test_an_adapter_without_schema_skips_its_check(register: Callable[[type], None]) -> None:
    register(BoxAdapter)
    with pytest.raises(pytest.skip.Exception, match="does not claim `schema`"):
        suite(None).test_claimed_schema_is_exercised()
    suite(None).test_adapter_is_registered_and_chosen()  # its can_adapt answers True


def test_can_adapt_of_the_own_input_must_be_true(register: Callable[[type], None]) -> None:
    register(OwnTruthyAdapter)
    with pytest.raises(AssertionError, match="returned 1, not True"):
        suite(None, OwnTruthyAdapter).test_adapter_is_registered_and_chosen()


def test_foreign_inputs_taken_excuses_a_kind(register: Callable[[type], None]) -> None:
    register(GreedyAdapter)
    greedy = suite(None, GreedyAdapter)
    type(greedy).foreign_inputs_taken = frozenset(
        {"numpy", "dict", "list", "tf.data", "generator", "None", "str", "pandas", "object"}
    )
    greedy.test_can_adapt_refuses_foreign_inputs()


def test_an_empty_batch_is_named() -> None:
    assert flat_rows(np.zeros((0, 3), np.float32)).shape == (0, 3)
    assert flat_rows({"a": np.zeros((0, 2, 2)), "b": np.zeros(0)}).shape == (0, 5)


@pytest.mark.usefixtures("no_shrinking")
def test_messages_name_the_missing_capability(register: Callable[[type], None]) -> None:
    register(BoxAdapter)
    with pytest.raises(AssertionError, match=r"claims `validation_split`.*nor Splittable"):
        suite("no_split").test_claimed_validation_split_splits()
    with pytest.raises(AssertionError, match=r"claims `split_by`.*without their keys"):
        suite("ignores_split_by").test_claimed_split_by_keeps_keys_together()
    with pytest.raises(
        AssertionError, match=r"batch \d+ of an epoch \(shuffle=False\) has no rows"
    ):
        suite("empty_batch").test_order_without_shuffle()
    with pytest.raises(AssertionError, match="shuffling must not change `batch_size`"):
        suite("one_row_when_shuffled").test_claimed_shuffle_reorders_rows()
    with pytest.raises(AssertionError, match="came in the rows' own order"):
        suite("never_shuffles").test_claimed_shuffle_reorders_rows()


def test_the_kit_asks_what_an_adapter_supports_for_each_request(
    register: Callable[[type], None],
) -> None:
    register(PerRequestAdapter)
    checks = suite(None, PerRequestAdapter)
    checks.test_unsupported_arguments_rejected()  # class_weight and steps are refused
    for claimed in ("test_claimed_class_weight_weights_rows", "test_claimed_steps_are_taken"):
        with pytest.raises(pytest.skip.Exception, match="does not claim"):
            getattr(checks, claimed)()
    checks.test_order_without_shuffle()
