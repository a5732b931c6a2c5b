//! References to features: `view:feature` or `view@N:feature`.

use std::fmt;
use std::str::FromStr;

use crate::names::is_valid_name;

/// A reference to one feature of a feature view, optionally pinned to a view version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureRef {
    /// The feature view name.
    pub view: String,
    /// The pinned view version; `None` follows the latest.
    pub version: Option<u32>,
    /// The feature name.
    pub feature: String,
}

/// A feature reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid feature reference {0:?}; expected view:feature or view@N:feature")]
pub struct InvalidFeatureRef(pub String);

impl FromStr for FeatureRef {
    type Err = InvalidFeatureRef;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidFeatureRef(text.to_string());
        let (view_part, feature) = text.split_once(':').ok_or_else(invalid)?;
        let (view, version) = match view_part.split_once('@') {
            None => (view_part, None),
            Some((view, v)) => {
                let digits = v.strip_prefix('v').unwrap_or(v);
                let n: u32 = digits.parse().map_err(|_| invalid())?;
                if n == 0 {
                    return Err(invalid());
                }
                (view, Some(n))
            }
        };
        if !is_valid_name(view) || !is_valid_name(feature) {
            return Err(invalid());
        }
        Ok(FeatureRef {
            view: view.to_string(),
            version,
            feature: feature.to_string(),
        })
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}:{}", self.view, self.feature),
            None => write!(f, "{}:{}", self.view, self.feature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_pinned() {
        let r: FeatureRef = "user_txn:last_amount".parse().unwrap();
        assert_eq!(
            (r.view.as_str(), r.version, r.feature.as_str()),
            ("user_txn", None, "last_amount")
        );
        let r: FeatureRef = "user_txn@2:last_amount".parse().unwrap();
        assert_eq!(r.version, Some(2));
        assert_eq!(r.to_string(), "user_txn@2:last_amount");
        let r: FeatureRef = "user_txn@v3:x".parse().unwrap();
        assert_eq!(r.version, Some(3));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "user_txn", ":x", "v:", "v@:x", "v@0:x", "v@a:x", "a:b:c", "a b:c",
        ] {
            assert!(bad.parse::<FeatureRef>().is_err(), "{bad:?}");
        }
    }
}
