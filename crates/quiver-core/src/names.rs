//! The rule for names of entities, sources, views, features, columns and services.

/// Whether `name` is a valid object, feature or column name: an ASCII letter or `_`, then
/// letters, digits or `_`, at most 128 long. This keeps names free of the `:` and `@` that
/// feature references use, and safe in keys, file paths and metric labels.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && name.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn accepts_identifiers_only() {
        assert!(is_valid_name("user_txn"));
        assert!(is_valid_name("_x9"));
        for bad in ["", "9a", "a:b", "a@b", "a-b", "a b", "é"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
