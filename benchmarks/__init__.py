"""Benchmarks: convlens against the bare-TensorFlow limit and its peers (see benchmarks/README.md)."""
