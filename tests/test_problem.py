"""objective.Problem and the graph it fixes (GraphKey): one graph retargeted to other
problems as new Objectives would be, what needs another graph, and the library's default
problem against the plain command's.

Everything runs on the tiny network of conftest.py and 16-32 px images.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy_reference import SIZE, random_image

import neural_style
from neural_style_tf import overscan, transfer
from neural_style_tf import settings as settings_module
from neural_style_tf.objective import LOSS_TERMS, Guidance, Objective, Problem, graph_key
from neural_style_tf.settings import LossOptions, for_network
from neural_style_tf.terms import PixelTarget

# ---------------------------------------------------------------- one graph, retargeted


def test_a_problem_holds_resolved_options_and_its_key_names_what_fixes_the_graph(tiny_network, content, style):
    problem = Problem.create(tiny_network, content.astype(np.float64), [style], LossOptions(),
                             temporal=PixelTarget.off(content.shape))
    assert problem.loss == for_network(LossOptions(), tiny_network) and problem.loss.tv_weight is not None
    assert problem.content.dtype == np.float32 and isinstance(problem.styles, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.loss = LossOptions()  # type: ignore[misc]
    key = graph_key(problem)
    assert (key.shape, key.styles, key.content_mask, key.temporal, key.style_masks, key.keep) == (
        (SIZE, SIZE, 3), 1, False, True, (False,), False)
    # the fed weights are not the graph's: another TV weight or style scale, the same key
    assert key.loss.tv_weight == 0.0 and key.loss.style_scales is None
    reweighted = dataclasses.replace(problem, loss=dataclasses.replace(problem.loss, tv_weight=5.0, style_scales=(0.5,)))
    assert graph_key(reweighted) == key
    assert graph_key(dataclasses.replace(problem, temporal=None)) != key


def problem(seed, masked):
    """Objective's arguments of a problem on the 16 px content size: a content, two styles
    of other sizes (seed-dependent), and with `masked` every mask and pixel term."""
    rng = np.random.default_rng(seed)
    styles = [random_image(seed + 1, (12 + seed, 20, 3)), random_image(seed + 2, (24, 14 + seed, 3))]
    kwargs = {}
    if masked:
        top = (rng.uniform(size=(SIZE, SIZE)) > 0.4).astype(np.float32)
        kwargs = {"content_mask": (top + 0.5) / (top + 0.5).mean(),
                  "temporal": PixelTarget(random_image(seed + 3), rng.uniform(size=(SIZE, SIZE)), 1.5),
                  "guidance": Guidance((top, 1.0 - top), (None, rng.uniform(size=(9, 9))),
                                       keep=PixelTarget(random_image(seed + 4), 1.0 - top, 0.7))}
    return random_image(seed), styles, kwargs


@pytest.mark.parametrize(("style_loss", "masked"), [("w2", False), ("gram", False), ("mean-cov", True), ("w2", True)])
def test_one_graph_serves_two_problems_as_two_objectives_would(tiny_network, style_loss, masked):
    """Retargeted to a second problem (other content, styles of other sizes, other masks
    and temporal targets, other weights), the objective's terms and gradient are exactly
    those of an Objective built for it, and its graph has not grown."""
    loss = for_network(LossOptions(style_loss=style_loss, style_blend_weights=(1.0, 2.0)), tiny_network)
    other = dataclasses.replace(loss, style_weight=30.0, style_blend_weights=(3.0, 1.0), style_scales=(0.5, 1.0))
    (c1, s1, k1), (c2, s2, k2), x = problem(20, masked), problem(30, masked), random_image(40)
    with Objective(tiny_network, c1, s1, loss, **k1) as shared, Objective(tiny_network, c2, s2, other, **k2) as fresh:
        ops = len(shared.graph.get_operations())
        first = shared.evaluate(x)
        shared.retarget(Problem.create(tiny_network, c2, s2, other, **k2))
        assert graph_key(Problem.create(tiny_network, c1, s1, loss, **k1)) == graph_key(Problem.create(tiny_network, c2, s2, other,
                                                                                         **k2))
        (terms, grad), (expected, expected_grad) = shared.evaluate(x), fresh.evaluate(x)
        assert len(shared.graph.get_operations()) == ops and [s.shape for s in shared.style_images] == [
            s.shape for s in fresh.style_images]
        assert terms == expected and np.array_equal(grad, expected_grad)
        assert terms["style"] != first[0]["style"]
        shared.retarget(Problem.create(tiny_network, c1, s1, loss, **k1))  # and back
        assert shared.evaluate(x)[0] == first[0]


def test_retarget_refuses_what_needs_another_graph(tiny_network, content, style):
    with Objective(tiny_network, content, [style]) as obj:
        for args, kwargs in [((random_image(1, (SIZE, SIZE + 2, 3)), [style]), {}),  # another size
                             ((content, [style, style]), {}),  # another number of styles
                             ((content, [style]), {"temporal": PixelTarget(content, np.ones((SIZE, SIZE)), 1.0)})]:
            with pytest.raises(ValueError, match="build an Objective"):
                obj.retarget(Problem.create(tiny_network, *args, **kwargs))
        with pytest.raises(ValueError, match="build an Objective"):
            obj.retarget(Problem.create(tiny_network, content, [style], LossOptions(style_layers=("relu1_1",))))


def test_a_term_the_problem_leaves_out_holds_nothing(tiny_network, content, style):
    """A graph with a temporal term retargeted to a problem without one (video.py's first
    frame uses PixelTarget.off): the term is 0 and not reported, the rest is the plain objective's."""
    x, temporal = random_image(3), PixelTarget(random_image(4), np.ones((SIZE, SIZE), np.float32), 2.0)
    with Objective(tiny_network, content, [style], temporal=temporal) as obj, \
            Objective(tiny_network, content, [style]) as plain:
        obj.retarget(Problem.create(tiny_network, content, [style]))
        (terms, grad), (expected, expected_grad) = obj.evaluate(x), plain.evaluate(x)
    assert terms == expected and np.array_equal(grad, expected_grad)


# ---------------------------------------------------------------- the library's defaults and the command's


def test_the_librarys_default_objective_is_the_plain_commands(files, tiny_net_path, tmp_path):
    """stylize.Objective(net, content, styles) with no options and the objective the plain
    command builds (no flag but the files: settings parsed by the command line, resolved by
    transfer.prepare, built by transfer.optimize, on its overscan canvas) have the same terms,
    the same graph key and the same weights: their values and gradients at one image are equal."""
    settings = neural_style.parse(["--content", files["content"], "--styles", files["style"],
                                   "--output", str(tmp_path / "o.png"), "--network", tiny_net_path])
    job = transfer.prepare(settings, transfer.load(settings))
    built = []

    class Built(Exception):
        pass

    def make_objective(problem):  # the command's objective, kept, and the run stopped before optimising
        built.append(Objective.for_problem(problem))
        raise Built

    with pytest.raises(Built):
        transfer.optimize(settings, job, None, make_objective)
    # The command optimises the picture on a canvas with the overscan's margin (overscan.py):
    # its objective is the library's of the photo continued past its edges.
    canvas = overscan.pad(job.target, overscan.margin(job.loss, job.target.shape[:2]))
    assert canvas.shape[0] == job.target.shape[0] + 2 * settings_module.OVERSCAN_MIN  # a small picture: the least margin
    x = random_image(41, canvas.shape)
    with built[0] as command, Objective(job.network, canvas, job.styles) as library:
        assert library.key == command.key and library.loss_options == command.loss_options
        # the network's TV weight for the default W2 loss, not the Gram loss's 1000x larger one
        assert library.loss_options.tv_weight == tiny_net_default_tv(job.network) == 0.1
        (terms, grad), (expected, expected_grad) = library.evaluate(x), command.evaluate(x)
    assert list(terms) == list(LOSS_TERMS) and terms == expected and np.array_equal(grad, expected_grad)


def tiny_net_default_tv(network):
    """The TV weight a run resolves with no --tv-weight and the default (relative) style loss."""
    return network.relative_tv_weight
