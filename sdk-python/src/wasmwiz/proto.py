"""The raw generated ``wasmwiz.v1`` messages and gRPC stubs, for advanced use.

The clients cover the whole API; reach for these only to build requests by
hand or to call a stub directly.

Example:
    >>> from wasmwiz.proto import execution_pb2
    >>> execution_pb2.Limits(fuel=1000).fuel
    1000
"""

from __future__ import annotations

from ._proto import (
    account_pb2,
    account_pb2_grpc,
    admin_pb2,
    admin_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    module_pb2,
    module_pb2_grpc,
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
]
