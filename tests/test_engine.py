"""engine.py's planning: how many workers of how many threads fit the nodes. No Ray needed."""

from __future__ import annotations

import os

import pytest

from neural_style_tf.apps import engine


def test_workers_fit_the_nodes():
    options = engine.PoolOptions(threads=1, memory=3 * 2**30)
    assert engine.plan_workers(options, [(2.0, 16 * 2**30, 0.0)], range(5)) == (2, 1)
    assert engine.plan_workers(options, [(8.0, 7 * 2**30, 0.0)], range(5)) == (2, 1)  # memory-bound
    assert engine.plan_workers(engine.PoolOptions(), [(2.0, 16 * 2**30, 0.0)], range(5)) == (1, 2)
    assert engine.plan_workers(engine.PoolOptions(workers=2), [(2.0, 16 * 2**30, 0.0)], range(5)) == (2, 1)
    assert engine.plan_workers(engine.PoolOptions(workers=3), [(2.0, 16 * 2**30, 0.0)], range(2)) == (2, 1)
    with pytest.raises(engine.UsageError, match="no node"):
        engine.plan_workers(engine.PoolOptions(threads=4), [(2.0, 16 * 2**30, 0.0)], range(5))
    env = engine.worker_options(engine.PoolOptions(), 3)["runtime_env"]["env_vars"]
    assert env == {"TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())}
    assert "CUDA_VISIBLE_DEVICES" not in engine.worker_options(engine.PoolOptions(gpus=1), 1)["runtime_env"]["env_vars"]
