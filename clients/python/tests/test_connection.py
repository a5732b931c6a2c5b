"""What Quiver's servers do not exercise yet: every gRPC status the client maps to an exception
class (PERMISSION_DENIED, UNAUTHENTICATED, leader hints, retry hints), the token and model
metadata, TLS with a CA certificate, and addresses from the environment. A small gRPC server
written here stands in for the online store (and ingest, for pushes)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import threading
from concurrent import futures

import grpc
import pyarrow as pa
import pytest

import quiver
from quiver._proto.ingest.v1 import ingest_pb2
from quiver._proto.registry.v1 import registry_pb2
from quiver._proto.serving.v1 import serving_pb2
from quiver.connection import endpoint

CODES = [
    (grpc.StatusCode.INVALID_ARGUMENT, quiver.InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, quiver.NotFound),
    (grpc.StatusCode.UNAVAILABLE, quiver.Unavailable),
    (grpc.StatusCode.PERMISSION_DENIED, quiver.PermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, quiver.Unauthenticated),
    (grpc.StatusCode.ABORTED, quiver.Conflict),
    (grpc.StatusCode.FAILED_PRECONDITION, quiver.Conflict),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, quiver.ResourceExhausted),
    (grpc.StatusCode.DEADLINE_EXCEEDED, quiver.DeadlineExceeded),
    (grpc.StatusCode.INTERNAL, quiver.Internal),
    (grpc.StatusCode.UNIMPLEMENTED, quiver.Internal),
]


class FakeQuiver:
    """Answers GetFeatures and Push as told; records every call's metadata."""

    def __init__(self, credentials=None):
        self.calls = []
        self.failure = None  # (code, message, trailing metadata)
        self.push_answers = []  # per Push: None (succeed) or a failure tuple
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "GetFeatures": grpc.unary_unary_rpc_method_handler(
                self.get_features,
                request_deserializer=serving_pb2.GetFeaturesRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            ),
        }
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler("quiver.serving.v1.ServingService", handlers),
                grpc.method_handlers_generic_handler(
                    "quiver.registry.v1.RegistryService",
                    {
                        "Describe": grpc.unary_unary_rpc_method_handler(
                            self.describe,
                            request_deserializer=registry_pb2.DescribeRequest.FromString,
                            response_serializer=lambda m: m.SerializeToString(),
                        )
                    },
                ),
                grpc.method_handlers_generic_handler(
                    "quiver.ingest.v1.IngestService",
                    {
                        "Push": grpc.unary_unary_rpc_method_handler(
                            self.push,
                            request_deserializer=ingest_pb2.PushRequest.FromString,
                            response_serializer=lambda m: m.SerializeToString(),
                        )
                    },
                ),
            )
        )
        if credentials is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def fail(self, context, failure):
        code, message, trailing = failure
        context.set_trailing_metadata(trailing)
        context.abort(code, message)

    def get_features(self, request, context):
        with self.lock:
            self.calls.append(dict(context.invocation_metadata()))
        if self.failure:
            self.fail(context, self.failure)
        response = serving_pb2.GetFeaturesResponse()
        response.metadata.feature_names.append(request.entities[0].name)
        response.results.add().values.extend(request.entities[0].values.values)
        return response

    def describe(self, request, context):
        with self.lock:
            self.calls.append({"describe": request.name})
        context.abort(grpc.StatusCode.UNAVAILABLE, "the registry is down")

    def push(self, request, context):
        with self.lock:
            self.calls.append(
                {
                    **dict(context.invocation_metadata()),
                    "producer": request.producer_id,
                    "epoch": request.producer_epoch,
                    "sequence": request.sequence,
                    "rows": len(request.rows),
                }
            )
            answer = self.push_answers.pop(0) if self.push_answers else None
        if answer:
            self.fail(context, answer)
        return ingest_pb2.PushResponse(accepted=len(request.rows))

    def stop(self):
        self.server.stop(None)


@pytest.fixture
def fake():
    server = FakeQuiver()
    yield server
    server.stop()


@pytest.mark.parametrize("code, error_class", CODES)
def test_every_status_code_has_its_exception_class(fake, code, error_class):
    fake.failure = (code, f"the server says {code.name}", ())
    with quiver.Client(online=fake.address) as client:
        with pytest.raises(error_class) as caught:
            client.get_features(features=["v:f"], entities={"user_id": [1]})
    assert str(caught.value) == f"the server says {code.name}"
    assert caught.value.code == code.name
    assert isinstance(caught.value, quiver.QuiverError)


def test_hints_travel_with_the_error(fake):
    fake.failure = (grpc.StatusCode.UNAVAILABLE, "not the leader", (("quiver-leader", "10.0.0.7:7073"),))
    with quiver.Client(online=fake.address) as client:
        with pytest.raises(quiver.Unavailable) as caught:
            client.get_features(features=["v:f"], entities={"user_id": [1]}, consistency="strong")
        assert caught.value.leader == "10.0.0.7:7073"
        fake.failure = (grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", (("retry-after-ms", "250"),))
        with pytest.raises(quiver.ResourceExhausted) as caught:
            client.get_features(features=["v:f"], entities={"user_id": [1]})
        assert caught.value.retry_after == 0.25


def test_token_and_model_metadata(fake, monkeypatch):
    with quiver.Client(online=fake.address, token="s3cret", model="fraud-scorer") as client:
        client.get_features(features=["v:f"], entities={"user_id": [1]})
    monkeypatch.setenv("QUIVER_TOKEN", "from-env")
    monkeypatch.setenv("QUIVER_ONLINE", fake.address)
    with quiver.Client() as client:  # the address and the token from the environment
        client.get_features(features=["v:f"], entities={"user_id": [1]})
    monkeypatch.delenv("QUIVER_TOKEN")
    with quiver.Client() as client:
        client.get_features(features=["v:f"], entities={"user_id": [1]})
    first, second, third = fake.calls
    assert first["authorization"] == "Bearer s3cret" and first["model"] == "fraud-scorer"
    assert second["authorization"] == "Bearer from-env" and "model" not in second
    assert "authorization" not in third


def test_push_retries_keep_the_producer_and_sequence(fake):
    unavailable = (grpc.StatusCode.UNAVAILABLE, "ingest restarting", ())
    busy = (grpc.StatusCode.RESOURCE_EXHAUSTED, "saturated", (("retry-after-ms", "150"),))
    fake.push_answers = [None, unavailable, busy, busy, None, None]
    rows = [{"user_id": i, "ts": dt.datetime.now(dt.timezone.utc)} for i in range(4)]
    with quiver.Client(ingest=fake.address, registry=fake.address) as client:
        client._source_schema = lambda project, source: ({}, [], "ts")  # no registry in this test
        started = dt.datetime.now()
        result = client.push("events", rows, batch_size=2, workers=1)
        waited = (dt.datetime.now() - started).total_seconds()
    assert (result.rows, result.accepted, result.retries, result.throttled) == (4, 4, 1, 2)
    assert waited >= 0.3  # two `retry-after-ms: 150` honoured
    sent = [(c["producer"], c["epoch"], c["sequence"], c["rows"]) for c in fake.calls]
    producer, epoch, registration, _ = sent[0]
    assert epoch > 0  # the producer's creation time in milliseconds
    # Registration (an empty batch), the first batch four times with the same identity, then
    # the next sequence number.
    assert sent == [(producer, epoch, registration, 0)] + [(producer, epoch, registration + 1, 2)] * 4 + [
        (producer, epoch, registration + 2, 2)
    ]


def test_a_push_that_cannot_get_through_says_what_was_committed(fake):
    fake.push_answers = [None, None] + [(grpc.StatusCode.UNAVAILABLE, "down", ())] * 100
    rows = [{"user_id": i} for i in range(4)]
    with quiver.Client(ingest=fake.address) as client:
        client._source_schema = lambda project, source: ({}, [], "ts")
        with pytest.raises(quiver.Unavailable, match="down") as caught:
            client.push("events", rows, batch_size=2, workers=1, retry_for=0.3)
    assert (caught.value.result.rows, caught.value.result.accepted) == (2, 2)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_a_ca_certificate(tmp_path, monkeypatch):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    server = FakeQuiver(grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())]))
    try:
        with quiver.Client(online=server.address, ca_cert=str(cert), token="t") as client:
            table = client.get_features(features=["v:f"], entities={"user_id": [5]})
        assert table.column("user_id").to_pylist() == [5]
        assert server.calls[-1]["authorization"] == "Bearer t"
        monkeypatch.setenv("QUIVER_CA_CERT", str(cert))  # the default, as PEM text works too
        with quiver.Client(online=server.address) as client:
            assert client.endpoints["online"].tls
            client.get_features(features=["v:f"], entities={"user_id": [5]})
        monkeypatch.delenv("QUIVER_CA_CERT")
        with quiver.Client(online=server.address, ca_cert=cert.read_text()) as client:
            client.get_features(features=["v:f"], entities={"user_id": [5]})
        with quiver.Client(online=server.address) as plaintext:  # no TLS: refused
            with pytest.raises(quiver.Unavailable):
                plaintext.get_features(features=["v:f"], entities={"user_id": [5]}, timeout=3)
    finally:
        server.stop()


def test_addresses_default_like_the_cli(monkeypatch):
    for variable in ("QUIVER_REGISTRY", "QUIVER_INGEST", "QUIVER_ONLINE", "QUIVER_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    client = quiver.Client()
    assert {k: e.address for k, e in client.endpoints.items()} == {
        "registry": "127.0.0.1:7070",
        "ingest": "127.0.0.1:7071",
        "online": "127.0.0.1:7073",
        "offline": "127.0.0.1:7074",
    }
    monkeypatch.setenv("QUIVER_OFFLINE", "http://flight.internal:9000")
    assert quiver.Client().endpoints["offline"].address == "flight.internal:9000"
    assert quiver.Client(offline="grpc://h:1").endpoints["offline"].flight_location() == "grpc://h:1"
    secure = endpoint("online", "https://serving.example:443", None)
    assert secure.tls and secure.address == "serving.example:443"


def test_reads_go_on_when_the_registry_is_down(dev, fake):
    # The online store is real; the "registry" fails every lookup of a view's types.
    with quiver.Client(online=dev.online, registry=fake.address, project="pytest") as client:
        for _ in range(5):
            table = client.get_features(
                features=["kinds:count", "kinds:last_vec"], entities={"user_id": [987_654]}
            )
    # Typed by the values instead: none here, so Arrow's null type.
    assert table.column_names == ["user_id", "kinds:count", "kinds:last_vec"]
    assert table.schema.field("kinds:count").type == pa.null()
    # Asked once, not on every read.
    assert fake.calls == [{"describe": "kinds"}]
