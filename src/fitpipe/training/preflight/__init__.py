"""The pre-flight check: values that spoil training, found before the first step.

``Trainer.fit(check=...)`` runs it on the data ``fit`` is given; ``fitpipe check DATA`` and
:func:`check_data` report it as a table (or JSON). See
:mod:`fitpipe.training.preflight.fit_check` for what each input form costs.
"""

from fitpipe.training.preflight.checks import CHECK_MODES, check_data, check_mode
from fitpipe.training.preflight.findings import Finding
from fitpipe.training.preflight.fit_check import check_evaluate, check_fit, finite_check
from fitpipe.training.preflight.report import CheckReport

__all__ = [
    "CHECK_MODES",
    "CheckReport",
    "Finding",
    "check_data",
    "check_evaluate",
    "check_fit",
    "check_mode",
    "finite_check",
]
