//! What each RPC needs. One table for every server: a method missing from it is
//! cluster-internal, so an RPC added without a rule is closed to tokens rather than open.

use super::Role;

/// The rule of one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: health checks (probes carry none) and reflection.
    Open,
    /// A token with at least `role`, covering what `scope` says.
    Token {
        /// The RPC's name, for messages.
        method: &'static str,
        /// The weakest role allowed.
        role: Role,
        /// The projects the token must cover.
        scope: Scope,
    },
    /// Only other Quiver processes (the cluster-internal credential).
    Internal,
}

/// The projects a token must cover to call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The one project the RPC acts on, which the handler checks once it knows it.
    Project,
    /// None in particular: the RPC answers with what the token covers (`ListProjects`) or
    /// with nothing of any project (`Limits`).
    Any,
    /// Every project: the RPC acts on the whole cluster (tokens, membership). An admin of one
    /// project must not mint an admin of every project, nor remove nodes others depend on.
    Everything,
}

/// The rule of the method at `path` (`/package.Service/Method`) on a client port. On a peer
/// port every method but health is [`Access::Internal`].
pub fn access(path: &str) -> Access {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let token = |role: Role, scope: Scope| {
        // The name of a known method, as a static string for messages.
        let method = KNOWN
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("this RPC");
        Access::Token {
            method,
            role,
            scope,
        }
    };
    use Role::*;
    use Scope::*;
    match (service, method) {
        ("grpc.health.v1.Health", _) => Access::Open,
        ("grpc.reflection.v1.ServerReflection", _)
        | ("grpc.reflection.v1alpha.ServerReflection", _) => Access::Open,
        ("quiver.registry.v1.RegistryService", "Apply") => token(Editor, Project),
        ("quiver.registry.v1.RegistryService", "List" | "Describe" | "GetLineage" | "Watch") => {
            token(Reader, Project)
        }
        // Answered with the projects the token covers.
        ("quiver.registry.v1.RegistryService", "ListProjects") => token(Reader, Any),
        ("quiver.auth.v1.TokenService", "Create" | "List" | "Revoke") => token(Admin, Everything),
        ("quiver.ingest.v1.IngestService", "Push" | "PushStream") => token(Writer, Project),
        ("quiver.ingest.v1.IngestService", "KafkaStatus") => token(Reader, Project),
        // Ingest's clock and skew: nothing of any project.
        ("quiver.ingest.v1.IngestService", "Limits") => token(Reader, Any),
        ("quiver.serving.v1.ServingService", "GetFeatures") => token(Reader, Project),
        ("quiver.online.v1.OnlineStoreService", "Write") => token(Writer, Project),
        ("quiver.online.v1.OnlineStoreService", "ViewStates") => token(Reader, Project),
        ("quiver.online.v1.ClusterAdminService", _) => token(Admin, Everything),
        // Snapshots: DoExchange checks the project of its command.
        ("arrow.flight.protocol.FlightService", _) => token(Reader, Project),
        // Cluster-internal, and anything unlisted: the registry's RecordConsumer (the online
        // store reports a model's reads; lineage would be forgeable) and TokenService/Digests
        // (every token's digest, for the processes' caches); the online store's WriteEvents
        // (compute's micro-batches: transform outputs, offsets and anomaly flags a client must
        // not forge), ReadAggregates and Producers; compute (only ingest calls it); Raft.
        _ => Access::Internal,
    }
}

const KNOWN: &[&str] = &[
    "Apply",
    "List",
    "Describe",
    "GetLineage",
    "Watch",
    "ListProjects",
    "Create",
    "Revoke",
    "Push",
    "PushStream",
    "KafkaStatus",
    "Limits",
    "GetFeatures",
    "Write",
    "ViewStates",
    "Initialize",
    "AddLearner",
    "Promote",
    "Remove",
    "Status",
    "Compact",
    "DoExchange",
    "DoGet",
    "DoPut",
    "DoAction",
    "Handshake",
    "ListFlights",
    "GetFlightInfo",
    "PollFlightInfo",
    "GetSchema",
    "ListActions",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_rpcs_need_roles_and_internal_ones_need_the_cluster_credential() {
        let needs = |path: &str| match access(path) {
            Access::Token { role, .. } => Some(role),
            _ => None,
        };
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(
            needs("/quiver.serving.v1.ServingService/GetFeatures"),
            Some(Role::Reader)
        );
        assert_eq!(
            needs("/quiver.ingest.v1.IngestService/Push"),
            Some(Role::Writer)
        );
        assert_eq!(
            needs("/quiver.registry.v1.RegistryService/Apply"),
            Some(Role::Editor)
        );
        assert_eq!(
            needs("/quiver.online.v1.ClusterAdminService/AddLearner"),
            Some(Role::Admin)
        );
        assert_eq!(
            needs("/quiver.auth.v1.TokenService/Create"),
            Some(Role::Admin)
        );
        for internal in [
            "/quiver.online.v1.OnlineStoreService/WriteEvents",
            "/quiver.online.v1.OnlineStoreService/ReadAggregates",
            "/quiver.online.v1.OnlineStoreService/Producers",
            "/quiver.compute.v1.ComputeService/Process",
            "/quiver.registry.v1.RegistryService/RecordConsumer",
            "/quiver.auth.v1.TokenService/Digests",
            "/quiver.raft.v1.RaftService/AppendEntries",
            "/quiver.something.v9.New/Thing",
        ] {
            assert_eq!(access(internal), Access::Internal, "{internal}");
        }
        assert!(matches!(
            access("/quiver.ingest.v1.IngestService/Push"),
            Access::Token {
                method: "Push",
                scope: Scope::Project,
                ..
            }
        ));
    }
}
