//! `Source` <-> `quiver.registry.v1.Source`.

use quiver_core::{Column, Source};

use super::value_type::value_type_from_pb;
use super::{duration_from_pb, duration_to_pb, ConversionError};
use crate::{registry, types};

impl From<&Source> for registry::Source {
    fn from(s: &Source) -> Self {
        Self {
            name: s.name.clone(),
            entity: s.entity.clone(),
            timestamp_field: s.timestamp_field.clone(),
            allowed_lateness: Some(duration_to_pb(s.allowed_lateness)),
            schema: s
                .schema
                .iter()
                .map(|c| registry::Column {
                    name: c.name.clone(),
                    r#type: types::ValueType::from(c.value_type) as i32,
                })
                .collect(),
            description: s.description.clone(),
            kafka: s.kafka.as_ref().map(registry::KafkaSource::from),
            log_retention: s.log_retention.map(duration_to_pb),
        }
    }
}

impl TryFrom<&registry::Source> for Source {
    type Error = ConversionError;

    fn try_from(s: &registry::Source) -> Result<Self, Self::Error> {
        let schema = s
            .schema
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(Column {
                    name: c.name.clone(),
                    value_type: value_type_from_pb(c.r#type, &format!("schema[{i}].type"))?,
                })
            })
            .collect::<Result<_, ConversionError>>()?;
        let allowed_lateness = match &s.allowed_lateness {
            Some(d) => duration_from_pb(d, "allowed_lateness")?,
            None => Default::default(),
        };
        let kafka = s
            .kafka
            .as_ref()
            .map(quiver_core::KafkaSource::try_from)
            .transpose()
            .map_err(|e| e.within("kafka"))?;
        let log_retention = s
            .log_retention
            .as_ref()
            .map(|d| duration_from_pb(d, "log_retention"))
            .transpose()?;
        Ok(Self {
            kafka,
            log_retention,
            name: s.name.clone(),
            entity: s.entity.clone(),
            timestamp_field: s.timestamp_field.clone(),
            allowed_lateness,
            schema,
            description: s.description.clone(),
        })
    }
}
