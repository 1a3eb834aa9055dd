"""Load fitpipe's Hypothesis profile (``FITPIPE_HYPOTHESIS_PROFILE``: ``ci`` or ``dev``)."""

from fitpipe.testing import load_profile

load_profile()
