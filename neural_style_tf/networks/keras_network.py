"""Any Keras model as the feature network: the "train your own network" route.

Style transfer needs only some named layers' activations and their gradient with
respect to the input image. A Keras model (`.keras`, a full-model `.h5`, or a SavedModel
exported from Keras) supplies both. The data flow:

    load(path)                  the model's layers and output shapes, and a way to
                                freeze it (a Keras sub-model, or the SavedModel's
                                serving function cut after a layer)        (once)
    KerasNetwork.frozen(last)   a GraphDef of input -> every feature layer up to `last`,
                                variables converted to constants           (cached)
    KerasNetwork.features(x)    that GraphDef imported into the current tf.compat.v1
                                graph: {layer_name: tensor}, as vgg.net_preloaded gives

so the objective and everything built on it (both optimizers, compare.py, colour control,
coarse-to-fine, the memory preflight) work unchanged. Layers after the deepest
requested one (global pooling, dense heads) are not in the frozen graph, so they are
never evaluated.
"""

from __future__ import annotations

import difflib
import os
import re
import zipfile

import numpy as np

from ..errors import NetworkError
from ..settings import TV_WEIGHT_EMBEDDED
from ..tf_runtime import import_tensorflow, network_session
from . import calibration
from .feature_network import FeatureNetwork, shown_layers

# How the RGB 0..255 image is scaled for the model. Custom models differ: Keras
# `Rescaling(1/255)` pipelines and most home-trained models expect 0..1, some 0..255,
# and models trained like Caffe's VGG expect BGR minus the ImageNet mean.
INPUT_RANGES = ("0-1", "0-255", "caffe")
INPUT_RANGE = "0-1"
# The noise start (objective.initial_image) is centred here, whatever the input range.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# The mean activation every layer of a Keras model is scaled to (`feature_scales`): the
# geometric mean of the embedded VGG-16's style layers' mean activations on the example
# images at 128 px (relu1_1 17.5, relu2_1 16.5, relu3_1 9.9, relu4_1 5.6, relu5_1 1.2),
# so that the default weights balance the terms as they do with the embedded network.
FEATURE_TARGET = 7.2
# Longest side of the calibration images for `feature_scales`: the mean activations
# hardly depend on it, and 128 px keeps the calibration fast for a large model.
CALIBRATION_SIZE = 128


def kind_of(path):
    """'keras', 'h5-model' or 'savedmodel' for a Keras model path, else None."""
    if os.path.isdir(path):
        return "savedmodel" if os.path.isfile(os.path.join(path, "saved_model.pb")) else None
    lower = path.lower()
    if lower.endswith(".keras") or (lower.endswith(".zip") and _zip_has_config(path)):
        return "keras"
    if lower.endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                # A full-model file has its architecture at the root; the VGG weights files
                # that vgg.load_h5 reads have only weights (`layer_names`).
                return "h5-model" if "model_config" in f.attrs else None
        except OSError:
            return None
    return None


def _zip_has_config(path):
    try:
        with zipfile.ZipFile(path) as z:
            return "config.json" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


class KerasNetwork(FeatureNetwork):
    """A Keras model as a FeatureNetwork: its frozen graph imported into the v1 graph.

    `layers` are the model's layers with a 4-D (feature map) output, in model order;
    `shapes` has every top-level layer's output shape, for listing and messages.
    """

    def __init__(self, name, path, shapes, freeze, input_range=INPUT_RANGE, inputs=()):
        """`shapes`: {layer: output shape or None} in model order; `freeze(names)`: a
        (GraphDef, input tensor name, {name: output tensor name}) for those layers;
        `inputs`: names of input layers (listed, never usable)."""
        if input_range not in INPUT_RANGES:
            raise NetworkError(f"input range must be one of {', '.join(INPUT_RANGES)}, not {input_range!r}")
        self.name = name
        self.path = path
        self.input_range = input_range
        self.shapes = dict(shapes)
        self.layers = tuple(n for n, s in self.shapes.items() if s is not None and len(s) == 4 and n not in inputs)
        self.mean_pixel = np.array(IMAGENET_MEAN_RGB, np.float32)
        self.channel_order = "BGR" if input_range == "caffe" else "RGB"
        self.notes = {"keras": True, "input_range": input_range}
        # The features are scaled to the embedded network's magnitudes (feature_scales),
        # so the embedded network's TV weight keeps the same balance.
        self.default_tv_weight = TV_WEIGHT_EMBEDDED

        self._freeze = freeze
        self._frozen = {}
        self._scales = None

    # ------------------------------------------------------------ the Network interface

    def preprocess(self, rgb):
        """RGB 0..255 (array or tensor, channels last) -> the model's input."""
        if self.input_range == "0-1":
            return rgb / 255.0
        if self.input_range == "0-255":
            return rgb
        return (rgb - self.mean_pixel)[..., ::-1]

    def unprocess(self, x):
        if self.input_range == "0-1":
            return x * 255.0
        if self.input_range == "0-255":
            return x
        return x[..., ::-1] + self.mean_pixel

    def describe(self):
        return (f"{self.name}: {len(self.layers)} feature-map layers, input range {self.input_range}, "
                f"from {self.path}")

    def layer_problem(self, name):
        """None if `name` can be a content or style layer, else a one-line reason."""
        if name in self.layers:
            return None
        if name in self.shapes:
            shape = self.shapes[name]
            if shape is None:
                return f"layer {name!r} of {self.name} is used more than once, so it has no single output"
            if len(shape) != 4:
                return (f"layer {name!r} of {self.name} outputs shape {shape}, not a 4-D feature map "
                        f"(batch, height, width, channels): its activations have no positions to compare")
            return f"layer {name!r} of {self.name} is the model's input"
        close = difflib.get_close_matches(name, self.layers, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown layer {name!r} for {self.name}{hint}; its feature-map layers: {shown_layers(self.layers)}"

    @property
    def layer_advice(self):
        # The tool's default layer names are VGG's; a model has names of its own.
        return (f"list them with: python vgg.py layers --network {self.path}; "
                "a Keras model needs --content-layers and --style-layers")

    def layer_table(self):
        rows = []
        for name, shape in self.shapes.items():
            usable = "" if name in self.layers else "\t(not usable: " + (
                "no single output" if shape is None else "input" if len(shape) == 4 else "not a 4-D feature map") + ")"
            rows.append((name, f"{'?' if shape is None else tuple(shape)}{usable}"))
        return rows

    # ------------------------------------------------------------ graphs

    def frozen(self, last):
        """(GraphDef, input tensor name, {layer: output tensor name}) up to `last`, cached."""
        if last not in self._frozen:
            self._frozen[last] = self._freeze(self.layers[: self.layers.index(last) + 1])
        return self._frozen[last]

    def features(self, input_image, last=None, pooling="max", padding="zero", normalize=True):
        """Import the frozen model into the current graph on `input_image` (preprocessed).

        Returns {layer_name: tensor} for every feature layer up to `last` (default: all),
        each multiplied by its layer's scale (see `feature_scales`) unless `normalise` is False.
        `pooling` is the model's own: a trained model's pooling layers are part of it.
        """
        tf = import_tensorflow()
        if padding not in self.paddings:  # checks.validate refuses it first, with advice
            raise ValueError(f"a Keras model keeps its own padding; padding {padding!r} is for VGG weights")
        last = last or self.layers[-1]
        graph_def, input_name, outputs = self.frozen(last)
        names = list(outputs)
        tensors = tf.compat.v1.import_graph_def(graph_def, input_map={input_name: input_image},
                                                return_elements=[outputs[n] for n in names], name="keras")
        if not normalize:
            return dict(zip(names, tensors))
        scales = self.feature_scales()
        return {n: t * np.float32(scales[n]) for n, t in zip(names, tensors)}

    def feature_scales(self):
        """{layer: FEATURE_TARGET / its mean activation} over the calibration images, computed once.

        Why: a custom model's activations can have any scale (a model fed 0..1 has
        features about 255 times smaller than one fed 0..255, and the style loss goes
        with their fourth power), so the tool's default weights would mean nothing and
        SciPy's L-BFGS-B stops at once on a tiny gradient (measured: the example model,
        fed 0..1, starts at a total loss of 0.6 with --style-weight 1e8 and stops after
        one evaluation). Scaling each layer so its mean magnitude over fixed images (the
        example images, as `vgg.py normalize` uses) is that of the embedded network's
        layers gives the default weights the meaning they have there. It is one scalar
        per layer, so it only reweights the loss terms; the features' structure is unchanged.
        """
        if self._scales is None:
            tf = import_tensorflow()
            pictures = calibration.calibration_images(calibration.calibration_paths(), CALIBRATION_SIZE)
            graph = tf.Graph()
            with graph.as_default():
                image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
                net = self.features(self.preprocess(image), normalize=False)
                means = {n: tf.reduce_mean(tf.abs(t)) for n, t in net.items()}
                with network_session(graph) as sess:
                    sums = {n: 0.0 for n in means}
                    for rgb in pictures:
                        for n, m in sess.run(means, {image: np.asarray(rgb, np.float32)[None]}).items():
                            sums[n] += float(m)
            # A layer silent on every calibration image keeps its scale instead of 1/0.
            self._scales = {n: (FEATURE_TARGET * len(pictures) / total if total > 0 else 1.0)
                            for n, total in sums.items()}
        return self._scales

    # ------------------------------------------------------------ memory preflight

    def feature_shapes(self, height, width, last):
        """(layer, H, W, C) of every feature layer up to `last` for a height x width input,
        from TensorFlow's static shape inference on the frozen graph."""
        tf = import_tensorflow()
        with tf.Graph().as_default():
            net = self.features(tf.compat.v1.placeholder(tf.float32, (1, height, width, 3)), last, normalize=False)
            return [(n, *t.shape.as_list()[1:]) for n, t in net.items()]

    def weight_bytes(self, last):
        """Bytes of the constants (the frozen weights) in the graph up to `last`."""
        tf = import_tensorflow()
        graph_def = self.frozen(last)[0]
        total = 0
        for node in graph_def.node:
            if node.op == "Const":
                tensor = node.attr["value"].tensor
                count = int(np.prod([d.size for d in tensor.tensor_shape.dim])) if tensor.tensor_shape.dim else 1
                total += count * tf.as_dtype(tensor.dtype).size
        return total


def load(path, input_range=None):
    """A KerasNetwork from a `.keras` file, a full-model `.h5` or a SavedModel directory.
    Raises NetworkError with a one-line message."""
    kind = kind_of(path)
    if kind is None:
        raise NetworkError(f"{path} is not a Keras model (.keras, a full-model .h5 or a SavedModel directory)")
    if kind == "keras" and not _zip_has_config(path):  # Keras would call it "file not found"
        raise NetworkError(f"{path}: not a valid .keras file (a zip archive holding config.json); "
                               f"is it damaged or cut short?")
    input_range = input_range or INPUT_RANGE
    network = _load_saved_model(path, input_range) if kind == "savedmodel" else _load_keras(path, input_range)
    if not network.layers:
        raise NetworkError(f"{path}: the model has no layer with a 4-D feature-map output")
    return network


def _freeze(concrete):
    """(GraphDef, input tensor name, output tensor names) of a concrete function whose
    variables are turned into constants."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(concrete)
    inputs = [t for t in frozen.inputs if t.dtype.name != "resource"]
    return frozen.graph.as_graph_def(), inputs[0].name, [t.name for t in frozen.outputs]


def _load_keras(path, input_range):
    tf = import_tensorflow()
    import keras

    try:
        # compile=False: the optimizer and loss of training are not needed, and custom
        # losses would otherwise have to be importable.
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetworkError(f"{path}: Keras could not load the model ({first})") from exc
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or model.inputs[0].shape[-1] != 3:
        raise NetworkError(f"{path}: the model must take one RGB image input (batch, height, width, 3)")
    shapes = {}
    for layer in model.layers:
        try:
            shapes[layer.name] = tuple(layer.output.shape)
        except (AttributeError, ValueError):  # a layer used twice has no single output
            shapes[layer.name] = None  # type: ignore[assignment]  # None: "no single shape"
    inputs = {layer.name for layer in model.layers if type(layer).__name__ == "InputLayer"}

    def freeze(names):
        # In eager mode whatever graph is current: converting variables to constants
        # reads their values, which a tf.compat.v1 graph cannot do.
        from tensorflow.python.eager import context

        with context.eager_mode():
            # Only the requested layers' outputs: the sub-model ends at the deepest one,
            # so whatever lies after it (pooling, dense head) is not in the frozen graph.
            sub = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names])
            function = tf.function(lambda x: sub(x, training=False))
            # Height and width left open: one graph serves every image size, even for a
            # model saved with a fixed input size (convolutions do not depend on it).
            graph_def, input_name, outputs = _freeze(
                function.get_concrete_function(tf.TensorSpec([1, None, None, 3], tf.float32)))
        return graph_def, input_name, dict(zip(names, outputs))

    return KerasNetwork(f"Keras model {model.name!r}", path, shapes, freeze, input_range, inputs)


# Inside a traced Keras model, each layer's ops carry the name scope
# `StatefulPartitionedCall/.../<model>/<layer>_<n>/`; `_n` keeps scopes unique.
_SCOPE = re.compile(r"^(?:StatefulPartitionedCall(?:_\d+)?/)+(?P<model>[^/]+)/(?P<layer>[^/]+)/")


def _load_saved_model(path, input_range):
    """A SavedModel exported from a Keras model (`model.export` or `tf.saved_model.save`).

    Keras 3 cannot load a SavedModel as a model: only the serving function is kept. Its
    frozen graph still has each layer's ops under the layer's name scope, so a layer's
    output is the last tensor of its scope that another scope reads. This is a
    heuristic that holds for Keras-exported models; a .keras file is the reliable route.
    """
    tf = import_tensorflow()
    from tensorflow.python.eager import context

    try:
        with context.eager_mode():
            loaded = tf.saved_model.load(path)  # kept: the signature's variables live in it
            signature = loaded.signatures["serving_default"]
            graph_def, input_name, _ = _freeze(signature)
            inputs = [t for t in signature.inputs if t.dtype.name != "resource"]
    except Exception as exc:  # TensorFlow raises many types for a foreign or damaged directory
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise NetworkError(f"{path}: not a SavedModel with a serving_default signature ({first})") from exc
    if len(inputs) != 1 or inputs[0].shape.rank != 4 or inputs[0].shape[-1] != 3:
        raise NetworkError(f"{path}: the serving function must take one RGB image (batch, height, width, 3)")
    scope_of = {}
    for node in graph_def.node:
        match = _SCOPE.match(node.name)
        if match:
            scope_of[node.name] = match.group("layer")
    exported = {}  # layer scope -> its last tensor read from outside the scope
    for node in graph_def.node:
        for source in node.input:
            if source.startswith("^"):
                continue
            scope = scope_of.get(source.split(":")[0])
            if scope is not None and scope_of.get(node.name) != scope:
                exported[scope] = source if ":" in source else source + ":0"
    if not exported:
        raise NetworkError(f"{path}: no Keras layers found in the SavedModel's serving function; "
                               f"save the model with model.save('model.keras') and pass that file")
    position = {n.name: i for i, n in enumerate(graph_def.node)}
    order = sorted(exported, key=lambda scope: position[exported[scope].split(":")[0]])
    # Keras export appends `_<n>` to every scope; the layer names are without it.
    strip = all(re.search(r"_\d+$", scope) for scope in order)
    outputs = {(re.sub(r"_\d+$", "", scope) if strip else scope): exported[scope] for scope in order}
    with tf.Graph().as_default():
        tensors = tf.compat.v1.import_graph_def(graph_def, return_elements=list(outputs.values()), name="")
        shapes = {n: (tuple(t.shape.as_list()) if t.shape.rank is not None else None)
                  for n, t in zip(outputs, tensors)}

    def freeze(names):
        return _prune(graph_def, [outputs[n].split(":")[0] for n in names]), input_name, {n: outputs[n] for n in names}

    name = f"SavedModel {os.path.basename(os.path.normpath(path))!r}"
    return KerasNetwork(name, path, shapes, freeze, input_range)


def _prune(graph_def, keep):
    """`graph_def` with only the nodes that the nodes `keep` depend on: the cut after the
    deepest requested layer (what graph_util.extract_sub_graph does, without its warning)."""
    tf = import_tensorflow()
    nodes = {n.name: n for n in graph_def.node}
    needed, stack = set(), list(keep)
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(i.lstrip("^").split(":")[0] for i in nodes[name].input)
    cut = tf.compat.v1.GraphDef()
    cut.versions.CopyFrom(graph_def.versions)
    cut.library.CopyFrom(graph_def.library)
    cut.node.extend(n for n in graph_def.node if n.name in needed)
    return cut
