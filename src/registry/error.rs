//! Registry errors, classified by what the user can do about them; each maps
//! to one of the documented exit codes.

use serde::Deserialize;

use crate::credentials::CredentialError;

/// The error body the distribution spec defines:
/// `{"errors": [{"code": "...", "message": "...", "detail": ...}]}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<ErrorInfo>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ErrorInfo {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    /// Parses a registry error body; anything else gives an empty body.
    pub fn parse(body: &[u8]) -> ErrorBody {
        serde_json::from_slice(body).unwrap_or_default()
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    /// `CODE: message` of the first error, for messages.
    pub fn summary(&self) -> Option<String> {
        self.errors.first().map(|e| {
            let msg: String = e.message.chars().take(200).collect();
            if msg.is_empty() {
                e.code.clone()
            } else {
                format!("{}: {}", e.code, msg)
            }
        })
    }
}

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Repository, tag, digest or blob does not exist (exit 3).
    #[error("{what} not found{}", detail_suffix(.detail))]
    NotFound {
        what: String,
        registry: String,
        detail: Option<String>,
    },
    /// Authentication or authorisation refused (exit 4).
    #[error("`{registry}` refused {action} ({status}){}", detail_suffix(.detail))]
    Denied {
        registry: String,
        action: String,
        status: u16,
        detail: Option<String>,
    },
    /// Credentials are configured but cannot be read (exit 4).
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// No connection could be made, within the deadline (exit 5).
    #[error("cannot reach `{registry}` ({url})")]
    Unreachable {
        registry: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The deadline (`--timeout`) passed before an answer (exit 5).
    #[error("`{registry}` gave no usable answer within {} ({what})", crate::human::duration(*.timeout))]
    Timeout {
        registry: String,
        timeout: std::time::Duration,
        what: String,
    },
    /// The registry answered with an error status that retries did not cure (exit 5).
    #[error("`{registry}` answered {status} to {method} {path}{}", detail_suffix(.detail))]
    Status {
        registry: String,
        status: u16,
        method: String,
        path: String,
        detail: Option<String>,
    },
    /// A manifest or blob body does not hash to its digest (exit 5).
    #[error("{what} from `{registry}` does not match its digest: expected `{expected}`, got `{actual}`")]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },
    /// The registry sent something that is not what the protocol says (exit 5).
    #[error("`{registry}` sent an invalid {what}: {detail}")]
    Invalid {
        registry: String,
        what: String,
        detail: String,
    },
    /// A 404 came from a host whose API root `/v2/` answers 404 too: not a
    /// registry (a web server, or a proxy without the registry behind it),
    /// so its 404 says nothing about the repository or tag (exit 5).
    #[error("`{registry}` does not answer as a registry: `{url}` answered 404 (a registry answers 200 or 401)")]
    NotARegistry { registry: String, url: String },
    /// The registry does not allow this operation, e.g. deletes (exit 1).
    #[error("`{registry}` does not support {operation} ({status}){}", detail_suffix(.detail))]
    Unsupported {
        registry: String,
        operation: String,
        status: u16,
        detail: Option<String>,
    },
}

fn detail_suffix(d: &Option<String>) -> String {
    d.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

impl RegistryError {
    /// The exit code of DESIGN.md: 3 not found, 4 auth refused, 5 registry
    /// unreachable or broken, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            RegistryError::NotFound { .. } => 3,
            RegistryError::Denied { .. } | RegistryError::Credentials(_) => 4,
            RegistryError::Unreachable { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::Status { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::Invalid { .. }
            | RegistryError::NotARegistry { .. } => 5,
            RegistryError::Unsupported { .. } => 1,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            RegistryError::NotFound { what, .. } if what == "catalog" => {
                "the registry does not serve its catalog (`/v2/_catalog`; some hosted registries turn it off), \
                 which listing every repository needs; `images_overview WORKSPACE HOST/REPO` reads one \
                 repository without it"
                    .into()
            }
            RegistryError::NotFound { .. } => {
                "check the repository and tag or digest; `registry_overview REGISTRY` lists what exists".into()
            }
            RegistryError::Denied { .. } => "check the credentials: REGISTRY_USERNAME/REGISTRY_PASSWORD, \
                 REGISTRY_AUTH_FILE, or `docker login` (~/.docker/config.json)"
                .into(),
            RegistryError::Credentials(_) => {
                "fix or remove the credential configuration named above, or set REGISTRY_USERNAME/REGISTRY_PASSWORD"
                    .into()
            }
            RegistryError::Unreachable { url, .. } if url.starts_with("https://") => {
                "check the host and port; plain HTTP is used only for loopback and for hosts named with \
                 `--plain-http HOST` or IMAGE_LIFECYCLE_PLAIN_HTTP"
                    .into()
            }
            RegistryError::Unreachable { .. } => "check that the registry runs and the host and port are right".into(),
            RegistryError::Timeout { .. } => "the registry is slow or hanging; retry later or raise `--timeout`".into(),
            RegistryError::Status { .. } => "the registry failed; see its logs, or retry later".into(),
            RegistryError::DigestMismatch { .. } => {
                "the registry, a proxy or the cache served wrong content; nothing was used".into()
            }
            RegistryError::Invalid { .. } => "the registry does not follow the distribution API here".into(),
            RegistryError::NotARegistry { .. } => {
                "check the host, port and scheme: the registry's API is `/v2/` at the host named (behind a proxy, \
                 check that it forwards `/v2/`)"
                    .into()
            }
            RegistryError::Unsupported { operation, .. } if operation.contains("delet") => {
                "enable deletes in the registry configuration (`storage.delete.enabled: true` for the distribution \
                 registry) and retry"
                    .into()
            }
            RegistryError::Unsupported { .. } => return None,
        })
    }
}
