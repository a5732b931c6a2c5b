//! The entities of a request as each planned view keys them.

use quiver_common::registry_cache::Catalog;
use quiver_proto::convert::{value_type, value_type_name};
use quiver_proto::serving::GetFeaturesRequest;
use quiver_proto::types::Value;

use crate::error::OnlineStoreError;
use crate::keys::{self};
use crate::node::GROUP;

use super::cells::ViewRows;
use super::plan::ReadPlan;
use super::{invalid, Serving};

impl Serving {
    /// Encodes every row's entity key for every view, checking join keys and their types.
    pub(super) fn entity_keys(
        &self,
        catalog: &Catalog,
        request: &GetFeaturesRequest,
        plan: &ReadPlan,
    ) -> Result<(usize, Vec<ViewRows>), OnlineStoreError> {
        let columns = &request.entities;
        if columns.is_empty() {
            return Err(invalid(
                "entities: at least one join key column is required".into(),
            ));
        }
        let rows = columns[0]
            .values
            .as_ref()
            .map(|v| v.values.len())
            .unwrap_or(0);
        for (i, column) in columns.iter().enumerate() {
            let len = column.values.as_ref().map(|v| v.values.len()).unwrap_or(0);
            if len != rows {
                return Err(invalid(format!(
                    "entities[{i}] ({:?}): {len} values, but entities[0] has {rows}; every join key column needs one value per row",
                    column.name
                )));
            }
        }
        if rows == 0 {
            return Err(invalid("entities: no entity rows given".into()));
        }
        let limit = self.node.config.max_entities_per_request;
        if rows > limit {
            return Err(invalid(format!(
                "entities: {rows} rows is over the limit of {limit} per request"
            )));
        }
        let mut used = vec![false; columns.len()];
        let mut reads = Vec::with_capacity(plan.groups.len());
        for group in &plan.groups {
            let entity = catalog
                .entity(&plan.project, &group.view.entity)
                .ok_or_else(|| {
                    OnlineStoreError::Unavailable(format!(
                        "entity {:?} is not loaded yet",
                        group.view.entity
                    ))
                })?;
            let mut key_columns = Vec::with_capacity(entity.join_keys.len());
            for join_key in &entity.join_keys {
                let index = columns
                    .iter()
                    .position(|c| c.name == join_key.name)
                    .ok_or_else(|| {
                        invalid(format!(
                            "entities: missing join key {:?} (entity {:?} of view {:?})",
                            join_key.name, entity.name, group.view.name
                        ))
                    })?;
                used[index] = true;
                let values = columns[index]
                    .values
                    .as_ref()
                    .map(|v| v.values.as_slice())
                    .unwrap_or_default();
                for (row, value) in values.iter().enumerate() {
                    if value_type(value) != Some(join_key.value_type) {
                        return Err(invalid(format!(
                            "entities[{index}] ({:?}) row {row}: expected {}, got {}",
                            join_key.name,
                            join_key.value_type,
                            value_type_name(value)
                        )));
                    }
                }
                key_columns.push(values);
            }
            let entities = (0..rows)
                .map(|row| {
                    let values: Vec<Value> = key_columns.iter().map(|c| c[row].clone()).collect();
                    keys::encode_entity(&values)
                        .map_err(|e| invalid(format!("entities row {row}: {e}")))
                })
                .collect::<Result<Vec<_>, OnlineStoreError>>()?;
            let keys = entities
                .iter()
                .map(|entity| {
                    keys::row_key(
                        GROUP,
                        &plan.project,
                        &group.view.name,
                        group.version,
                        entity,
                    )
                })
                .collect();
            reads.push(ViewRows {
                entities,
                keys,
                ..ViewRows::default()
            });
        }
        if let Some(unused) = used.iter().position(|u| !*u) {
            let name = &columns[unused].name;
            return Err(invalid(
                match columns[..unused].iter().position(|c| &c.name == name) {
                    Some(first) => format!(
                        "entities[{unused}]: {name:?} is given twice (first as entities[{first}])"
                    ),
                    None => format!(
                        "entities[{unused}]: {name:?} is not a join key of any requested view"
                    ),
                },
            ));
        }
        Ok((rows, reads))
    }
}
