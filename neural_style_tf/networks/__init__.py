"""The feature networks, behind one interface (feature_network.FeatureNetwork).

Adding a weights format touches this folder only: a loader that returns a plain
`Network`, and a line in loading.py's dispatcher. Importing it imports no TensorFlow.

    feature_network   the typed interface every network implements; mask helpers
    vgg_network       the VGG network: layer spec as data, weights as arrays, its graph
    vgg_files         loaders of VGG weight files: MatConvNet .mat, Keras .h5, this tool's .npz
    embedded          the embedded default network (found in its package, checked by sha256)
    keras_network     any Keras model as the feature network
    calibration       the calibration images shipped with the package
    normalization     the paper's normalised network, and its cache
    loading           the one entry point: load(path) -> a FeatureNetwork
"""
