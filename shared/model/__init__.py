"""The model repository: a model's metadata (the contract of ``metadata.json``), its versions, and
the checks that an ONNX file is what its metadata says (:mod:`shared.model.metadata`). The bottom
layer: it imports nothing else of ``shared``.
"""
