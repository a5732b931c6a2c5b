"""`quiver.Client`: every Quiver service from one object, blocking calls."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
import pyarrow as pa

from quiver import load as loading
from quiver import push as pushing
from quiver import registry, serving, snapshot as snapshots
from quiver._proto.registry.v1 import registry_pb2
from quiver.connection import Endpoint, call_metadata, endpoint, read_ca_cert
from quiver.errors import Internal, InvalidArgument, NotFound, QuiverError, Unavailable, from_grpc
from quiver._proto.ingest.v1 import ingest_pb2
from quiver.push_checks import FutureBound, refuse_bad_rows
from quiver.push_encoding import columns_of, prepare

_REGISTRY = "/quiver.registry.v1.RegistryService/"
_INGEST = "/quiver.ingest.v1.IngestService/"
# Typing columns must not hold a read up for long when the registry is slow or unreachable.
TYPE_LOOKUP_TIMEOUT = 2.0


class Client:
    """A client of every Quiver service.

    Addresses (host:port) default like the `quiver` CLI: `QUIVER_REGISTRY`, `QUIVER_INGEST`,
    `QUIVER_ONLINE`, `QUIVER_OFFLINE`, else the `quiver dev` ports (7070, 7071, 7073, 7074).
    `token` (default `QUIVER_TOKEN`) is sent as `authorization: Bearer <token>`; `ca_cert`
    (a PEM file's path or PEM text; default `QUIVER_CA_CERT`) turns on TLS trusting it. The
    server does not check either yet. `project` is the default of every call (it may stay
    empty while the registry holds one project); `model` names the caller in lineage.

    Connections open on first use, so a model server that only reads needs only the online
    store (and the registry once per view version, to type columns). Thread-safe; reuse one
    client for the life of the process.
    """

    def __init__(
        self,
        registry: Optional[str] = None,
        ingest: Optional[str] = None,
        online: Optional[str] = None,
        offline: Optional[str] = None,
        *,
        token: Optional[str] = None,
        ca_cert: Optional[str | bytes | os.PathLike] = None,
        project: str = "",
        model: Optional[str] = None,
        timeout: float = 30.0,
        producer_id: Optional[str] = None,
    ) -> None:
        ca = read_ca_cert(ca_cert)
        self.endpoints: Dict[str, Endpoint] = {
            "registry": endpoint("registry", registry, ca),
            "ingest": endpoint("ingest", ingest, ca),
            "online": endpoint("online", online, ca),
            "offline": endpoint("offline", offline, ca),
        }
        self.project = project
        self.timeout = timeout
        if token is None:
            token = os.environ.get("QUIVER_TOKEN") or None
        self._metadata = call_metadata(token, model)
        self._channels: Dict[str, grpc.Channel] = {}
        self._calls: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._types = serving.FeatureTypes()
        self._producers = pushing.Producers(producer_id)
        self._flight = None
        self._get_features = None  # GetFeatures on the online channel, made on first use

    # -- plumbing ---------------------------------------------------------------------------

    def _channel(self, service: str) -> grpc.Channel:
        channel = self._channels.get(service)
        if channel is None:
            with self._lock:
                channel = self._channels.get(service)
                if channel is None:
                    channel = self.endpoints[service].grpc_channel()
                    self._channels[service] = channel
        return channel

    def _unary(self, service: str, method: str, response_type) -> Callable:
        call = self._calls.get(method)
        if call is None:
            call = self._channel(service).unary_unary(
                method,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
            self._calls[method] = call
        return call

    def _invoke(self, service: str, method: str, response_type, request, timeout=None):
        call = self._unary(service, method, response_type)
        try:
            return call(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_grpc(e, self.endpoints[service].describe()) from None

    def _registry(self, method: str, response_type, request):
        return self._invoke("registry", _REGISTRY + method, response_type, request)

    def close(self) -> None:
        """Closes every connection."""
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
            self._calls.clear()
            self._get_features = None
            if self._flight is not None:
                self._flight.close()
                self._flight = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", ".join(f"{k}={e.address!r}" for k, e in self.endpoints.items())
        return f"quiver.Client({where})"

    # -- serving ----------------------------------------------------------------------------

    def get_features(
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
        """Reads features from the online store.

        `features` (`view:feature` or `view@N:feature` refs) or `service` (a feature service)
        for the `entities` (join key -> values, e.g. `{"user_id": [1, 2]}`), as of now or
        `as_of`. Returns the entity columns, then one column per feature named as serving names
        it, typed by the feature (int64, float64, string, list<float32>, timestamp[us, UTC],
        ...), null where the status is not PRESENT; `with_status=True` adds after each feature
        `<name>__status` (PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_TTL, INVALID) and
        `<name>__event_timestamp`. `consistency="strong"` reads linearizably from the leader.
        """
        project = self.project if project is None else project
        request, keys = serving.encode_request(
            project, features, service, entities or {}, as_of, consistency
        )
        call = self._get_features
        if call is None:
            call = self._get_features = serving.get_features_call(self._channel("online"))
        try:
            data = call(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_grpc(e, self.endpoints["online"].describe()) from None
        table, quick = self._types.quick_table(project, data, keys, with_status)
        if table is not None:
            return table
        response = serving.decode_response(data)
        shape = self._types.known_shape(project, response, keys, with_status)
        if shape is None:
            for view, version in self._types.missing(project, response):
                self._learn_view(project, view, version)
            shape = self._types.shape(project, response, keys, with_status)
        self._types.remember_quick(quick, shape)
        return serving.to_table(response, shape)

    def _learn_view(self, project: str, view: str, version: int) -> None:
        request = registry_pb2.DescribeRequest(
            project=project, kind=registry_pb2.OBJECT_KIND_FEATURE_VIEW, name=view, version=version
        )
        try:
            described = self._invoke(
                "registry",
                _REGISTRY + "Describe",
                registry_pb2.DescribeResponse,
                request,
                timeout=min(self.timeout, TYPE_LOOKUP_TIMEOUT),
            )
        except QuiverError:
            self._types.failed(project, view, version)
            return  # columns are then typed by their values (all null: null)
        self._types.add(project, described.object.feature_view, described.object.meta.version)

    # -- ingest -----------------------------------------------------------------------------

    def push(
        self,
        source: str,
        data: Any,
        *,
        project: Optional[str] = None,
        batch_size: int = 10_000,
        workers: int = 4,
        retry_for: float = 120.0,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> pushing.PushResult:
        """Pushes events of `source`: a pandas DataFrame, a pyarrow Table or RecordBatch, or a
        list of dicts, with columns named like the source's (a subset including the join keys
        and the timestamp field; others are null).

        Columns are converted to the source's declared types where nothing is lost (ints to a
        float64 column, any timestamp unit or zone, naive meaning UTC; RFC 3339 strings for
        timestamps). The rows are split over `workers` producers by entity key; each registers
        with the source, then sends its share in the data's order in batches of `batch_size`,
        each retried with its producer id, epoch and sequence until acknowledged (exactly
        once), waiting out backpressure; a batch is acknowledged once committed in the online
        store. Every row is checked first with ingest's rules (`quiver.push_checks`): if any is
        bad, nothing is sent and `InvalidArgument` counts them all and names the first 20, rows
        counted from the start of `data` (`rows[17].amount: expected float64, got string`),
        an event time too far ahead of ingest's clock included (ingest's `Limits` gives both).
        `progress(rows_done, rows_total)` is called after each batch.
        """
        project = self.project if project is None else project
        if batch_size < 1 or workers < 1:
            raise InvalidArgument("push: batch_size and workers must be at least 1")
        raw = columns_of(data)
        if not raw:
            raise InvalidArgument("push: the data has no columns")
        declared, keys, time_column = self._source_schema(project, source)
        columns = [prepare(name, values, declared.get(name)) for name, values in raw.items()]
        rows = len(next(iter(raw.values())))
        if rows == 0:
            return pushing.PushResult()
        try:
            refuse_bad_rows(columns, declared, keys, time_column, self._future_bound())
        except InvalidArgument as e:
            e.result = pushing.PushResult()  # nothing was sent
            raise
        return pushing.run(
            self._channel("ingest"),
            self._producers,
            project,
            source,
            columns,
            rows,
            keys,
            batch_size=batch_size,
            workers=workers,
            retry_for=retry_for,
            timeout=max(self.timeout, 60.0),
            metadata=self._metadata,
            what=self.endpoints["ingest"].describe(),
            progress=progress,
        )

    def load(
        self,
        source: str,
        data: Any,
        project: Optional[str] = None,
        *,
        retry_for: float = 120.0,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> loading.LoadResult:
        """Loads history into `source`: events of any age, admitted without lateness and
        without moving any watermark, into the online tiles still kept and the offline store,
        exactly once. `data` as for `push`.

        The load's producer ids and batches follow from its rows (`quiver load`'s protocol,
        byte for byte), so running it again, whole or after it stopped, adds nothing that was
        added before: those batches count as `already_loaded`. A list of dicts is sent as
        `quiver load` reads a JSON-lines file of those objects, a DataFrame or Table as it reads
        a Parquet file of it, so either is the same load as that file (with the same
        `project` text, which is part of the identity: empty unless given, as the CLI's
        `--project`). Retries, backpressure and the checks of every row before anything is
        sent as `push`; a failed load's error carries `result` (what was loaded before).
        `progress(rows_done, rows_total)` is called after each batch.
        """
        project = self.project if project is None else project
        declared, keys, time_column = self._source_schema(project, source)
        raw = loading.columns_for_load(data, columns_of(data), list(declared), source)
        if not raw:
            raise InvalidArgument("load: the data has no columns")
        columns = [prepare(name, values, declared.get(name)) for name, values in raw.items()]
        rows = len(next(iter(raw.values())))
        try:
            refuse_bad_rows(columns, declared, keys, time_column, self._future_bound())
        except InvalidArgument as e:
            e.result = loading.LoadResult()  # nothing was sent
            raise
        return loading.run(
            self._channel("ingest"),
            project,
            source,
            columns,
            rows,
            keys,
            retry_for=retry_for,
            timeout=max(self.timeout, 60.0),
            metadata=self._metadata,
            what=self.endpoints["ingest"].describe(),
            progress=progress,
        )

    def _source_schema(self, project: str, source: str) -> Tuple[Dict[str, int], List[str], str]:
        """The source's column types, its entity's join keys and its event-time column."""
        described = self._describe_for_push(project, registry_pb2.OBJECT_KIND_SOURCE, source)
        spec = described.object.source
        entity = self._describe_for_push(project, registry_pb2.OBJECT_KIND_ENTITY, spec.entity)
        keys = [k.name for k in entity.object.entity.join_keys]
        return {c.name: c.type for c in spec.schema}, keys, spec.timestamp_field

    def _future_bound(self) -> Optional[FutureBound]:
        """Ingest's clock and allowed skew (`Limits`), so rows too far ahead of it are refused
        before anything is sent; None from an ingest without the call (it checks as rows
        arrive)."""
        try:
            limits = self._invoke(
                "ingest", _INGEST + "Limits", ingest_pb2.LimitsResponse, ingest_pb2.LimitsRequest()
            )
        except Internal as e:
            if e.code == "UNIMPLEMENTED":
                return None
            raise
        except Unavailable:
            # Ingest not reachable yet: the sending waits for it (`retry_for`), and ingest
            # checks each row's time itself when it arrives.
            return None
        now = limits.now.seconds * 1_000_000 + limits.now.nanos // 1000
        return FutureBound(now, limits.max_future_skew_micros)

    def _describe_for_push(self, project: str, kind: int, name: str):
        try:
            return self._registry(
                "Describe",
                registry_pb2.DescribeResponse,
                registry_pb2.DescribeRequest(project=project, kind=kind, name=name),
            )
        except NotFound as e:
            raise InvalidArgument(f"source: {e.message}") from None

    # -- offline ----------------------------------------------------------------------------

    def _flight_client(self):
        import pyarrow.flight as flight

        with self._lock:
            if self._flight is None:
                where = self.endpoints["offline"]
                kwargs = {}
                if where.tls and where.ca_cert is not None:
                    kwargs["tls_root_certs"] = where.ca_cert
                self._flight = flight.FlightClient(where.flight_location(), **kwargs)
            return self._flight

    def snapshot_reader(
        self,
        entities: Any,
        features: Optional[Sequence[str] | str] = None,
        service: Optional[str] = None,
        timestamp_column: str = "event_timestamp",
        sample: Optional[snapshots.Sample] = None,
        *,
        project: Optional[str] = None,
        batch_rows: int = 65_536,
    ) -> pa.RecordBatchReader:
        """As `snapshot`, but streaming: a `pyarrow.RecordBatchReader` of the answer, read as
        it arrives while the entity table is still being sent (bounded memory at any size)."""
        import pyarrow.flight as flight

        project = self.project if project is None else project
        cmd = snapshots.command(project, features, service, timestamp_column, sample)
        schema, batches = snapshots.entity_batches(entities, batch_rows)
        headers = [(k.encode(), v.encode()) for k, v in self._metadata]
        options = flight.FlightCallOptions(headers=headers)
        return snapshots.exchange(
            self._flight_client(), options, cmd, schema, batches, self.endpoints["offline"].describe()
        )

    def snapshot(
        self,
        entities: Any,
        features: Optional[Sequence[str] | str] = None,
        service: Optional[str] = None,
        timestamp_column: str = "event_timestamp",
        sample: Optional[snapshots.Sample] = None,
        *,
        project: Optional[str] = None,
    ) -> pa.Table:
        """A point-in-time-correct training set from the offline store.

        `entities`: a pandas DataFrame, pyarrow Table/RecordBatch/RecordBatchReader or a
        Parquet file's path, with the join keys, a timestamp column (`timestamp_column`) and
        anything else (labels), passed through. Returns its columns, unchanged and in order,
        then one column per feature, each row's values as serving would have returned them at
        that row's time; with `sample` (`quiver.Balanced` or `quiver.InverseFrequency`) a
        subset of the rows and a `sample_weight` column. See `snapshot_reader` to stream.
        """
        return self.snapshot_reader(
            entities, features, service, timestamp_column, sample, project=project
        ).read_all()

    # -- registry ---------------------------------------------------------------------------

    def apply(self, path_or_yaml: registry.PathOrYaml, dry_run: bool = False) -> registry.Plan:
        """Validates definitions (YAML text, or files and directories of `.yaml`/`.yml`) and,
        unless `dry_run`, applies them atomically. Returns the plan. The apply is pinned to
        the revision the plan was made against, so a concurrent change raises `Conflict`
        instead of applying something else. A bad definition raises `InvalidArgument` listing
        every error; nothing is applied."""
        documents = registry.documents(path_or_yaml)
        planned = self._registry(
            "Apply",
            registry_pb2.ApplyResponse,
            registry_pb2.ApplyRequest(documents=documents, dry_run=True),
        )
        plan = registry.plan(planned)
        if dry_run or not plan.changed:
            return plan
        applied = self._registry(
            "Apply",
            registry_pb2.ApplyResponse,
            registry_pb2.ApplyRequest(
                documents=documents, dry_run=False, expected_revision=planned.base_revision
            ),
        )
        return registry.plan(applied)

    def list(
        self, kind: str, *, project: Optional[str] = None, include_deleted: bool = False
    ) -> List[Dict[str, Any]]:
        """The latest version of every object of `kind` (`entities`, `sources`, `views`,
        `services`), by name, as dicts (see `describe`)."""
        response = self._registry(
            "List",
            registry_pb2.ListResponse,
            registry_pb2.ListRequest(
                project=self.project if project is None else project,
                kind=registry.object_kind(kind),
                include_deleted=include_deleted,
            ),
        )
        return [registry.object_dict(o) for o in response.objects]

    def describe(
        self, kind: str, name: str, version: Optional[int] = None, *, project: Optional[str] = None
    ) -> Dict[str, Any]:
        """One object at its latest version or `version`: `kind`, `project`, `name`,
        `version`, `revision`, `created_at`, `deleted`, `dependencies`, `spec` (the definition,
        e.g. a view's features with their `value_type`) and `versions` (every version)."""
        response = self._registry(
            "Describe",
            registry_pb2.DescribeResponse,
            registry_pb2.DescribeRequest(
                project=self.project if project is None else project,
                kind=registry.object_kind(kind),
                name=name,
                version=version or 0,
            ),
        )
        out = registry.object_dict(response.object)
        out["versions"] = list(response.versions)
        return out
