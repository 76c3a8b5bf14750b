"""The transformation-sensitivity study: metrics per image (``metrics``), the batched model step
that computes them (``analyzer``), and the study over all images: tables, findings and plots."""
