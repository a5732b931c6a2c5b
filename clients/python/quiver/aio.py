"""`quiver.AsyncClient`: `get_features` for asyncio model servers (FastAPI and the like)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import grpc
import pyarrow as pa

from quiver import serving
from quiver._proto.registry.v1 import registry_pb2
from quiver.client import TYPE_LOOKUP_TIMEOUT
from quiver.connection import call_metadata, endpoint, read_ca_cert
from quiver.errors import from_grpc

_DESCRIBE = "/quiver.registry.v1.RegistryService/Describe"


class AsyncClient:
    """Reads features without blocking the event loop. Same addresses, credentials and
    answers as `quiver.Client.get_features`. Its channels belong to the event loop that first
    uses them: create one client per loop (e.g. at application startup) and `await close()`
    at shutdown, or use `async with`."""

    def __init__(
        self,
        online: Optional[str] = None,
        registry: Optional[str] = None,
        *,
        token: Optional[str] = None,
        ca_cert: Optional[str | bytes | os.PathLike] = None,
        project: str = "",
        model: Optional[str] = None,
        timeout: float = 30.0,
    ) -> None:
        ca = read_ca_cert(ca_cert)
        self.endpoints = {
            "online": endpoint("online", online, ca),
            "registry": endpoint("registry", registry, ca),
        }
        self.project = project
        self.timeout = timeout
        if token is None:
            token = os.environ.get("QUIVER_TOKEN") or None
        self._metadata = call_metadata(token, model)
        self._types = serving.FeatureTypes()
        self._channels: dict = {}
        self._calls: dict = {}

    def _channel(self, service: str):
        channel = self._channels.get(service)
        if channel is None:
            channel = self.endpoints[service].aio_channel()
            self._channels[service] = channel
        return channel

    def _call(self, service: str, method: str, response_type):
        call = self._calls.get(method)
        if call is None:
            call = self._channel(service).unary_unary(
                method,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
            self._calls[method] = call
        return call

    async def get_features(
        self,
        features: Optional[Sequence[str] | str] = None,
        service: Optional[str] = None,
        entities: Optional[Mapping[str, Any]] = None,
        as_of: Any = None,
        consistency: str = "eventual",
        with_status: bool = False,
        *,
        project: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pa.Table:
        """As `quiver.Client.get_features`, awaited."""
        project = self.project if project is None else project
        request, keys = serving.encode_request(
            project, features, service, entities or {}, as_of, consistency
        )
        call = self._calls.get(serving.GET_FEATURES)
        if call is None:
            call = serving.get_features_call(self._channel("online"))
            self._calls[serving.GET_FEATURES] = call
        try:
            data = await call(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_grpc(e, self.endpoints["online"].describe()) from None
        table, quick = self._types.quick_table(project, data, keys, with_status)
        if table is not None:
            return table
        response = serving.decode_response(data)
        shape = self._types.known_shape(project, response, keys, with_status)
        if shape is None:
            for view, version in self._types.missing(project, response):
                await self._learn_view(project, view, version)
            shape = self._types.shape(project, response, keys, with_status)
        self._types.remember_quick(quick, shape)
        return serving.to_table(response, shape)

    async def _learn_view(self, project: str, view: str, version: int) -> None:
        call = self._call("registry", _DESCRIBE, registry_pb2.DescribeResponse)
        request = registry_pb2.DescribeRequest(
            project=project, kind=registry_pb2.OBJECT_KIND_FEATURE_VIEW, name=view, version=version
        )
        try:
            described = await call(
                request, timeout=min(self.timeout, TYPE_LOOKUP_TIMEOUT), metadata=self._metadata
            )
        except grpc.RpcError:
            self._types.failed(project, view, version)
            return  # columns are then typed by their values
        self._types.add(project, described.object.feature_view, described.object.meta.version)

    async def close(self) -> None:
        """Closes the connections."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._calls.clear()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
