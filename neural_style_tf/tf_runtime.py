"""TensorFlow's runtime: imported once and quietly, sessions configured for the machine.

No module imports TensorFlow at its own import: the functions that build graphs call
`import_tensorflow()` where they build them, so every command can check its inputs
in about a second before paying the seconds TensorFlow's import costs.
"""

from __future__ import annotations

import contextlib
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
    - NumPy's and SciPy's BLAS on one thread (single_threaded_blas).
    A value the user set in the environment wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    return_freed_tensors_to_the_os()
    single_threaded_blas()


# The environment variables that set OpenBLAS's (or MKL's) thread count: one the user set wins.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_blas():
    """Run NumPy's and SciPy's BLAS and LAPACK on one thread.

    Why: they run between TensorFlow's evaluations, while TensorFlow's own thread pool
    still spins on the cores, and OpenBLAS's threads then wait on each other. Measured on
    2 cores (Intel Xeon, other jobs running): a 512 x 512 float64 eigh (the W2 target's
    square root, once per style layer) 0.33 s with OpenBLAS's threads, 0.05 s on one;
    SciPy's L-BFGS-B on 590k pixels 556 ms per evaluation against 263 ms. Returns whether
    the limit was set (threadpoolctl finds the libraries already loaded).

    SciPy's wheels bring their own OpenBLAS (scipy.libs), apart from NumPy's, and L-BFGS-B's
    setulb calls that one: it is loaded here too, or it kept its 2 threads. Measured on a
    2-core AMD EPYC at 128 px (issue 35): the main thread spent a fifth of the run in
    OpenBLAS's exec_blas_async_wait, and a session.run took 0.15 s instead of 0.11 s.
    """
    if any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        return False
    import numpy  # noqa: F401  (loads its BLAS, so that threadpoolctl sees it)
    import scipy.linalg  # noqa: F401  (loads SciPy's own BLAS, which L-BFGS-B uses)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    return True


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
        with keras_not_preloaded():
            import tensorflow as tf

        return tf
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            with keras_not_preloaded():
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


# What TensorFlow's __init__ imports "so that ... registration of optimizers in the
# SavedModel registry" happens (its own comment), inside a try that ignores an ImportError.
KERAS_PRELOAD = "keras.src.optimizers"


@contextlib.contextmanager
def keras_not_preloaded():
    """Import TensorFlow without the Keras that its __init__ imports eagerly.

    Why: TensorFlow >= 2.16 imports all of Keras 3 at its own import (and Keras imports
    matplotlib.pyplot, OpenCV and Pillow), only to register Keras's optimizers for
    SavedModels, which nothing here saves or loads. Measured on the AMD EPYC: 1208 Python
    modules fewer, 81 MB less resident memory (623 -> 542 MB after the import) and 0.6-1.5 s
    less start-up; the 512 px plain command's peak is what issue 33 bounds. A None in
    sys.modules makes that one import raise ImportError, which TensorFlow's try expects
    (it is how TensorFlow runs without Keras installed); the entry is removed right after,
    so `tf.keras`, `import keras` and --network model.keras import Keras as usual.
    A Keras imported before TensorFlow is left alone.
    """
    blocked = KERAS_PRELOAD not in sys.modules
    if blocked:
        sys.modules[KERAS_PRELOAD] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if blocked and sys.modules.get(KERAS_PRELOAD, 0) is None:
            del sys.modules[KERAS_PRELOAD]


def session_config():
    """Thread settings for this machine: all cores to each op, ops one after another.

    The VGG graph is a chain, so inter-op parallelism has nothing to overlap and only
    makes intra-op pools compete for the cores. TF_NUM_INTRAOP_THREADS, when set (by a
    batch worker sharing the machine), wins.

    Grappler (TensorFlow's graph optimizer) is off on a machine without a GPU: on this
    fixed chain of convolutions its passes cost several seconds at the first run of every
    graph (the objective's and the targets') and gained nothing per evaluation. Measured at
    512x384 on a 2-core AMD EPYC, VGG-19 in bfloat16 (docs/performance.md#start-up): the
    objective built in 3.1 s instead of 6.9 s, its first evaluation 2.3 s instead of 6.3 s,
    later ones 1.9 s either way (a loaded machine). On a GPU its layout pass matters: kept.
    """
    tf = import_tensorflow()
    cores = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or os.cpu_count() or 1
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=cores, inter_op_parallelism_threads=1)
    if not tf.config.list_physical_devices("GPU"):
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


def onednn_on():
    """Whether TensorFlow's oneDNN kernels are on (configure_process turns them on)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "") not in ("0", "false", "False")


def device_line(precision="float32"):
    """The device that runs the graphs, for the start line: the GPU's name, or the CPU
    with its thread count and whether oneDNN is on; then the network's precision."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU {details.get('device_name', gpus[0].name)}, {precision}"
    threads = session_config().intra_op_parallelism_threads
    return f"CPU, {threads} threads, oneDNN {'on' if onednn_on() else 'off'}, {precision}"


# ---------------------------------------------------------------- precision
# The CPU flags (as Linux names them in /proc/cpuinfo) with which oneDNN runs bfloat16
# convolutions natively: AMX tiles (Sapphire Rapids and later) or AVX512-BF16 dot
# products (Cooper Lake, Zen 4). Without them oneDNN emulates bfloat16 in float32, slower
# than float32 itself.
NATIVE_BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")
# oneDNN's ONEDNN_MAX_CPU_ISA values that cap it below every bfloat16 instruction set.
ISAS_WITHOUT_BFLOAT16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_flags(path="/proc/cpuinfo"):
    """The flags of the first CPU in `path` (Linux), or an empty set where there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16(flags, onednn=True, max_isa=None):
    """Whether oneDNN computes bfloat16 natively on a CPU with these `flags`: one of
    NATIVE_BFLOAT16_FLAGS, oneDNN on, and not capped below it by ONEDNN_MAX_CPU_ISA."""
    if not onednn or (max_isa or "").upper() in ISAS_WITHOUT_BFLOAT16:
        return False
    return any(flag in flags for flag in NATIVE_BFLOAT16_FLAGS)


def bfloat16_problem(flags=None, gpu=None):
    """None where this machine can run the network in bfloat16, else why not (one line).

    oneDNN refuses a bfloat16 convolution on a CPU without native bfloat16 ("could not
    create a primitive descriptor", seen with ONEDNN_MAX_CPU_ISA=AVX2); TensorFlow's own
    kernels (oneDNN off) run it, emulated, about 16x slower than float32.
    """
    if gpu is None:
        gpu = bool(import_tensorflow().config.list_physical_devices("GPU"))
    flags = cpu_flags() if flags is None else flags
    if gpu or not onednn_on() or native_bfloat16(flags, True, os.environ.get("ONEDNN_MAX_CPU_ISA")):
        return None
    return "this CPU has no native bfloat16 (AMX-BF16 or AVX512-BF16), and oneDNN cannot run it; use float32"


def choose_precision(requested, supported=("float32", "bfloat16"), flags=None, gpu=None):
    """The precision a run uses for --precision `requested` on a network that can run in
    `supported`: "auto" is bfloat16 on a CPU that computes it natively, else float32.

    On a GPU "auto" is float32 until bfloat16 is measured there. `flags` (default: this
    CPU's) and `gpu` (default: whether TensorFlow sees one) are given by tests.
    """
    if requested != "auto":
        return requested
    if "bfloat16" not in supported:
        return "float32"
    if gpu is None:
        gpu = bool(import_tensorflow().config.list_physical_devices("GPU"))
    flags = cpu_flags() if flags is None else flags
    native = native_bfloat16(flags, onednn_on(), os.environ.get("ONEDNN_MAX_CPU_ISA"))
    return "bfloat16" if native and not gpu else "float32"


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


# The largest piece reserve_cpu_pool has grown TensorFlow's CPU pool by in this process.
_reserved_pool_bytes = [0]


def reserve_cpu_pool(nbytes):
    """Grow TensorFlow's CPU memory pool by one piece of `nbytes`, before an evaluation
    needs it, by allocating (and freeing at once) one uninitialised tensor of that size.

    Why: with oneDNN, TensorFlow keeps tensors in a BFC pool that grows by regions of
    doubling size (2, 4, 8, ... MB) and never gives a region back. An evaluation's
    tensors were spread over four or five regions, and the partly used ones left their
    touched pages resident: at 512x384 the pool held 300-370 MB resident for 175-274 MB of
    tensors alive at once, and which regions an evaluation touched changed from run to run
    (the plain command's peak varied between 1.15 and 1.27 GB). In one region large enough
    for the whole evaluation, freed tensors are reused in place. Measured on the AMD EPYC,
    30 iterations at 512 px: alone, it lowered the usual peak by 30-40 MB (13 runs, median
    1.164 GB) but not the spread (up to 1.28 GB), at the same speed; beside
    feature_statistics.moments_of_bfloat16, which removed the spread, its own effect is
    within the noise (docs/performance.md, Memory at 512 px). Kept as a cheap guard: one
    allocation per process.

    Only the pages an evaluation writes become resident: an unused tail costs address
    space, not memory. Does nothing on a GPU (its own allocator), for a size not larger
    than one already reserved, or where the allocation fails (it is only an aid).
    Returns whether it reserved.
    """
    if nbytes <= _reserved_pool_bytes[0]:
        return False
    tf = import_tensorflow()
    if tf.config.list_physical_devices("GPU"):
        return False
    graph = tf.Graph()
    with graph.as_default():
        block = tf.raw_ops.Empty(shape=[int(nbytes)], dtype=tf.uint8, init=False)
    try:
        with tf.compat.v1.Session(graph=graph, config=session_config()) as session:
            session.run(block.op)  # the op, not its value: nothing is written or fetched
    except tf.errors.OpError:
        return False
    _reserved_pool_bytes[0] = int(nbytes)
    return True


# ---------------------------------------------------------------- the network's weights
# The graph collection holding every HeldWeight of a graph: what initialize_weights feeds.
HELD_WEIGHTS = "neural_style_tf.held_weights"


class HeldWeight:
    """One array of a network's weights in one graph: the variable holding it, and the
    placeholder and array that initialise it (initialize_weights)."""

    def __init__(self, array, name):
        tf = import_tensorflow()
        self.array = array
        self.placeholder = tf.compat.v1.placeholder(tf.as_dtype(array.dtype), array.shape, name=f"{name}_value")
        # collections=[]: outside GLOBAL_VARIABLES, so that a global_variables_initializer
        # (which would need this placeholder fed) never runs it; initialize_weights does.
        variable = tf.compat.v1.Variable(self.placeholder, trainable=False, collections=[], name=name,
                                         use_resource=True)
        self.initializer = variable.initializer
        self.value = variable.value()


def held_weight(array, name="weight"):
    """`array` (a NumPy array of a network's weights) as a tensor of the graph being built:
    a variable that every session over the graph initialises once from a placeholder
    (initialize_weights), not a constant.

    Why not tf.constant: a constant's value is part of the GraphDef, so every graph that
    built the network (the objective's, the targets', and the optimised copies TensorFlow
    makes of each when a session runs it) held its own copy of all the weights: at 512 px
    the plain command's peak RSS had about 13 copies of the network's weights in it
    (issue 33). A variable's value lives only in its session, and the placeholder's feed
    is freed once the variable is initialised; the array itself is the network's, not a
    copy. The same array asked for twice in one graph is one variable.
    """
    tf = import_tensorflow()
    held = tf.compat.v1.get_default_graph().get_collection_ref(HELD_WEIGHTS)
    for weight in held:
        if weight.array is array:
            return weight.value
    weight = HeldWeight(array, name)
    held.append(weight)
    return weight.value


def initialize_weights(session):
    """Initialise the network weights held in `session`'s graph (held_weight): one run,
    each array fed once. Every session over a graph with a network's features calls it
    before its first run; it does nothing on a graph without any. Returns `session`."""
    held = session.graph.get_collection(HELD_WEIGHTS)
    if held:
        session.run([w.initializer for w in held], {w.placeholder: w.array for w in held})
    return session


def network_session(graph, config=None):
    """A session over `graph` (configured by `config`, default session_config()) with the
    network's weights in it initialised (initialize_weights)."""
    tf = import_tensorflow()
    return initialize_weights(tf.compat.v1.Session(graph=graph, config=config or session_config()))
