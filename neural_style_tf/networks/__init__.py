"""The feature networks, behind one interface (feature_network.FeatureNetwork).

Adding a weights format touches this folder only: a loader that returns a plain
`Network`, and a line in loading.py's dispatcher. Importing it imports no TensorFlow.
Without a path, loading.load_net gives the embedded ImageNet VGG-19 (codebook.py).

Module by module: docs/README.md, "The package, module by module".
"""
