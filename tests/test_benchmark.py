"""benchmark.py: the FLOP counter against a hand count and against the graph TF builds; the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vgg
from neural_style_tf.apps import benchmark


def two_conv_net():
    rng = np.random.default_rng(0)
    weights = {"conv1_1": (rng.standard_normal((3, 3, 3, 4)).astype(np.float32), np.zeros(4, np.float32)),
               "conv2_1": (rng.standard_normal((3, 3, 4, 6)).astype(np.float32), np.zeros(6, np.float32))}
    layers = ("conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "pool2")
    return vgg.Network("two convs", "(test)", layers, weights, np.zeros(3, np.float32))


def test_flops_match_a_hand_count():
    # 7x5 image: conv1_1 at 7x5, 3->4; pool (SAME) -> 4x3; conv2_1 at 4x3, 4->6; pool2 not built.
    flops = benchmark.count_flops(two_conv_net(), 7, 5, ("relu1_1", "relu2_1"), ("relu1_1", "relu2_1"))
    conv1 = 2 * 35 * 9 * 3 * 4  # 7560
    conv2 = 2 * 12 * 9 * 4 * 6  # 5184
    assert flops["conv_forward"] == conv1 + conv2 == 12744
    assert flops["conv_backward"] == 12744
    assert flops["gram_forward"] == 2 * 35 * 16 + 2 * 12 * 36 == 1984
    assert flops["gram_backward"] == 2 * 1984
    assert flops["total"] == 2 * 12744 + 3 * 1984


def test_flops_stop_at_the_deepest_layer():
    flops = benchmark.count_flops(two_conv_net(), 7, 5, ("relu1_1",), ("relu1_1",))
    assert flops["conv_forward"] == 7560 and flops["gram_forward"] == 2 * 35 * 16


def test_graph_computes_what_the_counter_counts(tiny_network):
    """One forward conv and one input-gradient conv per conv layer up to the deepest; no weight gradients."""
    import stylize

    rng = np.random.default_rng(0)
    content = rng.uniform(0, 255, (24, 32, 3)).astype(np.float32)
    loss = benchmark.BENCH_LOSS
    with stylize.Objective(tiny_network, content, [content], loss) as objective:
        assert objective.graph.finalized
        ops = [op.type for op in objective.graph.get_operations()]
        needed, _ = benchmark.used_layers(loss)
        last = vgg.deepest(tiny_network, needed)
        built = tiny_network.layers[: tiny_network.layers.index(last) + 1]
        convs = sum(vgg.layer_kind(n) == "conv" for n in built)
        assert ops.count("Conv2D") == convs
        assert ops.count("Conv2DBackpropInput") == convs
        # tf.gradients adds Conv2D's whole gradient function, filter gradient included,
        # but session.run prunes what the fetches do not need: trace what really runs.
        import tensorflow as tf

        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        metadata = tf.compat.v1.RunMetadata()
        objective.session.run(objective._fetches, {objective.image: content[None]}, options=options,
                              run_metadata=metadata)
        # timeline labels read "name = OpType(inputs)"; Grappler fuses conv + bias + relu,
        # and with oneDNN on (neural_style.main turns it on) the types get an _Mkl prefix.
        ran = [node.timeline_label.split(" = ", 1)[1].split("(", 1)[0].replace("_MklNative", "").replace("_Mkl", "")
               for dev in metadata.step_stats.dev_stats for node in dev.node_stats if " = " in node.timeline_label]
        assert ran.count("Conv2D") + ran.count("FusedConv2D") + ran.count("_FusedConv2D") == convs
        assert ran.count("Conv2DBackpropInput") == convs
        assert not [t for t in ran if "BackpropFilter" in t]
        # One Gram product forward and two backward per style layer.
        assert ran.count("MatMul") == 3 * len(loss.style_layers)
        # Both default content layers are named, but relu5_2 has weight 0 (blend 1): not built.
        assert last == "relu5_1"
        before = len(ops)
        objective.evaluate(content)
        assert len(objective.graph.get_operations()) == before


def test_random_vgg19_has_the_real_shapes():
    net = benchmark.random_vgg19()
    assert net.layers == vgg.VGG19_LAYERS
    assert net.weights["conv5_4"][0].shape == (3, 3, 512, 512)
    # The figure: about 305 GFLOP per evaluation at 512x384 (Gram about 20 of them).
    import stylize

    needed, style = benchmark.used_layers(stylize.LossOptions())
    flops = benchmark.count_flops(net, 384, 512, needed, style)
    assert 290e9 < flops["total"] < 320e9
    assert 19e9 < flops["gram_forward"] + flops["gram_backward"] < 22e9


def test_main_writes_the_table(tiny_net_path, tmp_path, capsys):
    out = tmp_path / "B.md"
    status = benchmark.main(["--network", tiny_net_path, "--no-reference-size", "--sizes", "32", "--repeats", "1",
                             "--lbfgs-evaluations", "3", "--matmul-size", "128", "--out", str(out)])
    assert status == 0
    text = out.read_text()
    assert text == capsys.readouterr().out.strip("\n") + "\n"
    assert "GFLOP/s" in text and "| 32x24 |" in text
    data = json.loads((tmp_path / "B.json").read_text())
    row = data["rows"][0]
    net = vgg.load_net(tiny_net_path)
    needed, style = benchmark.used_layers(__import__("stylize").LossOptions())
    assert row["flops"] == benchmark.count_flops(net, 24, 32, needed, style)
    assert row["lbfgs_evaluations"] == 3 and row["baseline_rss"] > 0
    # the memory preflight's estimate is meant for a warning, not to the megabyte: within 2x
    assert 0.5 < row["estimate"] / row["peak_rss"] < 2.0, (row["estimate"], row["peak_rss"])
    assert row["seconds"] > 0 and data["matmul_gflops"] > 0


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--sizes", "8"], ["--network", "/nonexistent.mat"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        benchmark.main(["--no-reference-size", "--sizes", "32", "--out", "/tmp/unused.md"] + argv)
    assert exc.value.code == 2


# ---------------------------------------------------------------- --time-to-quality


def test_time_to_quality_report_reads_the_traces(tmp_path):
    """The target is the reference's final loss; a route's time is its first CPU second at
    or below it (rows: CPU s, wall s, best full-size loss, evaluations)."""
    from neural_style_tf import images
    from neural_style_tf.apps import time_to_quality as ttq

    def save(name, rows):
        record = {"name": name, "flags": "", "final_loss": min(r[2] for r in rows), "rows": rows}
        images.write_atomically(ttq.trace_path(str(tmp_path), name), lambda f: f.write(json.dumps(record).encode()))

    inf = float("inf")
    save(ttq.REFERENCE[0], [[10, 11, 50.0, 10], [40, 41, 20.0, 40], [100, 101, 10.0, 100]])
    save("fast", [[5, 5, inf, 30], [15, 16, 12.0, 35], [25, 27, 9.0, 40]])  # coarse scales first: no loss yet
    save("slow", [[50, 50, 30.0, 50], [200, 200, 11.0, 200]])
    results = ttq.report(str(tmp_path), [ttq.REFERENCE[0], "fast", "slow"])
    assert results[ttq.REFERENCE[0]]["seconds_to_target"] == 100 and results[ttq.REFERENCE[0]]["ratio"] == 1.0
    assert results["fast"]["seconds_to_target"] == 25 and results["fast"]["ratio"] == 0.25
    assert results["fast"]["evaluations_to_target"] == 40
    assert results["slow"]["seconds_to_target"] is None and results["slow"]["ratio"] is None
    table = ttq.markdown(results, 256)
    assert "| fast |" in table and "| 0.25 |" in table and "never" in table
    # within 25% of the target (12.5): the reference at 100 s, fast at 15 s, slow at 200 s
    within = results["fast"]["within"]
    assert within[0.25] == 15 and within[0.10] == 25 and results["slow"]["within"][0.25] == 200
    assert results[ttq.REFERENCE[0]]["within"][0.25] == 100
    assert "| 25% | 100 s (1.00x) | 15 s (0.15x) | 200 s (2.00x) |" in table


def test_time_to_quality_route_names_and_refusal():
    from neural_style_tf.apps import time_to_quality as ttq

    assert ttq.parse_route("c2f=--scales 3") == ("c2f", "--scales 3")
    with pytest.raises(__import__("argparse").ArgumentTypeError, match="NAME=FLAGS"):
        ttq.parse_route("--scales 3")
