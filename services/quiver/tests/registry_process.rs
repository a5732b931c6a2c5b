//! The real `quiver` binary: `serve registry` as a process, the CLI against it, metrics and
//! health over HTTP, state surviving `kill -9`, and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use quiver_tests::{free_address, http_get, wait_for_serving, QuiverProcess};

const BIN: &str = env!("CARGO_BIN_EXE_quiver");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

struct Registry {
    process: QuiverProcess,
    grpc: SocketAddr,
    http: SocketAddr,
}

async fn start_registry(data_dir: &Path, log: PathBuf) -> Registry {
    let (grpc, http) = (free_address(), free_address());
    let process = QuiverProcess::spawn(
        Path::new(BIN),
        &["serve", "registry"],
        &[
            ("QUIVER__GRPC__LISTEN", grpc.to_string()),
            ("QUIVER__HTTP__LISTEN", http.to_string()),
            ("QUIVER__REGISTRY__DATA_DIR", data_dir.display().to_string()),
            ("QUIVER__GRPC__SHUTDOWN_GRACE", "2s".to_string()),
        ],
        log,
    )
    .unwrap();
    if let Err(e) = wait_for_serving(
        grpc,
        "quiver.registry.v1.RegistryService",
        Duration::from_secs(30),
    )
    .await
    {
        panic!("{e}\n--- registry output ---\n{}", process.output());
    }
    Registry {
        process,
        grpc,
        http,
    }
}

fn cli(registry: SocketAddr, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--registry", &registry.to_string()])
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn definitions_survive_kill_9_and_the_cli_reports_plans_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("registry");
    let mut registry = start_registry(&data, dir.path().join("first.log")).await;

    // A bad definition: non-zero exit, the field named, nothing applied.
    let bad = dir.path().join("bad.yaml");
    let example = std::fs::read_to_string(examples().join("fraud.yaml")).unwrap();
    std::fs::write(
        &bad,
        example.replace(
            "{name: amount_sum_24h, column: amount,",
            "{name: amount_sum_24h, column: amt,",
        ),
    )
    .unwrap();
    let out = cli(registry.grpc, &["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(r#"feature_views[0].features[3].column: "amt" is not a column of source "transactions" or a transform output"#),
        "{stderr}"
    );

    let out = cli(
        registry.grpc,
        &["apply", "-f", examples().to_str().unwrap(), "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Dry run: nothing was applied."));
    let out = cli(registry.grpc, &["list", "views"]);
    assert!(
        !out.status.success(),
        "an empty registry has no project to list"
    );

    let out = cli(
        registry.grpc,
        &["apply", "-f", examples().to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("7 to create, 0 to change, 0 to delete, 0 unchanged."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Applied: registry revision 0 -> 1."),
        "{stdout}"
    );

    // Metrics count the applies by method and code; health is up.
    let (status, metrics) = http_get(registry.http, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"quiver_rpc_requests_total{code="Ok",method="Apply",service="quiver.registry.v1.RegistryService"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"code="InvalidArgument",method="Apply""#),
        "{metrics}"
    );
    assert_eq!(http_get(registry.http, "/healthz").unwrap().0, 200);

    // kill -9, restart on the same directory: everything is still there.
    registry.process.kill();
    let registry = start_registry(&data, dir.path().join("second.log")).await;
    let out = cli(
        registry.grpc,
        &["describe", "view", "user_txn", "--output", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let described = text(&out.stdout);
    assert!(
        described.contains(r#""version": 1"#) && described.contains(r#""revision": 1"#),
        "{described}"
    );
    assert!(described.contains(r#""ttl": "7d""#), "{described}");
    let out = cli(
        registry.grpc,
        &["apply", "-f", examples().to_str().unwrap()],
    );
    assert!(
        text(&out.stdout).contains("No changes: the registry already matches (revision 1)."),
        "{}",
        text(&out.stdout)
    );
    let out = cli(registry.grpc, &["lineage", "user_txn:amount_sum_24h"]);
    let lineage = text(&out.stdout);
    assert!(
        lineage.contains("service fraud_model_v1 (v1)")
            && lineage.contains("source transactions (v1)"),
        "{lineage}"
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry =
        start_registry(&dir.path().join("registry"), dir.path().join("run.log")).await;
    let status = registry.process.terminate(Duration::from_secs(15)).unwrap();
    assert!(
        status.success(),
        "exit {status:?}\n{}",
        registry.process.output()
    );
    let output = registry.process.output();
    assert!(
        output.contains("shutdown signal received") && output.contains("grpc server stopped"),
        "{output}"
    );
}

#[tokio::test]
async fn a_config_typo_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quiver.toml");
    std::fs::write(
        &config,
        "[grpc]\nlisten = \"127.0.0.1:0\"\nconcurency_limit = 5\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "registry", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("concurency_limit"),
        "{}",
        text(&out.stderr)
    );
}

/// One JSON object per line on stdout, parsed.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

/// `quiver watch --output json` as a child process, its lines delivered through a channel.
struct Watcher {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watcher {
    fn start(registry: SocketAddr) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "watch",
                "--output",
                "json",
                "--registry",
                &registry.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next event, which must be one JSON object on one line.
    fn next(&self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a watch event within 30 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn apply_and_watch_print_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let registry = start_registry(&dir.path().join("registry"), dir.path().join("run.log")).await;
    let examples = examples();
    let examples = examples.to_str().unwrap();

    // A dry run: the plan, nothing applied.
    let out = cli(
        registry.grpc,
        &["apply", "-f", examples, "--dry-run", "--output", "json"],
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "one object: {lines:?}");
    let plan = &lines[0];
    assert_eq!(plan["project"], "fraud");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["applied"], false);
    assert_eq!(
        (plan["base_revision"].as_u64(), plan["revision"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        plan["counts"],
        serde_json::json!({"create": 7, "change": 0, "delete": 0, "unchanged": 0})
    );
    let items = plan["plan"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    assert!(
        items.contains(&serde_json::json!({
            "action": "create", "kind": "view", "name": "user_txn",
            "from_version": 0, "to_version": 1, "changes": []
        })),
        "{plan}"
    );

    // Applied.
    let applied = &json_lines(&cli(
        registry.grpc,
        &["apply", "-f", examples, "--output", "json"],
    ))[0];
    assert_eq!(applied["applied"], true);
    assert_eq!(applied["dry_run"], false);
    assert_eq!(
        (
            applied["base_revision"].as_u64(),
            applied["revision"].as_u64()
        ),
        (Some(0), Some(1))
    );

    // watch: the snapshot first, one object per event.
    let watch = Watcher::start(registry.grpc);
    let snapshot = watch.next();
    assert_eq!(snapshot["revision"], 1);
    assert_eq!(snapshot["snapshot"], true);
    let objects = snapshot["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 7, "{snapshot}");
    assert!(
        objects.contains(&serde_json::json!({
            "project": "fraud", "kind": "service", "name": "fraud_model_v1",
            "version": 1, "revision": 1, "deleted": false
        })),
        "{snapshot}"
    );

    // A changed window: one change in the plan, one event on the watch.
    let changed = dir.path().join("changed.yaml");
    let example = std::fs::read_to_string(Path::new(examples).join("fraud.yaml")).unwrap();
    std::fs::write(
        &changed,
        example.replace(
            "{name: amount_sum_24h, column: amount, aggregation: sum, window: 24h}",
            "{name: amount_sum_24h, column: amount, aggregation: sum, window: 48h}",
        ),
    )
    .unwrap();
    let applied = &json_lines(&cli(
        registry.grpc,
        &["apply", "-f", changed.to_str().unwrap(), "--output", "json"],
    ))[0];
    assert_eq!(applied["revision"], 2);
    assert_eq!(
        applied["counts"],
        serde_json::json!({"create": 0, "change": 1, "delete": 0, "unchanged": 6})
    );
    let view = applied["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "user_txn")
        .unwrap();
    assert_eq!(
        view,
        &serde_json::json!({
            "action": "change", "kind": "view", "name": "user_txn",
            "from_version": 1, "to_version": 2,
            "changes": ["features[amount_sum_24h].window: 1d -> 2d"]
        })
    );
    let change = watch.next();
    assert_eq!(
        change,
        serde_json::json!({
            "revision": 2, "snapshot": false,
            "objects": [{"project": "fraud", "kind": "view", "name": "user_txn",
                         "version": 2, "revision": 2, "deleted": false}]
        })
    );

    // Nothing to do: not applied, the revision stays.
    let same = &json_lines(&cli(
        registry.grpc,
        &["apply", "-f", changed.to_str().unwrap(), "--output", "json"],
    ))[0];
    assert_eq!(same["applied"], false);
    assert_eq!(
        (same["base_revision"].as_u64(), same["revision"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(same["counts"]["unchanged"], 7);
}
