"""The core every concept package builds on: TensorFlow set-up, layer lookup and graph tracing,
the model head and preprocessing, and where each layer's pixels sit in the input (layer grids).

Nothing here knows about attribution methods, sensitivity metrics or feature visualization; those
packages import the core, never the other way round.
"""
