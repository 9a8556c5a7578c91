"""benchmark_measure.py: the FLOP counter against a hand count and against the graph TF
builds; the random VGG-19's shapes."""

from __future__ import annotations

import dataclasses

import numpy as np

import vgg
from neural_style_tf.apps import benchmark_measure


def two_conv_net():
    rng = np.random.default_rng(0)
    weights = {"conv1_1": (rng.standard_normal((3, 3, 3, 4)).astype(np.float32), np.zeros(4, np.float32)),
               "conv2_1": (rng.standard_normal((3, 3, 4, 6)).astype(np.float32), np.zeros(6, np.float32))}
    layers = ("conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "pool2")
    return vgg.Network("two convs", "(test)", layers, weights, np.zeros(3, np.float32))


def test_flops_match_a_hand_count():
    # 7x5 image: conv1_1 at 7x5, 3->4; pool (SAME) -> 4x3; conv2_1 at 4x3, 4->6; pool2 not built.
    flops = benchmark_measure.count_flops(two_conv_net(), 7, 5, ("relu1_1", "relu2_1"), ("relu1_1", "relu2_1"))
    conv1 = 2 * 35 * 9 * 3 * 4  # 7560
    conv2 = 2 * 12 * 9 * 4 * 6  # 5184
    assert flops["conv_forward"] == conv1 + conv2 == 12744
    assert flops["conv_backward"] == 12744
    assert flops["gram_forward"] == 2 * 35 * 16 + 2 * 12 * 36 == 1984
    assert flops["gram_backward"] == 1984  # one product: dF = F (dG + dG^T)
    assert flops["total"] == 2 * 12744 + 2 * 1984


def test_flops_stop_at_the_deepest_layer():
    flops = benchmark_measure.count_flops(two_conv_net(), 7, 5, ("relu1_1",), ("relu1_1",))
    assert flops["conv_forward"] == 7560 and flops["gram_forward"] == 2 * 35 * 16


def test_graph_computes_what_the_counter_counts(tiny_network):
    """One forward conv and one input-gradient conv per conv layer up to the deepest; no weight gradients."""
    import stylize

    rng = np.random.default_rng(0)
    content = rng.uniform(0, 255, (24, 32, 3)).astype(np.float32)
    loss = dataclasses.replace(benchmark_measure.BENCH_LOSS, style_loss="gram")  # the products counted exactly
    with stylize.Objective(tiny_network, content, [content], loss) as objective:
        assert objective.graph.finalized
        ops = [op.type for op in objective.graph.get_operations()]
        needed, _ = benchmark_measure.used_layers(loss)
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
        # timeline labels read "name = OpType(inputs)"; Grappler (on, with a GPU) fuses conv +
        # bias + relu; without it oneDNN's own graph pass fuses conv + bias (Conv2DWithBias), and
        # with oneDNN on (neural_style.main turns it on) the types get an _Mkl prefix.
        ran = [node.timeline_label.split(" = ", 1)[1].split("(", 1)[0].replace("_MklNative", "").replace("_Mkl", "")
               for dev in metadata.step_stats.dev_stats for node in dev.node_stats if " = " in node.timeline_label]
        fused = ("Conv2D", "FusedConv2D", "_FusedConv2D", "Conv2DWithBias")
        assert sum(ran.count(kind) for kind in fused) == convs
        assert ran.count("Conv2DBackpropInput") == convs
        assert not [t for t in ran if "BackpropFilter" in t]
        # One Gram product forward and one backward per style layer (feature_statistics.py).
        assert ran.count("MatMul") == 2 * len(loss.style_layers)
        # Both default content layers are named, but relu5_2 has weight 0 (blend 1): not built.
        assert last == "relu5_1"
        before = len(ops)
        objective.evaluate(content)
        assert len(objective.graph.get_operations()) == before


def test_random_vgg19_has_the_real_shapes():
    net = benchmark_measure.random_vgg19()
    assert net.layers == vgg.VGG19_LAYERS
    assert net.weights["conv5_4"][0].shape == (3, 3, 512, 512)
    # About 298 GFLOP per evaluation at 512x384, the Gram products about 14 of them (20
    # before feature_statistics.py wrote out their gradient as one product).
    import stylize

    needed, style = benchmark_measure.used_layers(stylize.LossOptions())
    flops = benchmark_measure.count_flops(net, 384, 512, needed, style)
    assert 290e9 < flops["total"] < 320e9
    assert 13e9 < flops["gram_forward"] + flops["gram_backward"] < 14e9
