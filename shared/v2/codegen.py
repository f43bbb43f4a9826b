"""Generate the Python stubs of ``proto/inference.proto``: ``python -m shared.v2.codegen``.

Run at image build time and by ``make test``; the generated
``inference_pb2*.py`` files are not committed. The proto is compiled with the
repository root as include path, so the stubs import each other as
``shared.v2.proto.inference_pb2``.
"""

import sys
from pathlib import Path

from grpc_tools import protoc

PROTO = Path(__file__).resolve().parent / "proto" / "inference.proto"
ROOT = PROTO.parents[3]  # the folder that holds shared/


def generate() -> None:
    """Write inference_pb2.py, inference_pb2_grpc.py and inference_pb2.pyi beside the proto."""
    proto = PROTO.relative_to(ROOT)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--python_out={ROOT}",
            f"--pyi_out={ROOT}",
            f"--grpc_python_out={ROOT}",
            str(proto),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {proto} ({code})")


if __name__ == "__main__":
    generate()
    sys.exit(0)
