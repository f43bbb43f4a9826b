"""The one model-export step: train on scikit-learn's bundled data, export ONNX + metadata."""

# The registry first: the training modules it imports at its end build on its TrainedModel,
# so any `import models.<module>` must find models.specs loaded (or loading) already.
from models import specs as specs
