"""The model: the ONNX runtime (:mod:`shared.model.runtime`): find a model in the repository,
check it against its metadata, run it. The bottom layer: it imports nothing else of ``shared``.
"""
