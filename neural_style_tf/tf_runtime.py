"""TensorFlow's runtime: imported once and quietly, sessions configured for the machine.

No module imports TensorFlow at its own import: the functions that build graphs call
`import_tensorflow()` where they build them, so every command can check its inputs
in about a second before paying the seconds TensorFlow's import costs.
"""

from __future__ import annotations

import os
import sys

# glibc's mallopt parameters (malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20


def configure_process():
    """What a command sets before TensorFlow is imported (it is read at the import).

    - TF_CPP_MIN_LOG_LEVEL 3: see import_tensorflow.
    - TF_ENABLE_ONEDNN_OPTS 1: oneDNN kernels are off by default on CPUs without
      AVX-512; on this AVX2 machine they measured 22% faster per evaluation
      (docs/performance.md).
    - glibc's allocator returns freed tensors to the OS (return_freed_tensors_to_the_os).
    A value the user set in the environment wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    return_freed_tensors_to_the_os()


def import_tensorflow():
    """Import TensorFlow once, without the start-up chatter of its C++ runtime.

    On a machine without CUDA, TensorFlow prints "Could not find cuda drivers" and a
    "failed call to cuInit" ERROR before any user code runs; absl writes the first before
    TF_CPP_MIN_LOG_LEVEL is read, so the only way to hide it is to point file
    descriptor 2 elsewhere during the import. If the import fails, what it printed is
    shown after all. TF_CPP_MIN_LOG_LEVEL below 3 (set by the user) keeps every message.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "3":
        import tensorflow as tf

        return tf
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the cuInit attempt happens here, once
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def session_config():
    """Thread settings for this machine: all cores to each op, ops one after another.

    The VGG graph is a chain, so inter-op parallelism has nothing to overlap and only
    makes intra-op pools compete for the cores. TF_NUM_INTRAOP_THREADS, when set (by a
    batch worker sharing the machine), wins.
    """
    tf = import_tensorflow()
    cores = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or os.cpu_count() or 1
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=cores, inter_op_parallelism_threads=1)


def device_line():
    """The device that runs the graphs, for the start line: the GPU's name, or the CPU
    with its thread count and whether oneDNN is on."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU {details.get('device_name', gpus[0].name)}"
    threads = session_config().intra_op_parallelism_threads
    onednn = "on" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "") not in ("0", "false", "False") else "off"
    return f"CPU, {threads} threads, oneDNN {onednn}"


def return_freed_tensors_to_the_os():
    """Make glibc serve every allocation of 1 MB or more with its own mmap, and use 2 arenas.

    Why: by default glibc raises its mmap threshold each time a large block is freed, so
    TensorFlow's activation-sized tensors end up on the heap, where freed ones fragment
    it and are never returned; more threads also mean more arenas holding freed memory.
    Measured at 512x384 with VGG-19 shapes (docs/performance.md): peak RSS 2.3 GB
    -> 1.7 GB. Call it before TensorFlow is imported. Returns False where it does not
    apply (not glibc), which is harmless.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, 2))
