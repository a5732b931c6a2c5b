//! `quiver watch`: print registry changes as they commit.

use quiver::rpc_error;
use quiver_proto::registry::{RegistryObject, WatchEvent, WatchRequest};
use quiver_registry::definition::Kind;
use serde_json::json;

use crate::cli::{Output, WatchArgs};

/// Follows the registry's change stream until interrupted.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let mut stream = args
        .addresses
        .registry()
        .await?
        .watch(WatchRequest {
            from_revision: args.from_revision,
            project: args.project,
        })
        .await
        .map_err(|s| rpc_error("watch", s))?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(|s| rpc_error("watch", s))? {
        match args.output {
            Output::Json => println!("{}", serde_json::to_string(&event_json(&event))?),
            Output::Text => print_event(&event),
        }
    }
    Ok(())
}

fn print_event(event: &WatchEvent) {
    let what = if event.snapshot { "snapshot" } else { "change" };
    let n = event.objects.len();
    let objects = if n == 1 { "object" } else { "objects" };
    println!("revision {} ({what}, {n} {objects})", event.revision);
    for object in &event.objects {
        let Some(meta) = &object.meta else { continue };
        let state = if meta.deleted { " deleted" } else { "" };
        println!(
            "  {}/{}/{} v{}{state}",
            meta.project,
            kind_name(meta.kind),
            meta.name,
            meta.version
        );
    }
}

/// One event as one JSON object (documented in README "Using it"):
/// `{"revision", "snapshot", "objects": [{"project", "kind", "name", "version", "revision",
/// "deleted"}]}`.
fn event_json(event: &WatchEvent) -> serde_json::Value {
    let objects: Vec<_> = event.objects.iter().filter_map(object_json).collect();
    json!({
        "revision": event.revision,
        "snapshot": event.snapshot,
        "objects": objects,
    })
}

fn object_json(object: &RegistryObject) -> Option<serde_json::Value> {
    let meta = object.meta.as_ref()?;
    Some(json!({
        "project": meta.project,
        "kind": kind_name(meta.kind),
        "name": meta.name,
        "version": meta.version,
        "revision": meta.revision,
        "deleted": meta.deleted,
    }))
}

fn kind_name(kind: i32) -> &'static str {
    Kind::from_pb(kind).map(Kind::name).unwrap_or("?")
}
