"""Internal access to the generated messages and stubs (see :mod:`wasmwiz.proto`)."""

from __future__ import annotations

from ._gen.wasmwiz.v1 import (
    account_pb2,
    account_pb2_grpc,
    admin_pb2,
    admin_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    module_pb2,
    module_pb2_grpc,
    receipt_pb2,
    server_pb2,
    server_pb2_grpc,
)

__all__ = [
    "account_pb2",
    "account_pb2_grpc",
    "admin_pb2",
    "admin_pb2_grpc",
    "execution_pb2",
    "execution_pb2_grpc",
    "module_pb2",
    "module_pb2_grpc",
    "receipt_pb2",
    "server_pb2",
    "server_pb2_grpc",
]
