"""convlens: reproducible visual reports of what CNNs see, and how it changes under transforms."""

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists) hides the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
