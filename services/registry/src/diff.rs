//! Human-readable differences between two versions of a definition, for plans:
//! `features[amount_sum_24h].window: 1h -> 2h`.

use serde_yaml::Value;

/// Lists what differs between `old` and `new`, one line per changed leaf. Lists of named
/// items (features, transforms, columns) are matched by name, so inserting one item does not
/// report every later item as changed.
pub fn diff(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_at("", old, new, &mut out);
    out
}

fn diff_at(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            let keys = b.keys().chain(a.keys().filter(|k| !b.contains_key(*k)));
            for key in keys {
                let name = key.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                let missing = Value::Null;
                diff_at(
                    &child,
                    a.get(key).unwrap_or(&missing),
                    b.get(key).unwrap_or(&missing),
                    out,
                );
            }
        }
        (Value::Sequence(a), Value::Sequence(b)) if all_named(a) && all_named(b) => {
            for item in b {
                let name = item_name(item);
                let child = format!("{path}[{name}]");
                match a.iter().find(|x| item_name(x) == name) {
                    Some(before) => diff_at(&child, before, item, out),
                    None => out.push(format!("{child}: added")),
                }
            }
            for item in a
                .iter()
                .filter(|x| !b.iter().any(|y| item_name(y) == item_name(x)))
            {
                out.push(format!("{path}[{}]: removed", item_name(item)));
            }
            // Order matters: transforms run in order and services serve in order.
            let kept = |xs: &[Value], ys: &[Value]| -> Vec<String> {
                xs.iter()
                    .map(|x| item_name(x).to_string())
                    .filter(|n| ys.iter().any(|y| item_name(y) == n))
                    .collect()
            };
            if kept(a, b) != kept(b, a) {
                out.push(format!("{path}: order changed"));
            }
        }
        (Value::Sequence(a), Value::Sequence(b))
            if a.len() == b.len() && a != b && sorted(a) == sorted(b) =>
        {
            out.push(format!("{path}: order changed"));
        }
        _ if old != new => out.push(format!("{path}: {} -> {}", short(old), short(new))),
        _ => {}
    }
}

fn sorted(items: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = items.iter().map(short).collect();
    texts.sort();
    texts
}

fn all_named(items: &[Value]) -> bool {
    items
        .iter()
        .all(|v| v.get("name").and_then(Value::as_str).is_some())
}

fn item_name(item: &Value) -> &str {
    item.get("name").and_then(Value::as_str).unwrap_or("?")
}

fn short(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().replace('\n', " "))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn reports_leaf_changes_by_item_name() {
        let old = yaml("ttl: 1d\nfeatures:\n- {name: a, window: 1h}\n- {name: b}\n");
        let new = yaml("ttl: 2d\nfeatures:\n- {name: c}\n- {name: a, window: 2h}\n");
        assert_eq!(
            diff(&old, &new),
            vec![
                "ttl: 1d -> 2d",
                "features[c]: added",
                "features[a].window: 1h -> 2h",
                "features[b]: removed"
            ]
        );
    }

    #[test]
    fn reordering_is_a_change() {
        let old = yaml("features:\n- {name: a}\n- {name: b}\nrefs: [x, y]\n");
        let new = yaml("features:\n- {name: b}\n- {name: a}\nrefs: [y, x]\n");
        assert_eq!(
            diff(&old, &new),
            vec!["features: order changed", "refs: order changed"]
        );
    }

    #[test]
    fn identical_values_have_no_diff() {
        let v = yaml("a: [1, 2]\nb: {c: d}\n");
        assert!(diff(&v, &v).is_empty());
    }
}
