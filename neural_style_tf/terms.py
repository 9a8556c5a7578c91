"""The loss terms of an Objective as small objects, and the variables that hold their inputs.

Each term is a small frozen object: `name`; `structure()`, what of it shapes the graph
(two problems whose terms have the same structure share one graph); `inputs()`,
{key: array} of what it compares with (targets, masks, and the weights that depend on
them); and `build(net, image, inputs)` -> its unweighted scalar tensor from the
network's features {layer: tensor}, the image (1, H, W, 3) and {key: tensor} of those
inputs, which `InputVariables` holds in variables of the graph. objective.py composes the terms.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .losses import StyleStatistic, pool_mask, relative_content_weight, temporal_loss
from .settings import RELATIVE_CONTENT_SCALE
from .tf_runtime import import_tensorflow

Tensor = Any
# The temporal term's name among an Objective's terms (video.py's, see PixelTarget).
TEMPORAL_TERM = "temporal"


@dataclass(frozen=True)
class PixelTarget:
    """Pixels to hold the image to, for a term weight * temporal_loss(image, target, mask):
    video.py's temporal term (the previous result warped into this frame, the mask its
    reliability), and the protected subject's "keep" term (the photo, the mask
    --content-mask, see objective.Guidance). A PixelTerm builds the term."""

    target: np.ndarray  # (H, W, 3)
    mask: np.ndarray  # (H, W): how much each pixel is held to `target`, 0..1
    weight: float
    # False: a term that holds nothing (PixelTarget.off), left out of the reported terms.
    active: bool = True

    @classmethod
    def off(cls, shape) -> PixelTarget:
        """The term with nothing to hold, for an image of (H, W, ...) `shape`: exactly 0,
        gradient 0. Video.py's first frame has it, so that the later frames' graph (which
        holds each frame to the last) is the first frame's."""
        height, width = int(shape[0]), int(shape[1])
        return cls(np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.float32), 0.0, False)


def as_input(value: Any) -> np.ndarray:
    """A term's input as the array its variable holds: an array keeps its dtype, a Python
    number is float32 (as tf.constant would have made it)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    return np.asarray(value, np.float32)


# ---------------------------------------------------------------- the terms
# The terms whose weight objective.FED_WEIGHTS names are multiplied by their fed weight
# there; a pixel term carries its own (an input).


@dataclass(frozen=True)
class ContentTerm:
    """sum over content layers l of w_l content(F_l, P_l), each optionally masked: both
    the features and the target weighted by sqrt(mask), which weights each squared
    difference by the mask whatever the loss scale's normalisation."""

    layer_weights: dict
    targets: dict
    loss: Any  # the loss scale's content(features, target)
    mask: np.ndarray | None = None
    relative: bool = False  # each layer divided by its target's size (losses.relative_content_weight)
    relative_scale: float = RELATIVE_CONTENT_SCALE  # the network's (FeatureNetwork.relative_content_scale)
    name: str = "content"

    def structure(self) -> tuple:
        return self.name, tuple(self.layer_weights), self.loss, self.mask is not None, self.relative

    def inputs(self) -> OrderedDict:
        out = OrderedDict()
        for n, w in self.layer_weights.items():
            target = self.targets[n]
            # The layer's weight, relative to its target's size: an input, as the target is.
            out[f"{n}/weight"] = np.float32(w * relative_content_weight(target, self.relative_scale) if self.relative else w)
            if self.mask is None:
                out[f"{n}/target"] = target
            else:
                root = np.sqrt(pool_mask(self.mask, target.shape[1:3]))[None, :, :, None].astype(np.float32)
                out[f"{n}/target"], out[f"{n}/root"] = target * root, root
        return out

    def build(self, net: dict, image: Tensor, inputs: dict) -> Tensor:
        tf = import_tensorflow()

        if not self.layer_weights:  # no content term at all (pure texture synthesis)
            return tf.constant(0.0)
        return tf.add_n([inputs[f"{n}/weight"] * self.loss(net[n] if self.mask is None else net[n] * inputs[f"{n}/root"],
                                                          inputs[f"{n}/target"])
                         for n in self.layer_weights])


@dataclass(frozen=True)
class StyleTerm:
    """sum over styles i of blend_i sum over layers l of w_l loss(statistic of layer l,
    guided by style i's mask there, target of style i at l). A layer's unguided
    statistic is built once however many styles use it."""

    statistic: StyleStatistic
    layer_weights: dict
    blend: list
    targets: list
    layer_masks: list
    name: str = "style"

    def structure(self) -> tuple:
        return (self.name, self.statistic, tuple(self.layer_weights.items()),
                tuple(m is not None for m in self.layer_masks))

    def inputs(self) -> OrderedDict:
        out = OrderedDict()
        for i, (b, style_targets, masks) in enumerate(zip(self.blend, self.targets, self.layer_masks)):
            out[f"{i}/blend"] = np.float32(b)  # with guidance, it depends on the masks (Guidance.blend)
            for n in self.layer_weights:
                out.update((f"{i}/{n}/{k}", t) for k, t in enumerate(style_targets[n]))
                if masks is not None:
                    out[f"{i}/{n}/mask"] = masks[n]
        return out

    def build(self, net: dict, image: Tensor, inputs: dict) -> Tensor:
        tf = import_tensorflow()

        built: dict = {}

        def stat(name, i, masked):
            key = (name, i if masked else None)
            if key not in built:
                built[key] = self.statistic.compute(net[name], inputs[f"{i}/{name}/mask"] if masked else None)
            return built[key]

        def target(i, name):
            return tuple(inputs[f"{i}/{name}/{k}"] for k in range(len(self.targets[i][name])))

        return tf.add_n([
            inputs[f"{i}/blend"] * tf.add_n([w * self.statistic.loss(stat(n, i, masks is not None), target(i, n))
                                             for n, w in self.layer_weights.items()])
            for i, masks in enumerate(self.layer_masks)
        ])


@dataclass(frozen=True)
class TotalVariationTerm:
    """The loss scale's total variation of the image."""

    tv: Any
    name: str = "tv"

    def structure(self) -> tuple:
        return self.name, self.tv

    def inputs(self) -> OrderedDict:
        return OrderedDict()

    def build(self, net: dict, image: Tensor, inputs: dict) -> Tensor:
        return self.tv(image)


def check_pixel_target(held: PixelTarget, shape) -> tuple[np.ndarray, np.ndarray]:
    """(target, mask) of a `PixelTarget` as float32, checked against the image's (H, W, 3) shape."""
    target, mask = np.asarray(held.target, np.float32), np.asarray(held.mask, np.float32)
    shape = tuple(shape)
    if target.shape != shape or mask.shape != shape[:2]:
        raise ValueError(f"temporal target {target.shape} and mask {mask.shape} do not fit an image of {shape}")
    return target, mask


@dataclass(frozen=True)
class PixelTerm:
    """A `PixelTarget`'s weighted term (the video's temporal term, the protected subject's keep)."""

    held: PixelTarget
    name: str = TEMPORAL_TERM
    shape: tuple = ()  # the image's (H, W, 3)

    def structure(self) -> tuple:
        return (self.name,)

    def inputs(self) -> OrderedDict:
        target, mask = check_pixel_target(self.held, self.shape)
        return OrderedDict(weight=np.float32(self.held.weight), target=target[None], mask=mask[None])

    def build(self, net: dict, image: Tensor, inputs: dict) -> Tensor:
        return inputs["weight"] * temporal_loss(image, inputs["target"], inputs["mask"])


class InputVariables:
    """The terms' inputs in a graph: one variable per array, assigned once per problem
    (`assign`), read by every evaluation without being fed again.

    Why variables and not constants: a constant bakes one problem into the graph, so
    every frame of a video rebuilt it (15-19 s at 256 px). Why not placeholders: those
    would be fed, that is copied, at every evaluation."""

    def __init__(self) -> None:
        self.tensors: dict = {}  # (term, key) -> the variable's value, for the term's ops
        self.specs: dict = {}  # (term, key) -> (shape, dtype)
        self._placeholders: dict = {}
        self._assign: list = []

    def create(self, name: str, values: OrderedDict) -> dict:
        """Variables for one term's inputs (in the graph being built): {key: tensor}."""
        tf = import_tensorflow()

        out = {}
        for key, value in values.items():
            value = as_input(value)
            variable = tf.compat.v1.Variable(tf.zeros(value.shape, value.dtype), trainable=False, use_resource=True)
            placeholder = tf.compat.v1.placeholder(value.dtype, value.shape)
            self._assign.append(variable.assign(placeholder, read_value=False))
            self._placeholders[name, key] = placeholder
            self.specs[name, key] = (value.shape, value.dtype)
            out[key] = self.tensors[name, key] = variable.value()
        return out

    def feed(self, terms: list) -> dict:
        """{placeholder: array} of every term's inputs, checked against the variables."""
        feed = {}
        for term in terms:
            for key, value in term.inputs().items():
                value = as_input(value)
                if (term.name, key) not in self.specs:
                    raise ValueError(f"the {term.name} term's input {key!r} is not in this objective's graph")
                if (value.shape, value.dtype) != self.specs[term.name, key]:
                    shape, dtype = self.specs[term.name, key]
                    raise ValueError(f"the {term.name} term's {key!r} is {value.shape} {value.dtype}, "
                                     f"this objective's graph holds {shape} {dtype}")
                feed[self._placeholders[term.name, key]] = value
        if len(feed) != len(self._placeholders):
            raise ValueError("the problem leaves some of this objective's inputs unset")
        return feed

    def assign(self, session: Any, terms: list) -> None:
        session.run(self._assign, self.feed(terms))
