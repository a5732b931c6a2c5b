//! `quiver get`: read features from the online store, as a table or as JSON for scripts:
//! `{"rows":[{"entity":{"user_id":1},"features":{"user_txn:last_amount":{"value":12.5,"status":"PRESENT","event_time":"2026-01-01T00:00:00Z"}}}]}`.

use std::collections::HashMap;

use quiver::addresses::serving_client;
use quiver::rpc_error;
use quiver_common::leader_hint::with_leader;
use quiver_core::ValueType;
use quiver_proto::registry::registry_object::Spec;
use quiver_proto::registry::{ListRequest, ObjectKind};
use quiver_proto::serving::{
    get_features_request, Consistency, FeatureList, GetFeaturesRequest, GetFeaturesResponse,
};
use quiver_proto::types::{value::Kind, EntityColumn, FieldStatus, RepeatedValue, Value};
use serde_json::{json, Map};

use super::objects::timestamp;
use crate::cli::{ConsistencyArg, GetArgs, Output};

/// Reads and prints features.
pub async fn run(args: GetArgs) -> anyhow::Result<()> {
    let key_types = join_key_types(&args).await?;
    let mut entities = Vec::new();
    for spec in &args.entities {
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--entity {spec:?} is not join_key=v1,v2,..."))?;
        let value_type = key_types.get(name).copied().ok_or_else(|| {
            anyhow::anyhow!("--entity: {name:?} is not a join key of any entity in the project")
        })?;
        let values = values
            .split(',')
            .map(|v| {
                parse_key(v.trim(), value_type).map_err(|e| anyhow::anyhow!("--entity {name}: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        entities.push(EntityColumn {
            name: name.to_string(),
            values: Some(RepeatedValue { values }),
        });
    }
    let as_of = args
        .as_of
        .as_deref()
        .map(|t| {
            quiver_core::timestamp::parse_rfc3339_micros(t)
                .map(quiver_proto::convert::micros_to_timestamp)
                .map_err(|e| anyhow::anyhow!("--as-of: {e}"))
        })
        .transpose()?;
    let features = match &args.service {
        Some(service) => get_features_request::Features::FeatureService(service.clone()),
        None => get_features_request::Features::FeatureList(FeatureList {
            refs: args.features.clone(),
        }),
    };
    let request = GetFeaturesRequest {
        project: args.project.clone(),
        features: Some(features),
        entities,
        as_of,
        consistency: match args.consistency {
            ConsistencyArg::Eventual => Consistency::Eventual,
            ConsistencyArg::Strong => Consistency::Strong,
        } as i32,
        full_feature_names: false,
    };
    let model = args.model.clone();
    // STRONG reads must run on the leader: follow its hint.
    let response = with_leader(&args.addresses.online, 10, |target| {
        let mut request = tonic::Request::new(request.clone());
        if let Some(model) = model.as_deref().and_then(|m| m.parse().ok()) {
            request.metadata_mut().insert("model", model);
        }
        async move {
            let mut client = serving_client(&target)
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            client.get_features(request).await.map(|r| r.into_inner())
        }
    })
    .await
    .map_err(|s| rpc_error("get", s))?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string(&to_json(&response))?),
        Output::Text => print_table(&response),
    }
    Ok(())
}

/// The types of every join key in the project, by name.
async fn join_key_types(args: &GetArgs) -> anyhow::Result<HashMap<String, ValueType>> {
    let entities = args
        .addresses
        .registry()
        .await?
        .list(ListRequest {
            project: args.project.clone(),
            kind: ObjectKind::Entity as i32,
            include_deleted: false,
        })
        .await
        .map_err(|s| rpc_error("listing entities", s))?
        .into_inner();
    let mut types = HashMap::new();
    for object in entities.objects {
        let Some(Spec::Entity(entity)) = object.spec else {
            continue;
        };
        let Ok(entity) = quiver_core::Entity::try_from(&entity) else {
            continue;
        };
        for key in entity.join_keys {
            types.insert(key.name, key.value_type);
        }
    }
    Ok(types)
}

fn parse_key(text: &str, value_type: ValueType) -> Result<Value, String> {
    let kind = match value_type {
        ValueType::Int64 => Kind::Int64Value(
            text.parse()
                .map_err(|_| format!("{text:?} is not an int64"))?,
        ),
        ValueType::String => Kind::StringValue(text.to_string()),
        ValueType::Bytes => Kind::BytesValue(text.as_bytes().to_vec()),
        other => return Err(format!("{other} cannot be a join key")),
    };
    Ok(Value { kind: Some(kind) })
}

/// A value as JSON: numbers, strings, booleans, arrays; timestamps as RFC 3339; bytes as hex.
fn value_json(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::Int64Value(v)) => json!(v),
        Some(Kind::Float64Value(v)) => float_json(*v),
        Some(Kind::Float32Value(v)) => float_json(f64::from(*v)),
        Some(Kind::BoolValue(v)) => json!(v),
        Some(Kind::StringValue(v)) => json!(v),
        Some(Kind::BytesValue(v)) => {
            json!(v.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
        Some(Kind::TimestampValue(t)) => json!(timestamp(Some(t))),
        Some(Kind::Float32ListValue(list)) => serde_json::Value::Array(
            list.values
                .iter()
                .map(|v| float_json(f64::from(*v)))
                .collect(),
        ),
    }
}

/// A float as JSON: a number, or `"inf"`, `"-inf"`, `"NaN"`, which JSON numbers cannot
/// write (a `null` would read as a missing value, which a PRESENT one is not).
fn float_json(v: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(v) {
        Some(number) => serde_json::Value::Number(number),
        None if v.is_nan() => json!("NaN"),
        None if v > 0.0 => json!("inf"),
        None => json!("-inf"),
    }
}

fn status_name(raw: i32) -> &'static str {
    match FieldStatus::try_from(raw) {
        Ok(FieldStatus::Present) => "PRESENT",
        Ok(FieldStatus::NullValue) => "NULL_VALUE",
        Ok(FieldStatus::NotFound) => "NOT_FOUND",
        Ok(FieldStatus::OutsideTtl) => "OUTSIDE_TTL",
        Ok(FieldStatus::Invalid) | Err(_) => "INVALID",
    }
}

/// The row-oriented JSON scripts read (the wire format is columnar).
fn to_json(response: &GetFeaturesResponse) -> serde_json::Value {
    let names = response
        .metadata
        .as_ref()
        .map(|m| m.feature_names.as_slice())
        .unwrap_or_default();
    let entity_columns = names
        .iter()
        .take_while(|n| !n.contains(':') && !n.contains("__"))
        .count();
    let rows = response
        .results
        .first()
        .map(|r| r.values.len())
        .unwrap_or(0);
    let rows: Vec<_> = (0..rows)
        .map(|row| {
            let mut entity = Map::new();
            let mut features = Map::new();
            for (column, (name, vector)) in names.iter().zip(&response.results).enumerate() {
                let value = vector.values.get(row).map(value_json).unwrap_or_default();
                if column < entity_columns {
                    entity.insert(name.clone(), value);
                    continue;
                }
                let status = vector.statuses.get(row).copied().unwrap_or(0);
                let at = vector
                    .event_timestamps
                    .get(row)
                    .filter(|t| t.seconds != 0 || t.nanos != 0)
                    .map(|t| json!(timestamp(Some(t))))
                    .unwrap_or(serde_json::Value::Null);
                features.insert(
                    name.clone(),
                    json!({"value": value, "status": status_name(status), "event_time": at}),
                );
            }
            json!({"entity": entity, "features": features})
        })
        .collect();
    json!({ "rows": rows })
}

fn print_table(response: &GetFeaturesResponse) {
    let json = to_json(response);
    let Some(rows) = json["rows"].as_array() else {
        return;
    };
    for row in rows {
        println!("{}", row["entity"]);
        if let Some(features) = row["features"].as_object() {
            for (name, cell) in features {
                println!(
                    "  {:<36} {:<24} {:<12} {}",
                    name,
                    cell["value"].to_string(),
                    cell["status"].as_str().unwrap_or("?"),
                    cell["event_time"].as_str().unwrap_or("-")
                );
            }
        }
    }
}
