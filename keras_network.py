"""Any Keras model as the feature network: the "train your own network" route.

Style transfer needs only some named layers' activations and their gradient with
respect to the input image. A Keras model (`.keras`, or a full-model `.h5`) supplies
both. The data flow:

    load(path)                  the Keras model, its 4-D layers in order   (eager, once)
    KerasNetwork.frozen(last)   a GraphDef of input -> every feature layer up to `last`,
                                variables converted to constants            (eager, cached)
    KerasNetwork.features(x)    that GraphDef imported into the current tf.compat.v1
                                graph: {layer_name: tensor}, as vgg.net_preloaded gives

so `stylize.py` and everything built on it (both optimizers, compare.py, colour control,
coarse-to-fine) work unchanged. Layers after the deepest requested one (global pooling,
dense heads) are not in the frozen graph, so they are never evaluated.

A SavedModel directory is refused with advice: Keras 3 exports a SavedModel as a serving
function of the input, without the inner layers that style transfer needs.
"""

from __future__ import annotations

import difflib
import os
import zipfile

import numpy as np

import vgg

# How the RGB 0..255 image is scaled for the model. Custom models differ: Keras
# `Rescaling(1/255)` pipelines and most home-trained models expect 0..1, some 0..255,
# and models trained like Caffe's VGG expect BGR minus the ImageNet mean.
INPUT_RANGES = ("0-1", "0-255", "caffe")
INPUT_RANGE = "0-1"
# The noise start (stylize.initial_image) is centred here, whatever the input range.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# The mean activation every layer of a Keras model is scaled to (`feature_scales`): the
# geometric mean of the embedded VGG-16's style layers' mean activations on the example
# images at 128 px (relu1_1 17.5, relu2_1 16.5, relu3_1 9.9, relu4_1 5.6, relu5_1 1.2),
# so that the default weights balance the terms as they do with the embedded network.
FEATURE_TARGET = 7.2
# Longest side of the calibration images for `feature_scales`: the mean activations
# hardly depend on it, and 128 px keeps the calibration fast for a large model.
CALIBRATION_SIZE = 128
# Longest list of layer names that an error message prints in full.
LIST_LIMIT = 30


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


class KerasNetwork:
    """A Keras model seen through the interface of `vgg.Network` that stylize.py uses:
    `name`, `path`, `layers`, `mean_pixel`, `notes`, `preprocess`, `describe`, plus
    `features` (what `vgg.net_preloaded` returns for it) and `layer_problem`.

    `layers` are the model's layers with a 4-D (feature map) output, in model order;
    `shapes` has every top-level layer's output shape, for listing and messages.
    """

    def __init__(self, model, path, input_range=INPUT_RANGE):
        if input_range not in INPUT_RANGES:
            raise vgg.NetworkError(f"input range must be one of {', '.join(INPUT_RANGES)}, not {input_range!r}")
        self.model = model
        self.path = path
        self.input_range = input_range
        self.name = f"Keras model {model.name!r}"
        self.shapes = {}
        for layer in model.layers:
            try:
                self.shapes[layer.name] = tuple(layer.output.shape)
            except (AttributeError, ValueError):  # a layer used twice has no single output
                self.shapes[layer.name] = None
        input_names = {t.name for t in model.inputs} | {layer.name for layer in model.layers
                                                        if type(layer).__name__ == "InputLayer"}
        self.layers = tuple(n for n, s in self.shapes.items() if s is not None and len(s) == 4 and n not in input_names)
        self.mean_pixel = np.array(IMAGENET_MEAN_RGB, np.float32)
        self.channel_order = "BGR" if input_range == "caffe" else "RGB"
        self.notes = {"keras": True, "input_range": input_range}
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
        shown = ", ".join(self.layers[:LIST_LIMIT])
        if len(self.layers) > LIST_LIMIT:
            shown += f", ... ({len(self.layers) - LIST_LIMIT} more)"
        return f"unknown layer {name!r} for {self.name}{hint} Its feature-map layers: {shown}"

    # ------------------------------------------------------------ graphs

    def frozen(self, last):
        """(GraphDef, input tensor name, {layer: output tensor name}) up to `last`, cached.

        Built in eager mode whatever graph is current: converting variables to
        constants reads their values, which a tf.compat.v1 graph cannot do.
        """
        if last not in self._frozen:
            import keras
            from tensorflow.python.eager import context
            from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

            tf = vgg.import_tensorflow()
            names = self.layers[: self.layers.index(last) + 1]
            with context.eager_mode():
                sub = keras.Model(self.model.inputs[0], [self.model.get_layer(n).output for n in names])
                function = tf.function(lambda x: sub(x, training=False))
                channels = self.model.inputs[0].shape[-1]
                concrete = function.get_concrete_function(tf.TensorSpec([1, None, None, channels], tf.float32))
                frozen = convert_variables_to_constants_v2(concrete)
                graph_def = frozen.graph.as_graph_def()
                outputs = dict(zip(names, (t.name for t in frozen.outputs)))
                self._frozen[last] = (graph_def, frozen.inputs[0].name, outputs)
        return self._frozen[last]

    def features(self, input_image, last=None, normalise=True):
        """Import the frozen model into the current graph on `input_image` (preprocessed).

        Returns {layer_name: tensor} for every feature layer up to `last` (default: all),
        each divided by its mean activation (see `feature_scales`) unless `normalise` is False.
        """
        tf = vgg.import_tensorflow()
        last = last or self.layers[-1]
        graph_def, input_name, outputs = self.frozen(last)
        names = list(outputs)
        tensors = tf.compat.v1.import_graph_def(graph_def, input_map={input_name: input_image},
                                                return_elements=[outputs[n] for n in names], name="keras")
        if not normalise:
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
            import keras
            from tensorflow.python.eager import context

            vgg.import_tensorflow()
            pictures = vgg.calibration_images(vgg.calibration_paths(), CALIBRATION_SIZE)
            names = self.layers
            with context.eager_mode():
                sub = keras.Model(self.model.inputs[0], [self.model.get_layer(n).output for n in names])
                sums = np.zeros(len(names))
                for rgb in pictures:
                    x = np.asarray(self.preprocess(np.asarray(rgb, np.float32)[None]), np.float32)
                    outputs = sub(x, training=False)
                    sums += [float(np.mean(np.abs(np.asarray(o)))) for o in outputs]
            means = sums / len(pictures)
            # A layer silent on every calibration image keeps its scale instead of 1/0.
            self._scales = {n: (FEATURE_TARGET / m if m > 0 else 1.0) for n, m in zip(names, means)}
        return self._scales

    # ------------------------------------------------------------ memory preflight

    def feature_shapes(self, height, width, last):
        """(layer, H, W, C) of every feature layer up to `last` for a height x width input."""
        import keras

        names = self.layers[: self.layers.index(last) + 1]
        sub = keras.Model(self.model.inputs[0], [self.model.get_layer(n).output for n in names])
        shapes = sub.compute_output_shape((1, height, width, self.model.inputs[0].shape[-1]))
        return [(n, s[1], s[2], s[3]) for n, s in zip(names, shapes)]

    def weight_bytes(self, last):
        """Bytes of the weights that the graph up to `last` uses (all of the model's, at most)."""
        import keras

        names = self.layers[: self.layers.index(last) + 1]
        sub = keras.Model(self.model.inputs[0], [self.model.get_layer(n).output for n in names])
        return int(sum(np.prod(w.shape) * 4 for w in sub.weights))


def load(path, input_range=None):
    """A KerasNetwork from a `.keras` or full-model `.h5` file. Raises vgg.NetworkError."""
    kind = kind_of(path)
    if kind == "savedmodel":
        raise vgg.NetworkError(
            f"{path} is a SavedModel, which keeps only the model's serving function, not its layers; "
            f"save the model with model.save('model.keras') and pass that file"
        )
    if kind is None:
        raise vgg.NetworkError(f"{path} is not a Keras model file (.keras or a full-model .h5)")
    if kind == "keras" and not _zip_has_config(path):  # Keras would call it "file not found"
        raise vgg.NetworkError(f"{path}: not a valid .keras file (a zip archive holding config.json); "
                               f"is it damaged or cut short?")
    vgg.import_tensorflow()
    import keras

    try:
        # compile=False: the optimizer and loss of training are not needed, and custom
        # losses would otherwise have to be importable.
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise vgg.NetworkError(f"{path}: Keras could not load the model ({first})") from exc
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or model.inputs[0].shape[-1] != 3:
        raise vgg.NetworkError(f"{path}: the model must take one RGB image input (batch, height, width, 3)")
    network = KerasNetwork(model, path, input_range or INPUT_RANGE)
    if not network.layers:
        raise vgg.NetworkError(f"{path}: the model has no layer with a 4-D feature-map output")
    return network
