//! `quiver list` and `quiver describe`.

use quiver::rpc_error;
use quiver_proto::registry::{DescribeRequest, ListRequest, RegistryObject};
use quiver_registry::definition::{Definition, Kind};

use crate::cli::{DescribeArgs, KindArg, ListArgs, Output};

fn kind(arg: KindArg) -> Kind {
    match arg {
        KindArg::Entity => Kind::Entity,
        KindArg::Source => Kind::Source,
        KindArg::View => Kind::FeatureView,
        KindArg::Service => Kind::FeatureService,
    }
}

/// `quiver list <kind>`.
pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let kind = kind(args.kind);
    let response = args
        .addresses
        .registry()
        .await?
        .list(ListRequest {
            project: args.project,
            kind: kind.to_pb() as i32,
            include_deleted: args.include_deleted,
        })
        .await
        .map_err(|s| rpc_error("list", s))?
        .into_inner();
    if args.output == Output::Json {
        let rows: Vec<_> = response
            .objects
            .iter()
            .map(|o| object_json(o, None))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "project": response.project,
                "revision": response.revision,
                "objects": rows,
            }))?
        );
        return Ok(());
    }
    println!(
        "{:<28} {:>7} {:>9}  {:<20} status",
        "name", "version", "revision", "created"
    );
    for object in &response.objects {
        let Some(meta) = &object.meta else { continue };
        println!(
            "{:<28} {:>7} {:>9}  {:<20} {}",
            meta.name,
            meta.version,
            meta.revision,
            timestamp(meta.created_at.as_ref()),
            if meta.deleted { "deleted" } else { "live" }
        );
    }
    if response.objects.is_empty() {
        println!("(no {} in project {:?})", kind.plural(), response.project);
    }
    Ok(())
}

/// `quiver describe <kind> NAME [--version N]`.
pub async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let kind = kind(args.kind);
    let response = args
        .addresses
        .registry()
        .await?
        .describe(DescribeRequest {
            project: args.project,
            kind: kind.to_pb() as i32,
            name: args.name,
            version: args.version.unwrap_or(0),
        })
        .await
        .map_err(|s| rpc_error("describe", s))?
        .into_inner();
    let object = response.object.unwrap_or_default();
    // A view's versions as the online store has them (serving, backfilling, retired).
    let online = match kind {
        Kind::FeatureView => {
            let meta = object.meta.clone().unwrap_or_default();
            Some(super::view_states::fetch(&args.addresses, &meta.project, &meta.name).await)
        }
        _ => None,
    };
    // A Kafka source's partitions as Quiver committed them and as ingest consumes them.
    let kafka = match (kind, kafka_topic(&object)) {
        (Kind::Source, Some(topic)) => {
            let meta = object.meta.clone().unwrap_or_default();
            let progress =
                super::kafka_progress::fetch(&args.addresses, &meta.project, &meta.name, &topic)
                    .await;
            Some((topic, progress))
        }
        _ => None,
    };
    if args.output == Output::Json {
        let mut json = object_json(&object, Some(&response.versions));
        if let (Some(map), Some((topic, progress))) = (json.as_object_mut(), &kafka) {
            map.insert("kafka".into(), progress.to_json(topic));
        }
        if let (Some(map), Some(online)) = (json.as_object_mut(), &online) {
            map.insert(
                "online".into(),
                match online {
                    Ok(states) => states.iter().map(super::view_states::to_json).collect(),
                    Err(e) => serde_json::json!({ "error": e }),
                },
            );
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let meta = object.meta.clone().unwrap_or_default();
    let versions: Vec<String> = response.versions.iter().map(|v| format!("v{v}")).collect();
    println!(
        "{} {} v{}{} (project {}, revision {}, created {}; versions: {})",
        kind.name(),
        meta.name,
        meta.version,
        if meta.deleted { ", deleted" } else { "" },
        meta.project,
        meta.revision,
        timestamp(meta.created_at.as_ref()),
        versions.join(", ")
    );
    if !meta.dependencies.is_empty() {
        let deps: Vec<String> = meta
            .dependencies
            .iter()
            .map(|d| {
                format!(
                    "{} {} v{}",
                    Kind::from_pb(d.kind).map(Kind::name).unwrap_or("?"),
                    d.name,
                    d.version
                )
            })
            .collect();
        println!("built against: {}", deps.join(", "));
    }
    match &online {
        Some(Ok(states)) if !states.is_empty() => {
            let phases: Vec<String> = states
                .iter()
                .rev()
                .map(|s| format!("v{} {}", s.version, super::view_states::describe(s)))
                .collect();
            println!("online store: {}", phases.join("; "));
        }
        Some(Ok(_)) => println!("online store: not registered yet"),
        Some(Err(e)) => println!("online store: unknown ({e})"),
        None => {}
    }
    if let Some((topic, progress)) = &kafka {
        progress.print(topic);
    }
    println!("---");
    print!("{}", serde_yaml::to_string(&spec_yaml(&object))?);
    Ok(())
}

/// The topic of a source object with a `kafka:` block.
fn kafka_topic(object: &RegistryObject) -> Option<String> {
    match object
        .spec
        .as_ref()
        .and_then(|s| Definition::from_pb(s).ok())?
    {
        Definition::Source(source) => source.kafka.map(|k| k.topic),
        _ => None,
    }
}

fn spec_yaml(object: &RegistryObject) -> serde_yaml::Value {
    object
        .spec
        .as_ref()
        .and_then(|s| Definition::from_pb(s).ok())
        .map(|d| d.to_yaml_value())
        .unwrap_or(serde_yaml::Value::Null)
}

fn object_json(object: &RegistryObject, versions: Option<&[u32]>) -> serde_json::Value {
    let meta = object.meta.clone().unwrap_or_default();
    let mut json = serde_json::json!({
        "project": meta.project,
        "kind": Kind::from_pb(meta.kind).map(Kind::name).unwrap_or("?"),
        "name": meta.name,
        "version": meta.version,
        "revision": meta.revision,
        "created_at": timestamp(meta.created_at.as_ref()),
        "deleted": meta.deleted,
        "spec": serde_json::to_value(spec_yaml(object)).unwrap_or_default(),
    });
    if let Some(versions) = versions {
        json["versions"] = serde_json::json!(versions);
    }
    json
}

/// RFC 3339 UTC: whole seconds, or microseconds when there is a fraction; `-` when unset.
pub fn timestamp(ts: Option<&prost_types::Timestamp>) -> String {
    use quiver_core::timestamp::{format_rfc3339, Fraction};
    ts.and_then(|t| {
        let nanos = (0..1_000_000_000).contains(&t.nanos).then_some(t.nanos)?;
        let micros = t
            .seconds
            .checked_mul(1_000_000)?
            .checked_add(i64::from(nanos / 1_000))?;
        // Exact: microseconds (what Quiver stores) when the time has a fraction.
        Some(format_rfc3339(
            micros,
            if nanos == 0 {
                Fraction::None
            } else {
                Fraction::Micros
            },
        ))
    })
    .unwrap_or_else(|| "-".to_string())
}
