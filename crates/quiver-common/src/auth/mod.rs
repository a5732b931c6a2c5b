//! Who may call what: bearer tokens scoped to projects and a role, and the cluster-internal
//! credential Quiver processes use with each other (docs/security.md).
//!
//! A server checks every request in [`layer::AuthLayer`] against the method's [`access`]
//! rule: the caller's token must exist, be live and carry the role the method needs; the
//! [`Caller`] then travels in the request's extensions, and a handler that learns the project
//! (after resolving an empty one) checks it with [`check_project`]. With auth off no caller is
//! attached and every check passes.

pub mod access;
pub mod layer;
pub mod token;
pub mod token_cache;

use std::fmt;
use std::sync::{Arc, OnceLock};

use tonic::Status;

pub use access::{access, Access, Scope};
pub use layer::AuthLayer;
pub use token_cache::{TokenCache, TokenRecord};

/// What a token may do, each role including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// GetFeatures, snapshots, list, describe, lineage, watch.
    Reader,
    /// Push and load, plus everything a reader may.
    Writer,
    /// Apply definitions, plus everything a writer may.
    Editor,
    /// Cluster administration and tokens, plus everything else on client ports.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Reader, Role::Writer, Role::Editor, Role::Admin];

    /// The role's name (`reader`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Reads a role name.
    pub fn parse(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| format!("unknown role {text:?}: reader, writer, editor or admin"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The projects a token may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projects {
    /// Every project.
    All,
    /// Only these.
    Only(Vec<String>),
}

impl Projects {
    /// Whether `project` is among them.
    pub fn contains(&self, project: &str) -> bool {
        match self {
            Projects::All => true,
            Projects::Only(list) => list.iter().any(|p| p == project),
        }
    }
}

/// An authenticated caller, as the auth layer attaches it to a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token id, or `internal` for another Quiver process.
    pub id: String,
    /// The token's role; `None` for the cluster-internal credential (which may do anything).
    pub role: Option<Role>,
    /// The projects the token may act on.
    pub projects: Projects,
    /// The RPC called (e.g. `Push`), for messages.
    pub method: &'static str,
    /// The role that RPC needs.
    pub needs: Role,
}

impl Caller {
    /// The caller of `request`, if auth is on.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Caller> {
        request.extensions().get::<Caller>().cloned()
    }

    /// Whether the caller may act on `project`; PERMISSION_DENIED names what is missing.
    pub fn check_project(&self, project: &str) -> Result<(), Status> {
        if self.projects.contains(project) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "token {:?} has role {} on {}; {} needs {} on project {project:?}",
            self.id,
            self.role_name(),
            self.scope(),
            self.method,
            self.needs
        )))
    }

    /// PERMISSION_DENIED for a method that acts on the whole cluster, called with a token of
    /// some projects only.
    pub fn needs_every_project(&self) -> Status {
        Status::permission_denied(format!(
            "token {:?} has role {} on {}; {} needs {} on every project (it acts on the whole \
             cluster)",
            self.id,
            self.role_name(),
            self.scope(),
            self.method,
            self.needs
        ))
    }

    fn role_name(&self) -> &'static str {
        self.role.map(Role::name).unwrap_or("internal")
    }

    /// The projects the token covers, for messages.
    fn scope(&self) -> String {
        match &self.projects {
            Projects::All => "every project".to_string(),
            Projects::Only(list) => format!(
                "project{} {}",
                if list.len() == 1 { "" } else { "s" },
                list.iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Checks that the caller of a request (if auth is on) may act on `project`.
pub fn check_project(caller: Option<&Caller>, project: &str) -> Result<(), Status> {
    caller.map_or(Ok(()), |c| c.check_project(project))
}

/// As [`check_project`] for the project a request names, before anything is looked up or
/// validated in it: a token that does not cover it learns nothing about it (whether it exists,
/// its sources' columns). An empty name (the only project) is checked once resolved.
pub fn check_named_project(caller: Option<&Caller>, requested: &str) -> Result<(), Status> {
    if requested.is_empty() {
        return Ok(());
    }
    check_project(caller, requested)
}

static AUTHENTICATOR: OnceLock<Arc<token_cache::Authenticator>> = OnceLock::new();

/// Turns auth on for every gRPC server this process starts from now on (once per process).
pub fn install(authenticator: token_cache::Authenticator) {
    let _ = AUTHENTICATOR.set(Arc::new(authenticator));
}

/// The process's authenticator, if auth is on.
pub fn installed() -> Option<Arc<token_cache::Authenticator>> {
    AUTHENTICATOR.get().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_project_messages_name_what_is_missing() {
        assert!(Role::Admin > Role::Editor && Role::Editor > Role::Writer);
        assert_eq!(Role::parse("writer"), Ok(Role::Writer));
        assert!(Role::parse("owner").is_err());
        let caller = Caller {
            id: "t_ab12".into(),
            role: Some(Role::Writer),
            projects: Projects::Only(vec!["shop".into()]),
            method: "Push",
            needs: Role::Writer,
        };
        assert!(caller.check_project("shop").is_ok());
        let denied = caller.check_project("demo").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            denied.message(),
            "token \"t_ab12\" has role writer on project \"shop\"; Push needs writer on project \"demo\""
        );
        assert!(check_project(None, "anything").is_ok());
    }
}
