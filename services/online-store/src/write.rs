//! `quiver.online.v1.OnlineStoreService/Write`: validate a batch of rows against the registry,
//! propose it as one Raft entry, answer once it is committed and applied.

use std::sync::Arc;

use prost::Message;
use quiver_proto::convert::{value_type, value_type_name};
use quiver_proto::online::online_store_service_server::OnlineStoreService;
use quiver_proto::online::{FeatureRow, WriteRequest, WriteResponse};
use tonic::{Request, Response, Status};

use crate::error::OnlineStoreError;
use crate::node::Node;
use crate::raft::Command;

/// The write service of one node.
#[derive(Clone)]
pub struct Writer {
    node: Arc<Node>,
}

impl Writer {
    /// Writes through `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Checks every row and pins each to a concrete project and view version, so apply needs
    /// no registry lookups (and stays deterministic).
    async fn validate(&self, request: &mut WriteRequest) -> Result<(), OnlineStoreError> {
        if request.rows.is_empty() {
            return Err(OnlineStoreError::InvalidArgument(
                "rows: a write needs at least one row".into(),
            ));
        }
        let limit = self.node.config.max_rows_per_write;
        if request.rows.len() > limit {
            return Err(OnlineStoreError::InvalidArgument(format!(
                "rows: {} rows is over the limit of {limit} per write",
                request.rows.len()
            )));
        }
        for (i, row) in request.rows.iter_mut().enumerate() {
            self.validate_row(row)
                .await
                .map_err(|e| OnlineStoreError::InvalidArgument(format!("rows[{i}].{e}")))?;
        }
        Ok(())
    }

    async fn validate_row(&self, row: &mut FeatureRow) -> Result<(), String> {
        let catalog = self.node.registry.catalog();
        row.project = catalog
            .project(&row.project)
            .map_err(|e| format!("project: {e}"))?;
        let view = if row.view_version == 0 {
            let latest = catalog
                .view(&row.project, &row.view)
                .ok_or_else(|| format!("view: unknown feature view {:?}", row.view))?;
            row.view_version = latest.version;
            latest.view.clone()
        } else {
            self.node
                .registry
                .fetch_view_version(&row.project, &row.view, row.view_version)
                .await
                .ok_or_else(|| {
                    format!(
                        "view_version: feature view {:?} has no version {}",
                        row.view, row.view_version
                    )
                })?
        };
        let entity = catalog.entity(&row.project, &view.entity).ok_or_else(|| {
            format!(
                "view: entity {:?} of view {:?} is unknown",
                view.entity, view.name
            )
        })?;
        let key = row.entity.as_ref().ok_or("entity: required")?;
        if key.values.len() != entity.join_keys.len() {
            return Err(format!(
                "entity: entity {:?} has {} join key(s), the row has {}",
                entity.name,
                entity.join_keys.len(),
                key.values.len()
            ));
        }
        for (j, (join_key, value)) in entity.join_keys.iter().zip(&key.values).enumerate() {
            if let Some(name) = key.join_keys.get(j) {
                if name != &join_key.name {
                    return Err(format!(
                        "entity.join_keys[{j}]: expected {:?}, got {name:?}",
                        join_key.name
                    ));
                }
            }
            if value_type(value) != Some(join_key.value_type) {
                return Err(format!(
                    "entity.values[{j}]: join key {:?} is {}, got {}",
                    join_key.name,
                    join_key.value_type,
                    value_type_name(value)
                ));
            }
        }
        if row.event_time.is_none() {
            return Err("event_time: required".into());
        }
        if row.values.len() != view.features.len() {
            return Err(format!(
                "values: view {:?} v{} has {} features, the row has {} values",
                view.name,
                row.view_version,
                view.features.len(),
                row.values.len()
            ));
        }
        for (j, (feature, value)) in view.features.iter().zip(&row.values).enumerate() {
            if let Some(t) = value_type(value) {
                if t != feature.value_type {
                    return Err(format!(
                        "values[{j}]: feature {:?} is {}, got {t}",
                        feature.name, feature.value_type
                    ));
                }
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl OnlineStoreService for Writer {
    async fn write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let mut request = request.into_inner();
        if !self.node.is_leader() {
            return Err(self.node.not_leader().into());
        }
        self.validate(&mut request).await?;
        let command = Command {
            write: request.encode_to_vec(),
        };
        let response = self
            .node
            .raft
            .client_write(command)
            .await
            .map_err(|e| self.node.write_error(e))?;
        Ok(Response::new(WriteResponse {
            applied: response.data.applied,
            stale: response.data.stale,
            duplicate: response.data.duplicate,
            log_index: response.log_id.index,
        }))
    }
}
