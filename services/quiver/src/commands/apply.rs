//! `quiver apply -f PATH [--dry-run]`: validate, print the plan, apply it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use quiver::addresses::Addresses;
use quiver_proto::registry::{
    ApplyRequest, ApplyResponse, DefinitionDocument, PlanAction, PlanItem,
};
use quiver_registry::definition::Kind;
use serde_json::json;

use crate::cli::{ApplyArgs, Output};

/// Runs `quiver apply`.
pub async fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    match plan_and_apply(&args.paths, args.dry_run, &args.addresses, args.output).await {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Plans, prints and (unless `dry_run`) applies the definitions under `paths`, for people.
pub async fn apply_paths(
    paths: &[PathBuf],
    dry_run: bool,
    addresses: &Addresses,
) -> anyhow::Result<ApplyResponse> {
    plan_and_apply(paths, dry_run, addresses, Output::Text).await
}

/// Plans, prints and (unless `dry_run`) applies the definitions under `paths`. The apply is
/// pinned to the revision the plan was made against, so a concurrent change makes it fail
/// rather than apply something other than what was shown. With JSON output, the plan and its
/// outcome are one object, printed once it is known (nothing on stdout when it fails).
async fn plan_and_apply(
    paths: &[PathBuf],
    dry_run: bool,
    addresses: &Addresses,
    output: Output,
) -> anyhow::Result<ApplyResponse> {
    let documents = read_documents(paths)?;
    let mut client = addresses.registry().await?;
    let plan = client
        .apply(ApplyRequest {
            documents: documents.clone(),
            dry_run: true,
            expected_revision: None,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let text = output == Output::Text;
    if text {
        print_plan(&plan);
    }
    let changes = plan
        .plan
        .iter()
        .any(|i| i.action != PlanAction::Unchanged as i32);
    if dry_run || !changes {
        if text && dry_run {
            println!("Dry run: nothing was applied.");
        } else if text {
            println!(
                "No changes: the registry already matches (revision {}).",
                plan.base_revision
            );
        } else {
            println!("{}", serde_json::to_string(&outcome_json(&plan, dry_run))?);
        }
        return Ok(plan);
    }
    let applied = client
        .apply(ApplyRequest {
            documents,
            dry_run: false,
            expected_revision: Some(plan.base_revision),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    if text {
        println!(
            "Applied: registry revision {} -> {}.",
            applied.base_revision, applied.revision
        );
        print_backfills(&applied, addresses).await;
    } else {
        println!(
            "{}",
            serde_json::to_string(&outcome_json(&applied, dry_run))?
        );
    }
    Ok(applied)
}

fn read_documents(paths: &[PathBuf]) -> anyhow::Result<Vec<DefinitionDocument>> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files)?;
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no .yaml or .yml files under {}",
        show(paths)
    );
    files
        .into_iter()
        .map(|file| {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Ok(DefinitionDocument {
                name: file.display().to_string(),
                yaml,
            })
        })
        .collect()
}

/// Adds `path` (a file) or every YAML file under it (a directory), in name order.
fn collect(path: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    for entry in entries {
        let is_yaml = entry.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if entry.is_dir() || is_yaml {
            collect(&entry, files)?;
        }
    }
    Ok(())
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_plan(plan: &ApplyResponse) {
    println!(
        "Plan for project {:?} at registry revision {}:",
        plan.project, plan.base_revision
    );
    for item in &plan.plan {
        let (sign, versions) = match action(item) {
            PlanAction::Create => ('+', format!("v{}", item.to_version)),
            PlanAction::Change => (
                '~',
                format!("v{} -> v{}", item.from_version, item.to_version),
            ),
            PlanAction::Delete => ('-', format!("v{} deleted", item.from_version)),
            PlanAction::Unchanged | PlanAction::Unspecified => {
                ('=', format!("v{}", item.to_version))
            }
        };
        println!(
            "  {sign} {:<8} {:<28} {versions}",
            kind_name(item),
            item.name
        );
        for change in &item.changes {
            println!("        {change}");
        }
    }
    let [create, change, delete, unchanged] = counts(plan);
    println!("{create} to create, {change} to change, {delete} to delete, {unchanged} unchanged.");
}

/// What the online store does with the views this apply created or changed: a version whose
/// source already has events is backfilled from the source log before it serves.
async fn print_backfills(applied: &ApplyResponse, addresses: &Addresses) {
    let versions: Vec<(String, u32)> = applied
        .plan
        .iter()
        .filter(|i| {
            Kind::from_pb(i.kind) == Some(Kind::FeatureView)
                && matches!(action(i), PlanAction::Create | PlanAction::Change)
        })
        .map(|i| (i.name.clone(), i.to_version))
        .collect();
    if versions.is_empty() {
        return;
    }
    let known = super::view_states::wait_for(
        addresses,
        &applied.project,
        &versions,
        std::time::Duration::from_secs(3),
    )
    .await;
    for (view, version) in &versions {
        let state = known
            .as_ref()
            .ok()
            .and_then(|k| k.iter().find(|s| s.view == *view && s.version == *version));
        match (state, &known) {
            (Some(state), _) => println!(
                "Online: view {view} v{version} {}{}",
                super::view_states::describe(state),
                if super::view_states::describe(state).starts_with("backfilling") {
                    format!(" from the source log; `quiver describe view {view}` follows it")
                } else {
                    String::new()
                }
            ),
            (None, Ok(_)) => println!(
                "Online: view {view} v{version} is not registered by the online store yet; `quiver describe view {view}` follows it"
            ),
            (None, Err(e)) => println!("Online: cannot tell what the online store does ({e})"),
        }
    }
}

fn action(item: &PlanItem) -> PlanAction {
    PlanAction::try_from(item.action).unwrap_or(PlanAction::Unspecified)
}

/// Objects to create, change, delete, and unchanged.
fn counts(plan: &ApplyResponse) -> [usize; 4] {
    let mut counts = [0usize; 4];
    for item in &plan.plan {
        let slot = match action(item) {
            PlanAction::Create => 0,
            PlanAction::Change => 1,
            PlanAction::Delete => 2,
            PlanAction::Unchanged | PlanAction::Unspecified => 3,
        };
        counts[slot] += 1;
    }
    counts
}

/// The plan and its outcome as one JSON object (documented in README "Using it"): `project`,
/// `base_revision`, `revision` (after the apply), `applied`, `dry_run`, `counts`, and `plan`:
/// one `{action, kind, name, from_version, to_version, changes}` per object.
fn outcome_json(response: &ApplyResponse, dry_run: bool) -> serde_json::Value {
    let [create, change, delete, unchanged] = counts(response);
    let plan: Vec<_> = response
        .plan
        .iter()
        .map(|item| {
            let action = match action(item) {
                PlanAction::Create => "create",
                PlanAction::Change => "change",
                PlanAction::Delete => "delete",
                PlanAction::Unchanged | PlanAction::Unspecified => "unchanged",
            };
            json!({
                "action": action,
                "kind": kind_name(item),
                "name": item.name,
                "from_version": item.from_version,
                "to_version": item.to_version,
                "changes": item.changes,
            })
        })
        .collect();
    json!({
        "project": response.project,
        "base_revision": response.base_revision,
        "revision": if response.applied { response.revision } else { response.base_revision },
        "applied": response.applied,
        "dry_run": dry_run,
        "counts": {"create": create, "change": change, "delete": delete, "unchanged": unchanged},
        "plan": plan,
    })
}

fn kind_name(item: &PlanItem) -> &'static str {
    Kind::from_pb(item.kind).map(Kind::name).unwrap_or("?")
}
