"""The tensors alive at the peak of one evaluation (loss and gradient) of the default objective.

    python examples/evaluation_memory.py --size 512x384 --runs 3

Builds the plain command's objective (the embedded VGG-19, W2, the example photo and
painting) at the given size, then runs evaluations with TensorFlow's FULL_TRACE and replays
each one's allocations in time order: the most memory its tensors held at once, and the
nodes that held it. Made for issue 33 (docs/performance.md, Memory at 512 px): the peak
changed from run to run with the order in which TensorFlow ran the ops, 175-274 MB at
512x384. `--caller-thread` runs every op on the calling thread, which fixes the order.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HERE = os.path.dirname(os.path.abspath(__file__))


def live_peak(step_stats):
    """(peak bytes, {node: bytes held at the peak}) from a RunMetadata's step stats."""
    events = sorted((record.alloc_micros, record.alloc_bytes, node.node_name)
                    for device in step_stats.dev_stats for node in device.node_stats
                    for memory in node.memory for record in memory.allocation_records)
    live, peak, held, at_peak = 0, 0, collections.Counter(), {}
    for _, size, name in events:
        live += size
        held[name] += size
        if live > peak:
            peak, at_peak = live, {k: v for k, v in held.items() if v > 0}
    return peak, at_peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="512x384", help="width x height of the image (default 512x384)")
    parser.add_argument("--runs", type=int, default=3, help="traced evaluations (default 3)")
    parser.add_argument("--top", type=int, default=10, help="nodes listed at each peak (default 10)")
    parser.add_argument("--caller-thread", action="store_true", help="run every op on the calling thread")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    from neural_style_tf import images, settings, targets, tf_runtime
    from neural_style_tf.networks import codebook
    from neural_style_tf.objective import Objective, initial_image

    tf_runtime.configure_process()
    tf = tf_runtime.import_tensorflow()
    network = codebook.load_network().with_precision(tf_runtime.choose_precision("auto"))
    content = images.resize(images.load_image(os.path.join(HERE, "tubingen_neckarfront.jpg")), (height, width))
    style = targets.prepare_style(images.load_image(os.path.join(HERE, "starry_night.jpg")), width)
    objective = Objective(network, content, [style], settings.for_network(settings.LossOptions(), network))
    x = initial_image(content, network, noiseblend=0.0)
    objective.evaluate(x)  # the first run allocates what every later one reuses
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE,
                                      inter_op_thread_pool=-1 if args.caller_thread else 0)
    print(f"{network.name}, {network.precision}, {width}x{height}")
    for run in range(1, args.runs + 1):
        metadata = tf.compat.v1.RunMetadata()
        objective.session.run(objective._fetches, {objective.image: x.reshape(objective.shape), **objective._weight_feed},
                              options=options, run_metadata=metadata)
        peak, held = live_peak(metadata.step_stats)
        print(f"evaluation {run}: {peak / 2**20:.1f} MB of tensors alive at the peak")
        for name, size in sorted(held.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"    {size / 2**20:7.1f} MB  {name}")
    objective.close()


if __name__ == "__main__":
    main()
