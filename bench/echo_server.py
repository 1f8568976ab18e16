"""The baseline: a bare grpc.aio server answering WhoAmI with a fixed reply.

    python bench/echo_server.py PORT
No auth, no database: what one Python gRPC process can do on this machine.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc

REPLY = auth_pb2.WhoAmIResponse(
    user_id="00000000-0000-0000-0000-000000000001",
    username="admin",
    email="admin@bai.local",
    role=auth_pb2.USER_ROLE_SUPERADMIN,
    domain_name="default",
)


class Echo(auth_pb2_grpc.AuthServiceServicer):
    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> auth_pb2.WhoAmIResponse:
        return REPLY


async def main(port: int) -> None:
    server = grpc.aio.server()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
