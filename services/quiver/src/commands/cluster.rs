//! `quiver cluster <status|init|add-learner|promote|remove|compact>`.

use quiver::addresses::admin_client;
use quiver::rpc_error;
use quiver_common::leader_hint::with_leader;
use quiver_proto::online::{
    AddLearnerRequest, CompactRequest, InitializeRequest, Member, MembershipResponse,
    PromoteRequest, RemoveRequest, StatusRequest, StatusResponse,
};

use crate::cli::{ClusterArgs, ClusterCommand, Output};

/// How many redirects/retries a leader-only command makes.
const ATTEMPTS: usize = 20;

/// Runs a cluster command.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let node = args.addresses.online.clone();
    match args.command {
        ClusterCommand::Status => {
            let status = admin_client(&node)
                .await?
                .status(StatusRequest {})
                .await
                .map_err(|s| rpc_error("status", s))?
                .into_inner();
            print_status(&status, args.output)?;
        }
        ClusterCommand::Init { members } => {
            let members = members
                .iter()
                .map(|m| parse_member(m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let response = admin_client(&node)
                .await?
                .initialize(InitializeRequest { members })
                .await
                .map_err(|s| rpc_error("init", s))?
                .into_inner();
            println!(
                "{}",
                if response.initialized {
                    "Cluster initialised."
                } else {
                    "Already initialised with these members."
                }
            );
        }
        ClusterCommand::AddLearner {
            node_id,
            address,
            peer_address,
            wait,
        } => {
            let request = AddLearnerRequest {
                member: Some(Member {
                    node_id,
                    address,
                    peer_address: peer_address.unwrap_or_default(),
                    store_id: String::new(),
                }),
                wait_caught_up: wait,
            };
            let response = with_leader(&node, ATTEMPTS, |target| {
                let request = request.clone();
                async move {
                    admin(&target)
                        .await?
                        .add_learner(request)
                        .await
                        .map(|r| r.into_inner())
                }
            })
            .await
            .map_err(|s| rpc_error("add-learner", s))?;
            print_membership("learner added", &response, args.output)?;
        }
        ClusterCommand::Promote { node_id } => {
            let response = with_leader(&node, ATTEMPTS, |target| async move {
                admin(&target)
                    .await?
                    .promote(PromoteRequest { node_id })
                    .await
                    .map(|r| r.into_inner())
            })
            .await
            .map_err(|s| rpc_error("promote", s))?;
            print_membership("promoted", &response, args.output)?;
        }
        ClusterCommand::Remove { node_id } => {
            let response = with_leader(&node, ATTEMPTS, |target| async move {
                admin(&target)
                    .await?
                    .remove(RemoveRequest { node_id })
                    .await
                    .map(|r| r.into_inner())
            })
            .await
            .map_err(|s| rpc_error("remove", s))?;
            print_membership("removed", &response, args.output)?;
        }
        ClusterCommand::Compact => {
            let response = admin_client(&node)
                .await?
                .compact(CompactRequest {})
                .await
                .map_err(|s| rpc_error("compact", s))?
                .into_inner();
            println!(
                "Snapshot at log index {}; the log up to it is purged.",
                response.snapshot_index
            );
        }
    }
    Ok(())
}

/// An admin client for `with_leader`, whose errors must be statuses.
async fn admin(
    target: &str,
) -> Result<
    quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient<
        quiver_common::client_channel::AuthChannel,
    >,
    tonic::Status,
> {
    admin_client(target)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))
}

fn parse_member(text: &str) -> anyhow::Result<Member> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("member {text:?} is not id=host:port"))?;
    let node_id = id
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("member {text:?}: {id:?} is not a node id"))?;
    let (address, peer_address) = address.split_once('@').unwrap_or((address, ""));
    Ok(Member {
        node_id,
        address: address.trim().to_string(),
        peer_address: peer_address.trim().to_string(),
        store_id: String::new(),
    })
}

fn show_members(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}@{}", m.node_id, m.address, m.peer_address))
        .collect::<Vec<_>>()
        .join(", ")
}

fn members_json(members: &[Member]) -> serde_json::Value {
    members
        .iter()
        .map(|m| {
            serde_json::json!({"node_id": m.node_id, "address": m.address, "peer_address": m.peer_address})
        })
        .collect()
}

fn print_membership(
    what: &str,
    response: &MembershipResponse,
    output: Output,
) -> anyhow::Result<()> {
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "node_id": response.node_id,
                "voters": members_json(&response.voters),
                "learners": members_json(&response.learners),
                "log_index": response.log_index,
            }))?
        );
        return Ok(());
    }
    println!(
        "{what}: node {} (log index {})",
        response.node_id, response.log_index
    );
    println!("  voters:   {}", show_members(&response.voters));
    println!("  learners: {}", show_members(&response.learners));
    Ok(())
}

fn print_status(status: &StatusResponse, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "node_id": status.node_id,
                "state": status.state,
                "initialized": status.initialized,
                "leader_id": status.leader_id,
                "leader_address": status.leader_address,
                "term": status.term,
                "last_log_index": status.last_log_index,
                "last_applied": status.last_applied,
                "snapshot_index": status.snapshot_index,
                "purged_index": status.purged_index,
                "voters": members_json(&status.voters),
                "learners": members_json(&status.learners),
                "replication": status.replication,
                "admission_rules": status.admission_rules,
                "store_id": status.store_id,
                "peer_address": status.peer_address,
            }))?
        );
        return Ok(());
    }
    println!(
        "node {} is {} (term {})",
        status.node_id, status.state, status.term
    );
    println!(
        "  store:    {} (peer address {})",
        if status.store_id.is_empty() {
            "-"
        } else {
            &status.store_id
        },
        status.peer_address
    );
    if !status.initialized {
        println!("  the cluster is not initialised: run `quiver cluster init --members id=host:port,...`");
    }
    println!("  leader:   {} {}", status.leader_id, status.leader_address);
    println!(
        "  log:      last {} applied {} snapshot {} purged {}",
        status.last_log_index, status.last_applied, status.snapshot_index, status.purged_index
    );
    println!("  voters:   {}", show_members(&status.voters));
    println!("  learners: {}", show_members(&status.learners));
    println!(
        "  admission rules of its binary: {}",
        status.admission_rules
    );
    for (id, matched) in &status.replication {
        println!("  replication to {id}: matched {matched}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_member;

    #[test]
    fn members_name_a_client_address_and_optionally_a_peer_address() {
        let both = parse_member("2=node-2:7070@node-2:7076").unwrap();
        assert_eq!(
            (
                both.node_id,
                both.address.as_str(),
                both.peer_address.as_str()
            ),
            (2, "node-2:7070", "node-2:7076")
        );
        let client_only = parse_member(" 3 = node-3:7070 ").unwrap();
        assert_eq!(client_only.address, "node-3:7070");
        assert_eq!(client_only.peer_address, "", "asked of the node");
        assert!(parse_member("node-4:7070").is_err());
        assert!(parse_member("x=node-4:7070").is_err());
    }
}
