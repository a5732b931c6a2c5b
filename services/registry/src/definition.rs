//! One registry object of any kind, and the kinds themselves.

use std::fmt;

use quiver_core::{Entity, FeatureService, FeatureView, Source};
use quiver_proto::convert::ConversionError;
use quiver_proto::registry::{self, registry_object::Spec};

use crate::spec::{EntitySpec, FeatureServiceSpec, FeatureViewSpec, SourceSpec};

/// The kinds of registry object, in dependency order (an object only depends on earlier kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An entity.
    Entity,
    /// A source.
    Source,
    /// A feature view.
    FeatureView,
    /// A feature service.
    FeatureService,
}

impl Kind {
    /// Every kind, in dependency order.
    pub const ALL: [Kind; 4] = [
        Self::Entity,
        Self::Source,
        Self::FeatureView,
        Self::FeatureService,
    ];

    /// The short name used by the CLI and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Entity => "entity",
            Self::Source => "source",
            Self::FeatureView => "view",
            Self::FeatureService => "service",
        }
    }

    /// The plural, for messages.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Entity => "entities",
            Self::Source => "sources",
            Self::FeatureView => "views",
            Self::FeatureService => "services",
        }
    }

    /// A one-byte tag for storage keys (never change these).
    pub fn tag(self) -> u8 {
        match self {
            Self::Entity => 1,
            Self::Source => 2,
            Self::FeatureView => 3,
            Self::FeatureService => 4,
        }
    }

    /// The kind from its wire enum value.
    pub fn from_pb(raw: i32) -> Option<Self> {
        match registry::ObjectKind::try_from(raw).ok()? {
            registry::ObjectKind::Entity => Some(Self::Entity),
            registry::ObjectKind::Source => Some(Self::Source),
            registry::ObjectKind::FeatureView => Some(Self::FeatureView),
            registry::ObjectKind::FeatureService => Some(Self::FeatureService),
            registry::ObjectKind::Unspecified => None,
        }
    }

    /// The wire enum.
    pub fn to_pb(self) -> registry::ObjectKind {
        match self {
            Self::Entity => registry::ObjectKind::Entity,
            Self::Source => registry::ObjectKind::Source,
            Self::FeatureView => registry::ObjectKind::FeatureView,
            Self::FeatureService => registry::ObjectKind::FeatureService,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated definition of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    /// An entity.
    Entity(Entity),
    /// A source.
    Source(Source),
    /// A feature view.
    FeatureView(FeatureView),
    /// A feature service.
    FeatureService(FeatureService),
}

impl Definition {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Entity(_) => Kind::Entity,
            Self::Source(_) => Kind::Source,
            Self::FeatureView(_) => Kind::FeatureView,
            Self::FeatureService(_) => Kind::FeatureService,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Self::Entity(e) => &e.name,
            Self::Source(s) => &s.name,
            Self::FeatureView(v) => &v.name,
            Self::FeatureService(s) => &s.name,
        }
    }

    /// The objects whose versions this one is built against; a new version of any of them
    /// makes a new version of this one. Feature services name features, resolved at read
    /// time (or pinned explicitly), so they have none.
    pub fn dependencies(&self) -> Vec<(Kind, &str)> {
        match self {
            Self::Entity(_) | Self::FeatureService(_) => vec![],
            Self::Source(s) => vec![(Kind::Entity, &s.entity)],
            Self::FeatureView(v) => vec![(Kind::Entity, &v.entity), (Kind::Source, &v.source)],
        }
    }

    /// The wire form of the definition.
    pub fn to_pb(&self) -> Spec {
        match self {
            Self::Entity(e) => Spec::Entity(e.into()),
            Self::Source(s) => Spec::Source(s.into()),
            Self::FeatureView(v) => Spec::FeatureView(v.into()),
            Self::FeatureService(s) => Spec::FeatureService(s.into()),
        }
    }

    /// The definition from its wire form.
    pub fn from_pb(spec: &Spec) -> Result<Self, ConversionError> {
        Ok(match spec {
            Spec::Entity(e) => Self::Entity(e.try_into()?),
            Spec::Source(s) => Self::Source(s.try_into()?),
            Spec::FeatureView(v) => Self::FeatureView(v.try_into()?),
            Spec::FeatureService(s) => Self::FeatureService(s.into()),
        })
    }

    /// The definition as YAML, in the authoring format.
    pub fn to_yaml_value(&self) -> serde_yaml::Value {
        let value = match self {
            Self::Entity(e) => serde_yaml::to_value(EntitySpec::from(e)),
            Self::Source(s) => serde_yaml::to_value(SourceSpec::from(s)),
            Self::FeatureView(v) => serde_yaml::to_value(FeatureViewSpec::from(v)),
            Self::FeatureService(s) => serde_yaml::to_value(FeatureServiceSpec::from(s)),
        };
        // Plain structs of strings, numbers and lists always serialize.
        value.unwrap_or(serde_yaml::Value::Null)
    }
}
