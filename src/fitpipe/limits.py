"""The memory limit that decides which data is held resident and which is streamed.

One name, read at call time (``limits.RESIDENT_BYTES_LIMIT``), so that a test or a
benchmark can lower it in one place for every reader:

* NumPy arrays up to it in all are held in CPU variables and sliced inside the compiled
  loop (:mod:`fitpipe.pipeline`); larger arrays are never copied whole: their rows are
  gathered from NumPy a block of batches at a time (``fitpipe.pipeline.numpy_rows``);
* Parquet data whose converted columns take at most it is read once, whole, and held like
  an Arrow table (:mod:`fitpipe.adapters`); larger data is streamed row group by row group;
* in-memory rows sent to tf.data service workers travel inside the graph up to it.

:data:`DEVICE_ROWS_BYTES` decides which rows in memory a trainer whose step runs on an
accelerator (a GPU) copies to it for a call: NumPy arrays (of any size up to it) and held
rows (:mod:`fitpipe.pipeline.device_rows`); larger rows stay in host memory.

:data:`STREAM_IN_BLOCKS` decides how streamed data (Parquet, NumPy arrays over the limit,
batches made in Python) reaches the trainer: a block (a row group, a shuffle buffer, the
rows of many batches) at a time, held as tensors while its batches are cut inside the
compiled loop (True), or batch by batch through ``tf.data`` (False; what a distributed
input, or one on a ``tf.data`` service, always takes).
"""

from __future__ import annotations

__all__ = ["DEVICE_ROWS_BYTES", "RESIDENT_BYTES_LIMIT", "STREAM_IN_BLOCKS"]

#: Bytes of data held in memory at most; larger data is streamed.
RESIDENT_BYTES_LIMIT = 256 * 2**20

#: Bytes of rows in memory copied at most to the accelerator the step runs on (see above).
DEVICE_ROWS_BYTES = 8 * 2**30

#: Streamed inputs that convert rows in blocks hand the trainer whole blocks (see above).
STREAM_IN_BLOCKS = True
