//! `KafkaSource` <-> `quiver.registry.v1.KafkaSource`.

use quiver_core::{KafkaFormat, KafkaSource, KafkaStart};

use super::ConversionError;
use crate::registry;

impl From<&KafkaSource> for registry::KafkaSource {
    fn from(k: &KafkaSource) -> Self {
        Self {
            bootstrap_servers: k.bootstrap_servers.clone(),
            topic: k.topic.clone(),
            format: match k.format {
                KafkaFormat::Json => registry::KafkaFormat::Json,
            } as i32,
            start: match k.start {
                KafkaStart::Earliest => registry::KafkaStart::Earliest,
                KafkaStart::Latest => registry::KafkaStart::Latest,
            } as i32,
            consumer_group: k.consumer_group.clone(),
            properties: k
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl TryFrom<&registry::KafkaSource> for KafkaSource {
    type Error = ConversionError;

    fn try_from(k: &registry::KafkaSource) -> Result<Self, Self::Error> {
        let format = match registry::KafkaFormat::try_from(k.format) {
            Ok(registry::KafkaFormat::Json) => KafkaFormat::Json,
            _ => {
                return Err(ConversionError::new(
                    "format",
                    format!("unknown Kafka format {}", k.format),
                ))
            }
        };
        let start = match registry::KafkaStart::try_from(k.start) {
            Ok(registry::KafkaStart::Earliest) => KafkaStart::Earliest,
            Ok(registry::KafkaStart::Latest) => KafkaStart::Latest,
            _ => {
                return Err(ConversionError::new(
                    "start",
                    format!("unknown Kafka start {}", k.start),
                ))
            }
        };
        Ok(Self {
            bootstrap_servers: k.bootstrap_servers.clone(),
            topic: k.topic.clone(),
            format,
            start,
            consumer_group: k.consumer_group.clone(),
            properties: k
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}
