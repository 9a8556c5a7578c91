"""Coarse-to-fine (issue 7): the schedule, the budget, the init from the upsampled previous
result, progress across scales; and size-independent loss terms ("normalized")."""

from __future__ import annotations

import numpy as np
import pytest

from neural_style_tf import coarse_to_fine
from neural_style_tf import images
import stylize


def smooth(height, width, phase):
    """A smooth picture defined in relative coordinates: the same picture at any size."""
    y, x = np.mgrid[:height, :width] / np.array([height, width])[:, None, None]
    return np.stack([128 + 100 * np.sin(2 * np.pi * (2 * x + phase)),
                     128 + 100 * np.cos(2 * np.pi * (1.5 * y + x)),
                     128 + 80 * np.sin(2 * np.pi * (x + y + phase))], -1).astype(np.float32)


def test_schedule_start_size_steps_of_two():
    stages = coarse_to_fine.schedule((1536, 2048, 3), 150, start_size=256)
    assert [s.size for s in stages] == [(192, 256), (384, 512), (768, 1024), (1536, 2048)]
    assert [s.iterations for s in stages] == [80, 40, 20, 10]
    assert [s.index for s in stages] == [0, 1, 2, 3]


def test_schedule_scales_and_uneven_start():
    assert [s.size for s in coarse_to_fine.schedule((768, 1024), 70, scales=3)] == [(192, 256), (384, 512), (768, 1024)]
    stages = coarse_to_fine.schedule((600, 1000), 100, start_size=300)
    longs = [max(s.size) for s in stages]
    assert longs[0] == 300 and longs[-1] == 1000 and len(stages) == 3
    assert all(b / a <= coarse_to_fine.MAX_STEP + 1e-6 for a, b in zip(longs, longs[1:]))
    assert stages[-1].size == (600, 1000)  # the final size is exact
    # a start size at or above the final size means one scale
    assert len(coarse_to_fine.schedule((100, 200), 10, start_size=400)) == 1


@pytest.mark.parametrize("total,count", [(150, 4), (1000, 3), (7, 3), (2, 3), (1, 1)])
def test_split_iterations_total_and_halving(total, count):
    counts = coarse_to_fine.split_iterations(total, count)
    assert sum(counts) == max(total, count)
    assert all(c >= 1 for c in counts)
    assert all(a >= b for a, b in zip(counts, counts[1:]))  # most iterations at the small sizes


def test_auto_on_above_1024():
    assert coarse_to_fine.auto_start_size((1536, 2048)) == coarse_to_fine.AUTO_START_SIZE
    assert coarse_to_fine.auto_start_size((768, 1024)) is None
    assert coarse_to_fine.auto_start_size((1536, 2048), scales=1) is None
    assert coarse_to_fine.auto_start_size((1536, 2048), start_size=300) == 300


def test_run_initialises_from_the_upsampled_previous_result(tiny_network, monkeypatch):
    content = smooth(48, 64, 0.0)
    style = smooth(40, 40, 0.4)
    starts, results = [], []
    real = stylize.minimize

    def spy(objective, x0, opts, callback=None, on_evaluation=None):
        starts.append(np.array(x0))
        result = real(objective, x0, opts, callback=callback, on_evaluation=on_evaluation)
        results.append(result)
        return result

    monkeypatch.setattr(stylize, "minimize", spy)
    stages = coarse_to_fine.schedule(content.shape, 9, scales=2)
    seen = []
    loss = stylize.LossOptions(tv_weight=1.0)
    result, per_stage = coarse_to_fine.run(stages, tiny_network, content, [style], loss,
                                           stylize.OptimizerOptions(iterations=999), lambda c: c.copy(),
                                           callback=lambda p: seen.append((p.iteration, p.iterations, p.scale)))
    assert [s.iterations for s in stages] == [6, 3]
    # first scale starts from the content at its size; the second from the first's result, upsampled
    np.testing.assert_allclose(starts[0], images.resize(content, (24, 32)))
    np.testing.assert_allclose(starts[1], np.clip(images.resize(results[0].image, (48, 64)), 0, 255))
    assert not np.allclose(starts[1], content, atol=1)
    # the per-scale budget is the schedule's, and progress is counted across scales
    assert [r.iterations for r in per_stage] == [6, 3]
    assert [s[0] for s in seen] == list(range(1, 10))
    assert {s[1] for s in seen} == {9}
    assert [s[2][0] for s in seen] == [0] * 6 + [1] * 3
    assert result.image.shape == content.shape and result.iterations == 9
    assert result.evaluations == sum(r.evaluations for r in per_stage)


def terms_at_size(network, long_side, loss_scale):
    height = long_side * 3 // 4
    content, style = smooth(height, long_side, 0.0), smooth(height, long_side, 0.3)
    with stylize.Objective(network, content, [style], stylize.LossOptions(loss_scale=loss_scale)) as objective:
        return objective.evaluate(0.5 * content + 0.5 * style)[0]


def test_loss_terms_size_independent_at_initialisation(tiny_network):
    """The same picture pair at 48 and 96 px, evaluated at the same start (half content, half style).

    Tolerances: style within 5%; TV ("normalized") within 2%; content within 30%
    (on these tiny images the zero padding at the borders is a large share of each
    feature map; on the example photos at 256/512/1024 px it agreed within 15%).
    """
    small = terms_at_size(tiny_network, 48, "normalized")
    large = terms_at_size(tiny_network, 96, "normalized")
    assert abs(large["style"] / small["style"] - 1) < 0.05
    assert abs(large["tv"] / small["tv"] - 1) < 0.02
    assert abs(large["content"] / small["content"] - 1) < 0.30
    # Under "classic" the TV of a smooth picture falls ~4x when the size doubles
    # (this is what "normalized" corrects); the other terms are the same functions.
    classic_small = terms_at_size(tiny_network, 48, "classic")
    classic_large = terms_at_size(tiny_network, 96, "classic")
    assert 3.0 < classic_small["tv"] / classic_large["tv"] < 5.0
    assert classic_small["style"] == pytest.approx(small["style"], rel=1e-5)


def test_normalized_equals_classic_at_the_reference_size(tiny_network):
    content = smooth(stylize.REFERENCE_SIZE // 8, stylize.REFERENCE_SIZE, 0.1)  # long side 512, cheap height
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x = tf.constant(content[None])
        a, b = sess.run([stylize.total_variation(x), stylize.total_variation_normalized(x)])
    assert a == pytest.approx(b, rel=1e-6)
    assert "classic" in stylize.LOSS_SCALES and "normalized" in stylize.LOSS_SCALES


@pytest.mark.parametrize("extra,needle", [(["--scales", "2", "--start-size", "64"], "--scales and --start-size"),
                                          (["--scales", "0"], "--scales must be a positive integer, not 0"),
                                          (["--start-size", "-5"], "--start-size must be a positive integer, not -5")])
def test_coarse_to_fine_flags_are_checked(tmp_path, capsys, extra, needle):
    import os

    import neural_style

    image = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "starry_night.jpg")
    out = tmp_path / "o.png"
    assert neural_style.main(["--content", image, "--styles", image, "--output", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not out.exists()
