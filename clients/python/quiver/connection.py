"""Where the services are and how to reach them: addresses default like the `quiver` CLI (the
`quiver dev` ports, overridden by `QUIVER_REGISTRY`, `QUIVER_INGEST`, `QUIVER_ONLINE`,
`QUIVER_OFFLINE`), credentials from `QUIVER_TOKEN` and `QUIVER_CA_CERT`.

The client sends `authorization: Bearer <token>` when given a token and speaks TLS, trusting
`ca_cert`, when given one: what a cluster with auth and TLS on (`quiver dev --secure`,
docs/security.md) requires.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import grpc

#: The services a client talks to: (environment variable, `quiver dev` default).
DEFAULTS = {
    "registry": ("QUIVER_REGISTRY", "127.0.0.1:7070"),
    "ingest": ("QUIVER_INGEST", "127.0.0.1:7071"),
    "online": ("QUIVER_ONLINE", "127.0.0.1:7073"),
    "offline": ("QUIVER_OFFLINE", "127.0.0.1:7074"),
}

#: What each service is called in messages ("cannot reach the online store at ...").
NAMES = {
    "registry": "the registry",
    "ingest": "ingest",
    "online": "the online store",
    "offline": "the offline (snapshot) service",
}

# A restarted server should be found again within about a second, not grpc's default of up to
# two minutes of reconnect backoff; messages as large as the CLI allows.
CHANNEL_OPTIONS: Sequence[Tuple[str, int]] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.max_send_message_length", 256 << 20),
)


@dataclass(frozen=True)
class Endpoint:
    """One service's address and how to talk to it."""

    #: `registry`, `ingest`, `online` or `offline`.
    service: str
    #: host:port.
    address: str
    #: Use TLS.
    tls: bool
    #: PEM root certificates to trust (None: the system's), with TLS.
    ca_cert: Optional[bytes]

    def describe(self) -> str:
        """E.g. `the online store at 127.0.0.1:7073`."""
        return f"{NAMES[self.service]} at {self.address}"

    def grpc_channel(self) -> grpc.Channel:
        """A new blocking gRPC channel (connects lazily)."""
        if self.tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.ca_cert)
            return grpc.secure_channel(self.address, credentials, options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def aio_channel(self) -> "grpc.aio.Channel":
        """A new asyncio gRPC channel, bound to the running event loop."""
        if self.tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.ca_cert)
            return grpc.aio.secure_channel(self.address, credentials, options=CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def flight_location(self) -> str:
        """The Arrow Flight location, e.g. `grpc://127.0.0.1:7074`."""
        return f"{'grpc+tls' if self.tls else 'grpc'}://{self.address}"


def endpoint(service: str, given: Optional[str], ca_cert: Optional[bytes]) -> Endpoint:
    """The endpoint of `service`: `given`, else its environment variable, else the `quiver dev`
    default. `https://` (or `grpc+tls://`) asks for TLS with the system's roots; a CA
    certificate always means TLS."""
    variable, default = DEFAULTS[service]
    address = given or os.environ.get(variable) or default
    tls = ca_cert is not None
    for scheme, secure in (
        ("http://", False),
        ("grpc://", False),
        ("grpc+tcp://", False),
        ("https://", True),
        ("grpc+tls://", True),
    ):
        if address.startswith(scheme):
            address = address[len(scheme) :]
            tls = tls or secure
    return Endpoint(service, address.rstrip("/"), tls, ca_cert)


def read_ca_cert(ca_cert: Optional[str | bytes | os.PathLike]) -> Optional[bytes]:
    """The PEM bytes of `ca_cert` (a path, or PEM text/bytes), defaulting to the file named by
    `QUIVER_CA_CERT`; None when neither is set."""
    if ca_cert is None:
        ca_cert = os.environ.get("QUIVER_CA_CERT") or None
        if ca_cert is None:
            return None
    if isinstance(ca_cert, bytes):
        return ca_cert if b"-----BEGIN" in ca_cert else open(ca_cert, "rb").read()
    text = os.fspath(ca_cert)
    if "-----BEGIN" in text:
        return text.encode()
    with open(text, "rb") as f:
        return f.read()


def call_metadata(token: Optional[str], model: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """The metadata sent with every call: the bearer token and the caller's model name (which
    the registry records as a consumer of the features it reads)."""
    metadata = []
    if token:
        metadata.append(("authorization", f"Bearer {token}"))
    if model:
        metadata.append(("model", model))
    return tuple(metadata)
