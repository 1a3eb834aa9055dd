"""fitpipe's Hypothesis profiles, for fitpipe's own suite and for third-party adapter suites.

Two profiles, picked with the environment variable ``FITPIPE_HYPOTHESIS_PROFILE``:

* ``dev`` (the default): 100 examples per property;
* ``ci``: 15 examples per property, for continuous integration.

Both have no deadline and tolerate slow data generation (building ``tf.data`` pipelines is
slow next to Hypothesis' expectations). Load them in a third-party ``conftest.py`` with::

    from fitpipe.testing import load_profile

    load_profile()

or run pytest with ``-p fitpipe.testing.plugin``.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_PROFILE", "PROFILES", "PROFILE_ENV", "load_profile", "register_profiles"]

#: The environment variable naming the profile to load.
PROFILE_ENV = "FITPIPE_HYPOTHESIS_PROFILE"

#: The profile loaded when the variable is unset.
DEFAULT_PROFILE = "dev"

#: Examples per property of each profile.
PROFILES: dict[str, int] = {"ci": 15, "dev": 100}


def register_profiles() -> None:
    """Registers the ``ci`` and ``dev`` profiles with Hypothesis (again is harmless)."""
    from hypothesis import HealthCheck, settings

    for name, max_examples in PROFILES.items():
        settings.register_profile(
            name,
            max_examples=max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )


def load_profile(name: str | None = None) -> str:
    """Registers the profiles and loads one.

    Args:
        name: The profile to load; when None, the one named by ``FITPIPE_HYPOTHESIS_PROFILE``
            (``dev`` when unset). Any profile registered with Hypothesis may be named.

    Returns:
        The name of the loaded profile.

    Raises:
        hypothesis.errors.InvalidArgument: When no profile of that name is registered.

    """
    from hypothesis import settings

    register_profiles()
    chosen = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    settings.load_profile(chosen)
    return chosen
