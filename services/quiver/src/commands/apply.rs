//! `quiver apply -f PATH [--dry-run]`: validate, print the plan, apply it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use quiver_proto::registry::{
    ApplyRequest, ApplyResponse, DefinitionDocument, PlanAction, PlanItem,
};
use quiver_registry::definition::Kind;

use crate::addresses::Addresses;
use crate::cli::ApplyArgs;

/// Runs `quiver apply`.
pub async fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    match apply_paths(&args.paths, args.dry_run, &args.addresses).await {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Plans, prints and (unless `dry_run`) applies the definitions under `paths`. The apply is
/// pinned to the revision the plan was made against, so a concurrent change makes it fail
/// rather than apply something other than what was shown.
pub async fn apply_paths(
    paths: &[PathBuf],
    dry_run: bool,
    addresses: &Addresses,
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
    print_plan(&plan);
    let changes = plan
        .plan
        .iter()
        .any(|i| i.action != PlanAction::Unchanged as i32);
    if dry_run {
        println!("Dry run: nothing was applied.");
        return Ok(plan);
    }
    if !changes {
        println!(
            "No changes: the registry already matches (revision {}).",
            plan.base_revision
        );
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
    println!(
        "Applied: registry revision {} -> {}.",
        applied.base_revision, applied.revision
    );
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
    let mut counts = [0usize; 4];
    for item in &plan.plan {
        let action = PlanAction::try_from(item.action).unwrap_or(PlanAction::Unspecified);
        let (sign, versions, slot) = match action {
            PlanAction::Create => ('+', format!("v{}", item.to_version), 0),
            PlanAction::Change => (
                '~',
                format!("v{} -> v{}", item.from_version, item.to_version),
                1,
            ),
            PlanAction::Delete => ('-', format!("v{} deleted", item.from_version), 2),
            PlanAction::Unchanged | PlanAction::Unspecified => {
                ('=', format!("v{}", item.to_version), 3)
            }
        };
        counts[slot] += 1;
        println!(
            "  {sign} {:<8} {:<28} {versions}",
            kind_name(item),
            item.name
        );
        for change in &item.changes {
            println!("        {change}");
        }
    }
    println!(
        "{} to create, {} to change, {} to delete, {} unchanged.",
        counts[0], counts[1], counts[2], counts[3]
    );
}

fn kind_name(item: &PlanItem) -> &'static str {
    Kind::from_pb(item.kind).map(Kind::name).unwrap_or("?")
}
