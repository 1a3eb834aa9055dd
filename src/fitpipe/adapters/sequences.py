"""Lists and tuples of arrays: one array per input of a multi-input model."""

from __future__ import annotations

from typing import Any

from fitpipe.adapters.arrays import ArrayFamilyAdapter, is_array_like, is_scalar_sequence
from fitpipe.adapters.mappings import holds_arrays


class SequenceAdapter(ArrayFamilyAdapter):
    """Takes a list or tuple whose items are arrays (or nested lists/dicts of arrays)."""

    name = "sequence"
    accepts = "a list or tuple of arrays/tensors (one per model input)"

    def can_adapt(self, x: Any) -> bool:
        """True for non-empty lists/tuples of array structures (not lists of numbers)."""
        if isinstance(x, (list, tuple)) and not x:
            return True  # taken to explain that an empty structure holds no arrays
        if not isinstance(x, (list, tuple)) or is_scalar_sequence(x):
            return False
        return all(is_array_like(item) or holds_arrays(item) for item in x)
