"""convlens: reproducible visual reports of what CNNs see, and how it changes under transforms."""

import os

from convlens import lean_import, native_log

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists) hides the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow 2.21 prints its import-time lines before that setting is read: filter them (native_log)
native_log.install()
# and without scikit-learn, which only Keras's unused scikit-learn wrappers would import (lean_import)
lean_import.install()

__version__ = "0.1.0"
