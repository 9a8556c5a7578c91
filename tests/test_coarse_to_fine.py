"""Coarse-to-fine (issue 7): the schedule, the budget, the init from the upsampled previous
result, progress across scales. The size-independent loss terms ("normalized") are tested
in test_losses.py and test_objective.py, the --scales and --start-size checks in test_checks.py."""

from __future__ import annotations

import numpy as np
import pytest
from numpy_reference import smooth

import stylize
from neural_style_tf import coarse_to_fine, images, optimize
from neural_style_tf import objective as objective_module  # the tests' spies are named objective


def test_schedule_start_size_steps_of_two():
    stages = coarse_to_fine.schedule((1536, 2048, 3), 150, start_size=256, coarse_iterations=30)
    assert [s.size for s in stages] == [(192, 256), (384, 512), (768, 1024), (1536, 2048)]
    assert [s.iterations for s in stages] == [30, 30, 30, 150]  # --iterations is the final size's
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


def test_a_longer_run_is_the_same_run_carried_further():
    """The coarse budgets do not depend on --iterations: only the final stage grows."""
    short, long = (coarse_to_fine.schedule((384, 512), n, start_size=128) for n in (50, 400))
    assert [s.size for s in short] == [s.size for s in long] == [(96, 128), (192, 256), (384, 512)]
    assert [s.iterations for s in short[:-1]] == [s.iterations for s in long[:-1]] == [100, 100]
    assert (short[-1].iterations, long[-1].iterations) == (50, 400)


def test_on_by_default_above_1024_px():
    assert coarse_to_fine.auto_start_size((1536, 2048)) == coarse_to_fine.AUTO_START_SIZE == 512
    assert coarse_to_fine.auto_start_size((768, 1024)) is None  # one scale up to 1024 px
    assert coarse_to_fine.auto_start_size((384, 512)) is None
    assert coarse_to_fine.auto_start_size((1536, 2048), scales=1) is None
    assert coarse_to_fine.auto_start_size((1536, 2048), start_size=300) == 300


def test_run_initialises_from_the_upsampled_previous_result(tiny_network, monkeypatch):
    content = smooth(48, 64, 0.0)
    style = smooth(40, 40, 0.4)
    starts, results = [], []
    real = optimize.minimize

    def spy(objective, x0, opts, callback=None, on_evaluation=None):
        starts.append(np.array(x0))
        result = real(objective, x0, opts, callback=callback, on_evaluation=on_evaluation)
        results.append(result)
        return result

    monkeypatch.setattr(optimize, "minimize", spy)
    stages = coarse_to_fine.schedule(content.shape, 3, scales=2, coarse_iterations=6)
    seen = []
    loss = stylize.LossOptions(tv_weight=1.0, overscan=0)  # the picture's own canvas (test_overscan.py)
    result, per_stage = coarse_to_fine.run(stages, coarse_to_fine.problems(tiny_network, content, [style], loss),
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


def test_run_builds_each_objective_with_the_stages_extra_arguments(tiny_network):
    """objective_kwargs(size) is how the transfer hands each scale its resized content mask."""
    content = smooth(48, 64, 0.0)
    mask = np.ones(content.shape[:2], np.float32)
    mask[:, :16] = 0.0
    asked, masks = [], []

    def objective(problem):
        masks.append(problem.content_mask.shape)
        assert problem.content.shape[:2] == problem.content_mask.shape
        return objective_module.Objective.for_problem(problem)

    def kwargs(size):
        asked.append(size)
        return {"content_mask": images.resize(mask, size).clip(0, 1)}

    stages = coarse_to_fine.schedule(content.shape, 2, scales=2, coarse_iterations=2)
    problem_at = coarse_to_fine.problems(tiny_network, content, [smooth(32, 32, 0.2)], stylize.LossOptions(overscan=0),
                                         kwargs)
    result, _ = coarse_to_fine.run(stages, problem_at, stylize.OptimizerOptions(), lambda c: c.copy(),
                                   make_objective=objective)
    assert asked == [(24, 32), (48, 64)] and masks == asked
    assert result.ok and result.iterations == 4


def test_an_interrupt_while_building_a_larger_scale_keeps_the_previous_result(tiny_network):
    content = smooth(48, 64, 0.0)
    built = []

    def objective(problem):
        built.append(1)
        if len(built) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second scale's graph is built
        return objective_module.Objective.for_problem(problem)

    stages = coarse_to_fine.schedule(content.shape, 6, scales=2)
    problem_at = coarse_to_fine.problems(tiny_network, content, [smooth(32, 32, 0.2)], stylize.LossOptions())
    result, per_stage = coarse_to_fine.run(stages, problem_at, stylize.OptimizerOptions(), lambda c: c.copy(),
                                           make_objective=objective)
    assert result.stop_reason == "interrupted" and not result.ok
    assert len(per_stage) == 2 and per_stage[0].ok
    assert result.iterations == per_stage[0].iterations == stages[0].iterations
    # the first scale's image, brought to the final size
    assert result.image.shape == content.shape
    np.testing.assert_allclose(result.image, images.resize(per_stage[0].image, (48, 64)))
    assert result.terms == per_stage[0].terms


def test_an_interrupt_before_any_image_is_raised(tiny_network):
    def objective(problem):
        raise KeyboardInterrupt

    stages = coarse_to_fine.schedule((24, 32, 3), 4, scales=2)
    problem_at = coarse_to_fine.problems(tiny_network, smooth(24, 32, 0.0), [smooth(16, 16, 0.1)],
                                         stylize.LossOptions())
    with pytest.raises(KeyboardInterrupt):
        coarse_to_fine.run(stages, problem_at, stylize.OptimizerOptions(), lambda c: c.copy(), make_objective=objective)


def test_objectives_keep_one_graph_per_size_and_retarget_it(tiny_network, monkeypatch):
    """Two problems at one size: one Objective built, retargeted to the second, whose
    terms and gradient are a new Objective's; another size builds one more (the target
    graph stays one); with kept=2 a third size closes the least recently used."""
    real, built = objective_module.Objective.for_problem, []

    def for_problem(problem, **kwargs):
        built.append(problem.content.shape)
        return real(problem, **kwargs)

    monkeypatch.setattr(objective_module.Objective, "for_problem", for_problem)
    loss = stylize.LossOptions(style_layers=("relu1_1", "relu2_1"))
    x = smooth(16, 16, 0.5)
    cache = coarse_to_fine.Objectives(kept=2)

    def problem(content, style):
        return objective_module.Problem.create(tiny_network, content, [style], loss)

    try:
        for seed in (0.1, 0.3):
            content, style = smooth(16, 16, seed), smooth(20 + int(40 * seed), 24, seed + 0.2)
            with cache(problem(content, style)) as shared:
                terms, grad = shared.evaluate(x)
            with objective_module.Objective(tiny_network, content, [style], loss) as fresh:
                expected, expected_grad = fresh.evaluate(x)
            assert terms == expected and np.array_equal(grad, expected_grad)
        assert built == [(16, 16, 3)] and cache.counts == {"built": 1, "reused": 1}
        with cache(problem(smooth(20, 16, 0.0), style)):
            pass
        assert cache.counts == {"built": 2, "reused": 1} and cache.graphs.built == 1
        oldest = next(iter(cache.objectives.values()))
        with cache(problem(smooth(24, 16, 0.0), style)):
            pass
        assert len(cache.objectives) == 2 and oldest not in cache.objectives.values()
        assert oldest.session._closed
    finally:
        cache.close()


def test_run_resumes_from_a_position_with_the_rest_of_its_stages_budget(tiny_network, monkeypatch):
    content = smooth(48, 64, 0.0)
    calls, positions = [], []
    real = optimize.minimize

    def spy(objective, x0, opts, callback=None, on_evaluation=None):
        calls.append((x0.shape, opts.iterations, opts.max_evaluations))
        return real(objective, x0, opts, callback=callback, on_evaluation=on_evaluation)

    monkeypatch.setattr(optimize, "minimize", spy)
    stages = coarse_to_fine.schedule(content.shape, 5, scales=2, coarse_iterations=4)
    problem_at = coarse_to_fine.problems(tiny_network, content, [smooth(40, 40, 0.4)], stylize.LossOptions(overscan=0))
    kill = coarse_to_fine.Position(1, 2, 3, False, smooth(48, 64, 0.3), {"total": 9.0}, (6, 8, 1.0))
    seen = []
    result, per_stage = coarse_to_fine.run(stages, problem_at, stylize.OptimizerOptions(max_evaluations=10),
                                           lambda c: pytest.fail("the first scale is done"),
                                           callback=lambda p: seen.append((p.iteration, p.scale[0])),
                                           start=kill, checkpoint=lambda p, periodic: positions.append((p, periodic)))
    # the first stage skipped; the second from the checkpoint's image with 5 - 2 iterations and 10 - 3 evaluations
    assert calls == [((48, 64, 3), 3, 7)] and len(per_stage) == 1
    assert seen == [(7, 1), (8, 1), (9, 1)] and result.iterations == 9
    assert [(p.stage, p.iterations, p.finished) for p, periodic in positions if periodic] == [(1, 3, False), (1, 4, False),
                                                                                           (1, 5, False)]
    end, periodic = positions[-1]
    assert not periodic and (end.stage, end.iterations, end.finished, end.done[0]) == (1, 5, True, 9)
    # a checkpoint after the last stage's end: nothing left to run, its image is the result
    done = coarse_to_fine.Position(1, 5, 7, True, end.image, end.terms, end.done)
    result, per_stage = coarse_to_fine.run(stages, problem_at, stylize.OptimizerOptions(), None, start=done)
    assert per_stage == [] and len(calls) == 1 and result.ok and result.iterations == 9
    np.testing.assert_array_equal(result.image, end.image)


def test_upsampled_start_adds_the_photos_detail_only_when_asked():
    """--photo-detail: the larger scale starts from the smaller image resized plus the band of
    the photo the smaller size lost; resized back down, that band is (about) nothing, so the
    start keeps the smaller scale's layout."""
    rng = np.random.default_rng(3)
    photo = rng.uniform(0, 255, (48, 64, 3)).astype(np.float32)  # fine detail everywhere
    small = smooth(24, 32, 0.3)
    plain = coarse_to_fine.upsampled_start(small, photo)
    np.testing.assert_allclose(plain, images.resize(small, (48, 64)))
    detailed = coarse_to_fine.upsampled_start(small, photo, photo_detail=True)
    band = photo - images.resize(images.resize(photo, (24, 32)), (48, 64))
    np.testing.assert_allclose(detailed - plain, band, atol=1e-3)
    assert np.abs(band).mean() > 20  # random pixels: most of the photo is detail the small size loses
    # the start's coarse layout is still the small image's
    assert np.abs(images.resize(detailed, (24, 32)) - small).mean() < 0.2 * np.abs(band).mean()
    # a start at the image's own size (a resumed stage) gets nothing added
    np.testing.assert_allclose(coarse_to_fine.upsampled_start(photo, photo, photo_detail=True), photo)


def test_run_with_photo_detail_starts_the_larger_scale_from_it(tiny_network, monkeypatch):
    content = smooth(48, 64, 0.0) + np.random.default_rng(4).normal(0, 20, (48, 64, 3)).astype(np.float32)
    content = np.clip(content, 0, 255)
    starts, results = [], []
    real = optimize.minimize

    def spy(objective, x0, opts, callback=None, on_evaluation=None):
        starts.append(np.array(x0))
        results.append(real(objective, x0, opts, callback=callback, on_evaluation=on_evaluation))
        return results[-1]

    monkeypatch.setattr(optimize, "minimize", spy)
    stages = coarse_to_fine.schedule(content.shape, 2, scales=2, coarse_iterations=2)
    loss = stylize.LossOptions(tv_weight=1.0, overscan=0)
    coarse_to_fine.run(stages, coarse_to_fine.problems(tiny_network, content, [smooth(40, 40, 0.4)], loss),
                       stylize.OptimizerOptions(photo_detail=True), lambda c: c.copy())
    expected = coarse_to_fine.upsampled_start(results[0].image, content, photo_detail=True)
    np.testing.assert_allclose(starts[1], np.clip(expected, 0, 255), atol=1e-4)
    assert not np.allclose(starts[1], np.clip(images.resize(results[0].image, (48, 64)), 0, 255), atol=1)


def test_only_the_last_scale_stops_when_the_loss_settles(tiny_network, monkeypatch):
    """--min-improvement: a coarse scale runs its whole count; the last one may stop early."""
    content, style = smooth(48, 64, 0.0), smooth(40, 40, 0.4)
    seen = []
    real = optimize.minimize

    def spy(objective, x0, opts, callback=None, on_evaluation=None):
        seen.append(opts.min_improvement)
        return real(objective, x0, opts, callback=callback, on_evaluation=on_evaluation)

    monkeypatch.setattr(optimize, "minimize", spy)
    stages = coarse_to_fine.schedule(content.shape, 2, scales=3, coarse_iterations=2)
    loss = stylize.LossOptions(tv_weight=1.0, overscan=0)
    coarse_to_fine.run(stages, coarse_to_fine.problems(tiny_network, content, [style], loss),
                       stylize.OptimizerOptions(iterations=2, min_improvement=2.5), lambda c: c.copy())
    assert seen == [0.0, 0.0, 2.5]
