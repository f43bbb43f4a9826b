"""The one model-export step: train on scikit-learn's bundled data, export ONNX + metadata."""
