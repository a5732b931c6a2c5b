//! Every validation error class names the document, the field path and the reason.

use super::*;

const VALID: &str = r#"
project: fraud
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: transactions
    entity: user
    timestamp_field: ts
    allowed_lateness: 1h
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
      - {name: merchant, type: string}
      - {name: note, type: string}
feature_views:
  - name: user_txn
    entity: user
    source: transactions
    ttl: 7d
    transforms:
      - {name: note_tokens, op: token_count, input: note}
      - {name: amount_z, op: zscore, input: amount, window: 1d, exclude_above: 4.0}
    features:
      - {name: last_amount, column: amount, aggregation: last}
      - {name: txn_count_1h, aggregation: count, window: 1h}
      - {name: amount_sum_24h, column: amount, aggregation: sum, window: 24h}
      - {name: amount_mean_7d, column: amount, aggregation: mean, window: 7d}
      - {name: amount_max_1h, column: amount, aggregation: max, window: 1h, kind: tumbling}
feature_services:
  - name: fraud_model_v1
    features: [user_txn:txn_count_1h, user_txn:amount_sum_24h, user_txn:last_amount]
"#;

fn docs(yaml: &str) -> Vec<Document> {
    vec![Document {
        name: "defs.yaml".into(),
        yaml: yaml.into(),
    }]
}

/// Validates `VALID` with `from` replaced by `to` and returns the errors as text.
fn errors_after(from: &str, to: &str) -> Vec<String> {
    assert!(VALID.contains(from), "the fixture has no {from:?}");
    match validate(&docs(&VALID.replacen(from, to, 1))) {
        Ok(_) => panic!("replacing {from:?} with {to:?} should be invalid"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn assert_error(errors: &[String], expected: &str) {
    assert!(
        errors.iter().any(|e| e == expected),
        "expected {expected:?} among:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_reference_example_is_valid() {
    let valid = validate(&docs(VALID)).unwrap();
    assert_eq!(valid.project, "fraud");
    let kinds: Vec<_> = valid
        .definitions
        .iter()
        .map(|d| d.definition.kind())
        .collect();
    use crate::definition::Kind::*;
    assert_eq!(kinds, [Entity, Source, FeatureView, FeatureService]);
    let view = valid.view("user_txn").unwrap();
    assert_eq!(view.ttl, Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(
        view.feature("amount_max_1h").unwrap().window,
        Window::Tumbling(Duration::from_secs(3_600))
    );
    assert_eq!(
        view.feature("amount_sum_24h").unwrap().window,
        Window::Sliding(Duration::from_secs(86_400))
    );
    assert_eq!(
        view.feature("last_amount").unwrap().window,
        Window::Lifetime
    );
}

#[test]
fn the_shipped_examples_are_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/fraud.yaml");
    let yaml = std::fs::read_to_string(path).unwrap();
    validate(&docs(&yaml)).unwrap();
}

#[test]
fn unknown_column_names_the_feature_path() {
    let errors = errors_after(
        "{name: amount_sum_24h, column: amount",
        "{name: amount_sum_24h, column: amt",
    );
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].features[2].column: "amt" is not a column of source "transactions" or a transform output"#,
    );
}

#[test]
fn unknown_references() {
    let errors = errors_after(
        "    entity: user\n    timestamp_field",
        "    entity: person\n    timestamp_field",
    );
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].entity: unknown entity "person""#,
    );
    let errors = errors_after("    source: transactions", "    source: clicks");
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].source: unknown source "clicks""#,
    );
    let errors = errors_after("user_txn:txn_count_1h,", "user_tx:txn_count_1h,");
    assert_error(
        &errors,
        r#"defs.yaml: feature_services[0].features[0]: unknown feature view "user_tx""#,
    );
}

#[test]
fn a_feature_service_naming_a_missing_feature() {
    let errors = errors_after("user_txn:last_amount]", "user_txn:last_amt]");
    assert_error(
        &errors,
        r#"defs.yaml: feature_services[0].features[2]: feature view "user_txn" has no feature "last_amt""#,
    );
    let errors = errors_after("user_txn:last_amount]", "last_amount]");
    assert_error(
        &errors,
        r#"defs.yaml: feature_services[0].features[2]: invalid feature reference "last_amount"; expected view:feature or view@N:feature"#,
    );
}

#[test]
fn duplicate_names() {
    let errors = errors_after(
        "sources:",
        "  - name: user\n    join_keys: [{name: user_id, type: int64}]\nsources:",
    );
    assert_error(
        &errors,
        r#"defs.yaml: entities[1].name: duplicate entity "user" (first declared at defs.yaml: entities[0])"#,
    );
    let errors = errors_after("{name: txn_count_1h,", "{name: last_amount,");
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].features[1].name: duplicate feature "last_amount""#,
    );
    let errors = errors_after(
        "{name: merchant, type: string}",
        "{name: amount, type: string}",
    );
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].schema[3].name: duplicate column "amount""#,
    );
}

#[test]
fn duplicates_across_documents_name_both_places() {
    let mut documents = docs(VALID);
    documents.push(Document {
        name: "more.yaml".into(),
        yaml:
            "project: fraud\nentities:\n  - name: user\n    join_keys: [{name: id, type: string}]\n"
                .into(),
    });
    let errors: Vec<String> = validate(&documents)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_error(
        &errors,
        r#"more.yaml: entities[0].name: duplicate entity "user" (first declared at defs.yaml: entities[0])"#,
    );
}

#[test]
fn brackets_nested_past_the_limit_are_refused_before_parsing() {
    let deep = format!("project: p\nentities: {}", "[".repeat(100_000));
    let errors: Vec<String> = match validate(&docs(&deep)) {
        Ok(_) => panic!("accepted"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(
        errors,
        ["defs.yaml: (yaml): brackets nest more than 64 deep at line 2 column 75; definitions never need that"]
    );
    // (The scan's message, not the parser's `recursion limit exceeded`, which came after a
    // walk quadratic in the depth: 15 s for this input.)
    // 64 deep is still the parser's to judge.
    let errors_at_limit =
        match validate(&docs(&format!("project: p\nentities: {}", "[".repeat(64)))) {
            Ok(_) => panic!("accepted"),
            Err(errors) => errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        };
    assert!(
        !errors_at_limit[0].contains("brackets nest"),
        "{errors_at_limit:?}"
    );
}

#[test]
fn bad_durations() {
    let expected = "expected a whole number and a unit, like 90s, 15m, 1h, 7d or 2w";
    let errors = errors_after("ttl: 7d", "ttl: 7days");
    assert_error(
        &errors,
        &format!(r#"defs.yaml: feature_views[0].ttl: invalid duration "7days"; {expected}"#),
    );
    let errors = errors_after(
        "allowed_lateness: 1h",
        "allowed_lateness: 1h\n    log_retention: 6h",
    );
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].log_retention: "6h" is shorter than a day (the source log is kept by date)"#,
    );
    let errors = errors_after("ttl: 7d", "ttl: 9999999999999d");
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].ttl: duration "9999999999999d" is longer than 100 years (36500d)"#,
    );
    let errors = errors_after("allowed_lateness: 1h", "allowed_lateness: 1.5h");
    assert_error(
        &errors,
        &format!(r#"defs.yaml: sources[0].allowed_lateness: invalid duration "1.5h"; {expected}"#),
    );
    let errors = errors_after(
        "aggregation: count, window: 1h",
        "aggregation: count, window: 0s",
    );
    assert_error(
        &errors,
        "defs.yaml: feature_views[0].features[1].window: must be longer than zero",
    );
    let errors = errors_after(
        "window: 1d, exclude_above",
        "window: forever, exclude_above",
    );
    assert_error(
        &errors,
        &format!(
            r#"defs.yaml: feature_views[0].transforms[1].window: invalid duration "forever"; {expected}"#
        ),
    );
}

#[test]
fn unknown_types_ops_aggregations_and_kinds() {
    let errors = errors_after(
        "{name: amount, type: float64}",
        "{name: amount, type: decimal}",
    );
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].schema[2].type: unknown type "decimal"; expected one of int64, float64, float32, bool, string, bytes, timestamp, float32_list"#,
    );
    let errors = errors_after("op: token_count", "op: tokenize");
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].transforms[0].op: unknown transform op "tokenize"; expected one of token_count, ngram_hash, standardize, zscore"#,
    );
    let errors = errors_after("aggregation: mean", "aggregation: median");
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].features[3].aggregation: unknown aggregation "median"; expected one of count, sum, mean, min, max, stddev, last, first, distinct_count"#,
    );
    let errors = errors_after("kind: tumbling", "kind: hopping");
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].features[4].kind: unknown window kind "hopping"; expected sliding or tumbling (omit window for lifetime)"#,
    );
    let errors = errors_after(
        "aggregation: max, window: 1h, kind: tumbling",
        "aggregation: max, kind: tumbling",
    );
    assert_error(
        &errors,
        "defs.yaml: feature_views[0].features[4].kind: a tumbling window needs a window length",
    );
}

#[test]
fn numeric_aggregations_need_numeric_columns() {
    let errors = errors_after(
        "column: amount, aggregation: sum",
        "column: merchant, aggregation: sum",
    );
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].features[2].column: sum needs a numeric column; "merchant" is string"#,
    );
    let errors = errors_after("op: zscore, input: amount", "op: zscore, input: merchant");
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].transforms[1].input: zscore needs a numeric column; "merchant" is string"#,
    );
    let errors = errors_after(
        "op: token_count, input: note",
        "op: token_count, input: amount",
    );
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].transforms[0].input: token_count needs a string column; "amount" is float64"#,
    );
}

#[test]
fn join_keys_must_be_in_the_source_schema() {
    let errors = errors_after(
        "      - {name: user_id, type: int64}\n      - {name: ts",
        "      - {name: ts",
    );
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].schema: join key "user_id" of entity "user" is missing from the schema"#,
    );
    let errors = errors_after(
        "      - {name: user_id, type: int64}\n      - {name: ts",
        "      - {name: user_id, type: string}\n      - {name: ts",
    );
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].schema: join key "user_id" is string in the schema but int64 in entity "user""#,
    );
    let errors = errors_after(
        "join_keys: [{name: user_id, type: int64}]",
        "join_keys: [{name: user_id, type: float64}]",
    );
    assert_error(
        &errors,
        "defs.yaml: entities[0].join_keys[0].type: float64 cannot be a join key type; use int64, string or bytes",
    );
}

#[test]
fn timestamp_field_must_be_a_timestamp_column() {
    let errors = errors_after("timestamp_field: ts", "timestamp_field: when");
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].timestamp_field: "when" is not a column of the schema"#,
    );
    let errors = errors_after("timestamp_field: ts", "timestamp_field: amount");
    assert_error(
        &errors,
        r#"defs.yaml: sources[0].timestamp_field: column "amount" is float64, not timestamp"#,
    );
}

#[test]
fn transform_parameters_are_checked_per_op() {
    let errors = errors_after(
        "{name: note_tokens, op: token_count, input: note}",
        "{name: note_tokens, op: token_count, input: note, buckets: 8}",
    );
    assert_error(
        &errors,
        "defs.yaml: feature_views[0].transforms[0].buckets: token_count does not take buckets",
    );
    let errors = errors_after(
        "{name: note_tokens, op: token_count, input: note}",
        "{name: h, op: ngram_hash, input: note, n: 3}",
    );
    assert_error(&errors, "defs.yaml: feature_views[0].transforms[0].buckets: ngram_hash needs buckets (the output length)");
    let errors = errors_after("exclude_above: 4.0", "exclude_above: -1.0");
    assert_error(
        &errors,
        "defs.yaml: feature_views[0].transforms[1].exclude_above: -1 must be a positive number",
    );
    let errors = errors_after(
        "{name: note_tokens, op: token_count, input: note}",
        "{name: note, op: token_count, input: note}",
    );
    assert_error(
        &errors,
        r#"defs.yaml: feature_views[0].transforms[0].name: "note" is already a column of source "transactions" or an earlier transform"#,
    );
}

#[test]
fn transform_outputs_are_columns_for_later_steps() {
    let valid = VALID.replacen(
        "{name: last_amount, column: amount, aggregation: last}",
        "{name: last_amount, column: amount, aggregation: last}\n      - {name: tokens_sum, column: note_tokens, aggregation: sum}",
        1,
    );
    let view = validate(&docs(&valid))
        .unwrap()
        .view("user_txn")
        .cloned()
        .unwrap();
    assert_eq!(
        view.feature("tokens_sum").unwrap().value_type,
        ValueType::Int64
    );
}

#[test]
fn structural_errors_name_their_path() {
    let errors = errors_after("ttl: 7d", "ttl: 7d\n    owner: me");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("defs.yaml: feature_views[0].owner: unknown field `owner`")),
        "{errors:?}"
    );
    let errors = errors_after("    entity: user\n    source", "    source");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("defs.yaml: feature_views[0]: missing field `entity`")),
        "{errors:?}"
    );
    let errors = errors_after("project: fraud", "project: [fraud");
    assert!(errors[0].starts_with("defs.yaml: (yaml): "), "{errors:?}");
}

#[test]
fn one_project_per_apply() {
    let mut documents = docs(VALID);
    documents.push(Document {
        name: "other.yaml".into(),
        yaml: "project: ads\n".into(),
    });
    let errors: Vec<String> = validate(&documents)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_error(
        &errors,
        r#"other.yaml: project: "ads" differs from project "fraud" of defs.yaml; apply one project at a time"#,
    );
}

#[test]
fn multi_document_files_are_named_by_position() {
    let (first, rest) = VALID.split_once("feature_views:").unwrap();
    let yaml = format!("{first}---\nproject: fraud\nfeature_views:{rest}");
    let valid = validate(&docs(&yaml)).unwrap();
    assert_eq!(valid.definitions.len(), 4);
    let located = valid
        .definitions
        .iter()
        .find(|d| d.definition.name() == "user_txn")
        .unwrap();
    assert_eq!(located.document, "defs.yaml#2");
}

#[test]
fn a_broken_transform_is_reported_once_not_by_every_reader() {
    let yaml = VALID
        .replacen("op: token_count, input: note", "op: token_count, input: nope", 1)
        .replacen(
            "{name: last_amount, column: amount, aggregation: last}",
            "{name: last_amount, column: amount, aggregation: last}\n      - {name: t, column: note_tokens, aggregation: sum}",
            1,
        );
    let errors: Vec<String> = validate(&docs(&yaml))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            r#"defs.yaml: feature_views[0].transforms[0].input: "nope" is not a column of source "transactions" or an earlier transform"#
        ]
    );
}

#[test]
fn an_empty_schema_is_one_error() {
    let start = VALID.find("    schema:\n").unwrap();
    let end = VALID.find("feature_views:").unwrap();
    let yaml = format!("{}    schema: []\n{}", &VALID[..start], &VALID[end..]);
    let errors: Vec<String> = validate(&docs(&yaml))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        ["defs.yaml: sources[0].schema: a source needs at least one column"]
    );
}

/// Definitions arrive from any client: mutated documents (the example definitions, and the
/// Kafka-sourced ones here) must validate or be refused with errors, never panic.
#[test]
fn fuzz_mutated_definitions_are_validated_or_refused() {
    use quiver_core::mutation::{self, mutate, Rng};
    let valid = [
        VALID.to_string(),
        include_str!("../../../examples/fraud.yaml").to_string(),
    ];
    assert!(valid.iter().all(|yaml| validate(&[Document {
        name: "valid.yaml".into(),
        yaml: yaml.clone(),
    }])
    .is_ok()));
    let mut rng = Rng::from_env(0x5EED_DEF1_0000_0001);
    let mut refused = 0;
    for _ in 0..mutation::cases(3_000) {
        let seed = rng.pick(&valid).clone().into_bytes();
        let bytes = mutate(&mut rng, seed);
        let document = Document {
            name: "mutated.yaml".into(),
            yaml: String::from_utf8_lossy(&bytes).into_owned(),
        };
        if let Err(errors) = validate(&[document]) {
            assert!(errors.iter().all(|e| !e.to_string().is_empty()));
            refused += 1;
        }
    }
    assert!(refused > 0);
}
