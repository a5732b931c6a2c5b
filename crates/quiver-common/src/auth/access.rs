//! What each RPC needs. One table for every server: a method missing from it is
//! cluster-internal, so an RPC added without a rule is closed to tokens rather than open.

use super::Role;

/// The rule of one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: health checks (probes carry none) and reflection.
    Open,
    /// A token with at least `role`; `scoped` methods act on one project, which the handler
    /// checks once it knows it.
    Token {
        /// The RPC's name, for messages.
        method: &'static str,
        /// The weakest role allowed.
        role: Role,
        /// Whether the RPC acts on a project the token must cover.
        scoped: bool,
    },
    /// Only other Quiver processes (the cluster-internal credential).
    Internal,
}

/// The rule of the method at `path` (`/package.Service/Method`) on a client port. On a peer
/// port every method but health is [`Access::Internal`].
pub fn access(path: &str) -> Access {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let token = |role: Role, scoped: bool| {
        // The name of a known method, as a static string for messages.
        let method = KNOWN
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("this RPC");
        Access::Token {
            method,
            role,
            scoped,
        }
    };
    use Role::*;
    match (service, method) {
        ("grpc.health.v1.Health", _) => Access::Open,
        ("grpc.reflection.v1.ServerReflection", _)
        | ("grpc.reflection.v1alpha.ServerReflection", _) => Access::Open,
        ("quiver.registry.v1.RegistryService", "Apply") => token(Editor, true),
        ("quiver.registry.v1.RegistryService", "List" | "Describe" | "GetLineage" | "Watch") => {
            token(Reader, true)
        }
        // Answered with the projects the token covers.
        ("quiver.registry.v1.RegistryService", "ListProjects") => token(Reader, false),
        ("quiver.auth.v1.TokenService", "Create" | "List" | "Revoke") => token(Admin, false),
        ("quiver.ingest.v1.IngestService", "Push" | "PushStream") => token(Writer, true),
        ("quiver.ingest.v1.IngestService", "KafkaStatus") => token(Reader, true),
        // Ingest's clock and skew: nothing of any project.
        ("quiver.ingest.v1.IngestService", "Limits") => token(Reader, false),
        ("quiver.serving.v1.ServingService", "GetFeatures") => token(Reader, true),
        ("quiver.online.v1.OnlineStoreService", "Write") => token(Writer, true),
        ("quiver.online.v1.OnlineStoreService", "ViewStates") => token(Reader, true),
        ("quiver.online.v1.ClusterAdminService", _) => token(Admin, false),
        // Snapshots: DoExchange checks the project of its command.
        ("arrow.flight.protocol.FlightService", _) => token(Reader, true),
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
                scoped: true,
                ..
            }
        ));
    }
}
