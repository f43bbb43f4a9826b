"""The model: the ONNX runtime (:mod:`shared.model.runtime`), and the input contract of an
api that checks requests against a model its workers run (:mod:`shared.model.input_contract`).
"""
