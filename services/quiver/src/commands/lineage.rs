//! `quiver lineage NODE`.

use quiver::rpc_error;
use quiver_proto::registry::{GetLineageRequest, LineageNode, LineageNodeKind};
use quiver_registry::lineage::kind_name;

use super::objects::timestamp;
use crate::cli::{LineageArgs, Output};

/// Prints the upstream and downstream of one node.
pub async fn run(args: LineageArgs) -> anyhow::Result<()> {
    let response = args
        .addresses
        .registry()
        .await?
        .get_lineage(GetLineageRequest {
            project: args.project,
            node: args.node,
        })
        .await
        .map_err(|s| rpc_error("lineage", s))?
        .into_inner();
    if args.output == Output::Json {
        let nodes = |ns: &[LineageNode]| ns.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "root": response.root.as_ref().map(|n| n.id.clone()),
                "upstream": nodes(&response.upstream),
                "downstream": nodes(&response.downstream),
                "edges": response.edges.iter().map(|e| [e.from.clone(), e.to.clone()]).collect::<Vec<_>>(),
            }))?
        );
        return Ok(());
    }
    let root = response.root.unwrap_or_default();
    println!("{}", describe(&root));
    for (title, nodes) in [
        ("upstream", &response.upstream),
        ("downstream", &response.downstream),
    ] {
        println!("{title}:");
        if nodes.is_empty() {
            println!("  (none)");
        }
        for node in nodes {
            println!("  {}", describe(node));
        }
    }
    println!("edges:");
    for edge in &response.edges {
        println!("  {} -> {}", edge.from, edge.to);
    }
    Ok(())
}

fn describe(node: &LineageNode) -> String {
    let kind = LineageNodeKind::try_from(node.kind).unwrap_or(LineageNodeKind::Unspecified);
    match kind {
        LineageNodeKind::Consumer => format!(
            "{} {} (last seen {})",
            kind_name(kind),
            node.name,
            timestamp(node.last_seen.as_ref())
        ),
        _ => format!("{} {} (v{})", kind_name(kind), node.name, node.version),
    }
}
