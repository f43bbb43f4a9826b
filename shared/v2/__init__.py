"""The Open Inference Protocol (KServe V2): a predictor server and an async client.

* :mod:`shared.v2.tensors`: V2 tensors (gRPC raw/typed contents and REST JSON) to numpy and back.
* :mod:`shared.v2.repository`: the models a predictor serves, with their V2 metadata.
* :mod:`shared.v2.grpc_server` and :mod:`shared.v2.rest`: the two faces of the predictor.
* :mod:`shared.v2.server`: runs both in one process (``python -m shared.v2.server``).
* :mod:`shared.v2.client`: what an api uses to call a predictor over gRPC.
* :mod:`shared.v2.peers`: a model on a predictor as an api calling several of them sees it.
"""
