"""terms.py: the terms' inputs held in variables (InputVariables: assigned, checked), what
of a term shapes the graph (structure), and the pixel term that holds nothing (PixelTarget.off).
The terms' values against NumPy are in test_objective.py."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from neural_style_tf import losses
from neural_style_tf.terms import ContentTerm, InputVariables, PixelTarget, PixelTerm
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()


class _Term:
    """A term whose inputs are given."""

    def __init__(self, **inputs):
        self.name, self._inputs = "t", OrderedDict(inputs)

    def inputs(self):
        return self._inputs


def test_inputs_are_variables_assigned_once_and_checked():
    graph = tf.Graph()
    with graph.as_default():
        inputs = InputVariables()
        tensors = inputs.create("t", OrderedDict(a=np.ones((2, 3), np.float32), w=0.5))
        total = tf.reduce_sum(tensors["a"]) * tensors["w"]
    graph.finalize()
    with tf.compat.v1.Session(graph=graph) as session:
        inputs.assign(session, [_Term(a=np.full((2, 3), 2.0, np.float32), w=np.float32(3.0))])
        assert session.run(total) == 36.0
        assert session.run(total) == 36.0  # read again, not fed again
        inputs.assign(session, [_Term(a=np.ones((2, 3), np.float32), w=1.0)])  # a Python number: float32
        assert session.run(total) == 6.0
        with pytest.raises(ValueError, match="'a' is \\(3, 2\\)"):
            inputs.assign(session, [_Term(a=np.ones((3, 2), np.float32), w=1.0)])
        with pytest.raises(ValueError, match="unset"):
            inputs.assign(session, [_Term(a=np.ones((2, 3), np.float32))])


def test_structure_is_what_shapes_the_graph_not_the_values():
    mask = np.ones((4, 4), np.float32)
    a = ContentTerm({"relu4_2": 1.0}, {"relu4_2": np.zeros((1, 2, 2, 8), np.float32)}, losses.content_loss)
    b = ContentTerm({"relu4_2": 1.0}, {"relu4_2": np.ones((1, 2, 2, 8), np.float32)}, losses.content_loss)
    masked = ContentTerm({"relu4_2": 1.0}, a.targets, losses.content_loss, mask)
    assert a.structure() == b.structure() != masked.structure()
    assert list(masked.inputs()) == ["relu4_2/weight", "relu4_2/target", "relu4_2/root"]


def test_pixel_target_off_holds_nothing():
    off = PixelTarget.off((5, 7, 3))
    term = PixelTerm(off, "temporal", (5, 7, 3))
    graph = tf.Graph()
    with graph.as_default():
        image = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, 5, 7, 3)).astype(np.float32))
        inputs = {k: tf.constant(v) for k, v in term.inputs().items()}
        value = term.build({}, image, inputs)
        grad = tf.gradients(value, image)[0]
    with tf.compat.v1.Session(graph=graph) as session:
        v, g = session.run([value, grad])
    assert not off.active and v == 0.0 and not np.any(g)
    with pytest.raises(ValueError, match="temporal target"):
        PixelTerm(off, "temporal", (5, 8, 3)).inputs()
