//! `Entity` <-> `quiver.registry.v1.Entity`.

use quiver_core::{Entity, JoinKey};

use super::value_type::value_type_from_pb;
use super::ConversionError;
use crate::{registry, types};

impl From<&Entity> for registry::Entity {
    fn from(e: &Entity) -> Self {
        Self {
            name: e.name.clone(),
            join_keys: e
                .join_keys
                .iter()
                .map(|k| registry::JoinKey {
                    name: k.name.clone(),
                    r#type: types::ValueType::from(k.value_type) as i32,
                })
                .collect(),
            description: e.description.clone(),
        }
    }
}

impl TryFrom<&registry::Entity> for Entity {
    type Error = ConversionError;

    fn try_from(e: &registry::Entity) -> Result<Self, Self::Error> {
        let join_keys = e
            .join_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Ok(JoinKey {
                    name: k.name.clone(),
                    value_type: value_type_from_pb(k.r#type, &format!("join_keys[{i}].type"))?,
                })
            })
            .collect::<Result<_, ConversionError>>()?;
        Ok(Self {
            name: e.name.clone(),
            join_keys,
            description: e.description.clone(),
        })
    }
}
