"""One way to serve a model: :mod:`shared.serving.model` (the served-model interface and the
ONNX model run in this process) and :mod:`shared.serving.turn_batch` (one onnxruntime run for
the requests of one event-loop turn). Above the kit and the model repository.
"""
