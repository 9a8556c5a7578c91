"""tf_runtime.py: TensorFlow imported once and quietly, sessions configured for the
machine, the process set up before the import, and the device line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from neural_style_tf import tf_runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_lines(code):
    """The lines `python -c code` prints, run from the checkout; it must succeed."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")


@pytest.mark.slow
def test_tensorflow_start_up_chatter_is_kept_off_stderr():
    # TensorFlow's C++ runtime prints CUDA-driver INFO/ERROR lines on machines without a
    # GPU; a user running the CLI should only see the tool's own lines.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("import sys, stylize, vgg\n"
            "from neural_style_tf.tf_runtime import import_tensorflow\n"
            "assert 'tensorflow' not in sys.modules\n"
            "tf = import_tensorflow()\n"
            "assert import_tensorflow() is tf\n"
            "print(tf.__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "tensorflow", done.stderr
    assert done.stderr == ""


@pytest.mark.slow
def test_a_failing_import_shows_what_it_printed(tmp_path):
    """With fd 2 pointed elsewhere during the import, a broken TensorFlow would fail in
    silence; what it printed is shown after all."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nos.write(2, b'native loader said: no AVX\\n')\n"
                                      "raise ImportError('broken build')\n")
    code = ("from neural_style_tf.tf_runtime import import_tensorflow\n"
            "try:\n    import_tensorflow()\nexcept ImportError as exc:\n    print('raised', exc)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), ROOT])
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "raised broken build"
    assert "native loader said: no AVX" in done.stderr


@pytest.mark.slow
def test_tensorflow_is_imported_without_keras_and_keras_still_imports_after():
    # TensorFlow's __init__ imports all of Keras (and matplotlib, OpenCV) for a SavedModel
    # registry nothing here uses: keras_not_preloaded skips it, and must not break Keras.
    code = ("import sys\n"
            "from neural_style_tf.tf_runtime import import_tensorflow\n"
            "tf = import_tensorflow()\n"
            "print(sorted(m for m in ('keras', 'matplotlib', 'cv2') if m in sys.modules))\n"
            "print('keras.src.optimizers' in sys.modules)\n"
            "import keras\n"
            "print(type(keras.optimizers.Adam()).__name__, tf.keras.layers.Dense.__name__)\n")
    assert python_lines(code)[:3] == ["[]", "False", "Adam Dense"]


def test_a_keras_imported_before_tensorflow_is_left_alone(monkeypatch):
    marker = object()
    monkeypatch.setitem(sys.modules, tf_runtime.KERAS_PRELOAD, marker)
    with tf_runtime.keras_not_preloaded():
        assert sys.modules[tf_runtime.KERAS_PRELOAD] is marker
    assert sys.modules[tf_runtime.KERAS_PRELOAD] is marker


def test_the_keras_preload_is_blocked_only_during_the_import(monkeypatch):
    monkeypatch.delitem(sys.modules, tf_runtime.KERAS_PRELOAD, raising=False)
    with tf_runtime.keras_not_preloaded():
        with pytest.raises(ImportError):
            __import__(tf_runtime.KERAS_PRELOAD)
    assert tf_runtime.KERAS_PRELOAD not in sys.modules


def test_import_tensorflow_returns_the_imported_module():
    tf = tf_runtime.import_tensorflow()
    assert tf is sys.modules["tensorflow"] and tf_runtime.import_tensorflow() is tf
    assert hasattr(tf.compat.v1, "Session")


def test_session_config_gives_each_op_every_core_and_runs_ops_in_turn(monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    config = tf_runtime.session_config()
    assert config.intra_op_parallelism_threads == (os.cpu_count() or 1)
    assert config.inter_op_parallelism_threads == 1
    # a batch worker sharing the machine sets its share
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert tf_runtime.session_config().intra_op_parallelism_threads == 3


def test_grappler_is_off_on_the_cpu_and_on_with_a_gpu(monkeypatch):
    tf = tf_runtime.import_tensorflow()
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert tf_runtime.session_config().graph_options.rewrite_options.disable_meta_optimizer == (not has_gpu)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert not tf_runtime.session_config().graph_options.rewrite_options.disable_meta_optimizer


def test_configure_process_sets_defaults_but_the_users_values_win(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    calls = []
    monkeypatch.setattr(tf_runtime, "return_freed_tensors_to_the_os", lambda: calls.append(1))
    tf_runtime.configure_process()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"  # set by the user: kept
    assert calls == [1]
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    tf_runtime.configure_process()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_return_freed_tensors_to_the_os_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        assert tf_runtime.return_freed_tensors_to_the_os() is False  # harmless elsewhere
    else:
        assert tf_runtime.return_freed_tensors_to_the_os() is True


def test_device_line_names_the_cpu_threads_onednn_and_the_precision(monkeypatch):
    tf = tf_runtime.import_tensorflow()
    if tf.config.list_physical_devices("GPU"):
        assert tf_runtime.device_line().startswith("GPU ")
        return
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert tf_runtime.device_line() == "CPU, 2 threads, oneDNN off, float32"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert tf_runtime.device_line("bfloat16") == "CPU, 2 threads, oneDNN on, bfloat16"


def test_blas_runs_on_one_thread_unless_the_user_set_a_count(monkeypatch):
    from threadpoolctl import threadpool_info

    for name in tf_runtime.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tf_runtime.single_threaded_blas() is True
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert tf_runtime.single_threaded_blas() is False


def test_scipys_own_blas_runs_on_one_thread_too():
    """SciPy's wheels bring their own OpenBLAS, which L-BFGS-B calls; in a fresh process it is
    loaded after configure_process unless that loads it, and kept its threads (issue 35)."""
    env_clear = "".join(f"os.environ.pop({name!r}, None)\n" for name in tf_runtime.BLAS_THREAD_VARIABLES)
    lines = python_lines("import os\n" + env_clear + "from neural_style_tf.tf_runtime import configure_process\n"
                         "configure_process()\n"
                         "import scipy.optimize\n"
                         "from threadpoolctl import threadpool_info\n"
                         "for pool in threadpool_info():\n"
                         "    print(pool['user_api'], pool['filepath'], pool['num_threads'])\n")
    blas = [line.split() for line in lines if line.startswith("blas ")]
    assert any("scipy.libs" in path or "scipy/" in path for _, path, _ in blas), blas
    assert all(threads == "1" for _, _, threads in blas), blas


@pytest.mark.slow
def test_reserving_the_cpu_pool_costs_address_space_not_memory():
    """reserve_cpu_pool grows TensorFlow's pool by one untouched piece: the process's
    resident memory barely moves, a smaller or equal reservation after it does nothing,
    and sessions run as before."""
    code = ("from neural_style_tf import tf_runtime\n"
            "tf_runtime.configure_process()\n"
            "tf = tf_runtime.import_tensorflow()\n"
            "def rss():\n"
            "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024\n"
            "with tf.compat.v1.Session(config=tf_runtime.session_config()) as s:\n"
            "    s.run(tf.constant(1.0) + 1.0)\n"
            "before = rss()\n"
            "print(tf_runtime.reserve_cpu_pool(512 << 20), tf_runtime.reserve_cpu_pool(256 << 20))\n"
            "print((rss() - before) >> 20)\n"
            "with tf.Graph().as_default(), tf.compat.v1.Session(config=tf_runtime.session_config()) as s:\n"
            "    print(s.run(tf.reduce_sum(tf.ones((1000, 1000)))))\n")
    reserved, growth_mb, total = python_lines(code)[:3]
    assert reserved == "True False"
    assert int(growth_mb) < 64  # of the 512 MB reserved
    assert float(total) == 1e6
