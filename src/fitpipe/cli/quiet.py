"""TensorFlow's start-up lines kept off the command's stderr.

Importing TensorFlow 2.21 writes lines such as ``oneDNN custom operations are on``, ``Could
not find cuda drivers on your machine`` and ``failed call to cuInit`` straight to file
descriptor 2 from C++, before ``TF_CPP_MIN_LOG_LEVEL`` is read by absl, so no environment
variable silences them. The command imports TensorFlow (and looks for devices, which is when
CUDA reports a missing driver) with descriptor 2 pointed at a temporary file, then writes back
every line that is not one of these start-up notices. A CPU machine is not an error.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["STARTUP_NOISE", "import_tensorflow_quietly"]

#: The start-up notices dropped (matched anywhere in a line).
STARTUP_NOISE = re.compile(
    "|".join(
        (
            r"All log messages before absl::InitializeLog\(\) is called",
            r"oneDNN custom operations are on",
            r"TF_ENABLE_ONEDNN_OPTS",
            r"Could not find cuda drivers",
            r"failed call to cuInit",
            r"cudart_stub\.cc",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"computation placer already registered",
            r"This TensorFlow binary is optimized to use available CPU instructions",
            r"rebuild TensorFlow with the appropriate compiler flags",
            r"TensorRT",
        )
    )
)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and lists its devices, dropping the start-up notices from stderr.

    Does nothing when TensorFlow is already imported. Anything else written to stderr
    meanwhile (a warning, an error) is written back, in order.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if not STARTUP_NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
