//! `quiver watch`: print registry changes as they commit.

use quiver_proto::registry::WatchRequest;
use quiver_registry::definition::Kind;

use super::rpc_error;
use crate::cli::WatchArgs;

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
        let what = if event.snapshot { "snapshot" } else { "change" };
        println!(
            "revision {} ({what}, {} objects)",
            event.revision,
            event.objects.len()
        );
        for object in &event.objects {
            let Some(meta) = &object.meta else { continue };
            let kind = Kind::from_pb(meta.kind).map(Kind::name).unwrap_or("?");
            let state = if meta.deleted { " deleted" } else { "" };
            println!(
                "  {}/{kind}/{} v{}{state}",
                meta.project, meta.name, meta.version
            );
        }
    }
    Ok(())
}
