//! Registry credentials, looked up the way docker, podman and crane users
//! expect. First match wins:
//!
//! 1. env `REGISTRY_USERNAME` + `REGISTRY_PASSWORD` (for every registry);
//! 2. `REGISTRY_AUTH_FILE`, else podman's `$XDG_RUNTIME_DIR/containers/auth.json`
//!    (`/run/containers/$UID/auth.json` without `XDG_RUNTIME_DIR`); then
//!    podman's read-only fallback `$XDG_CONFIG_HOME/containers/auth.json`
//!    (`~/.config/containers/auth.json`), as containers-auth.json(5) says;
//! 3. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, including
//!    `credHelpers` and `credsStore`;
//! 4. anonymous.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` print
//! `<redacted>`, so no error or log line can carry one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docker_credential::{CredentialRetrievalError, DockerCredential};

/// A secret value (password or token). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for building an `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Anonymous,
    Basic {
        username: String,
        password: Secret,
    },
    /// An identity (refresh) token, as `docker login` stores for some registries.
    IdentityToken(Secret),
}

/// Where a credential came from, for messages (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Anonymous,
    Environment,
    File(PathBuf),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Anonymous => f.write_str("no credentials (anonymous)"),
            CredentialSource::Environment => f.write_str("credentials from REGISTRY_USERNAME/REGISTRY_PASSWORD"),
            CredentialSource::File(p) => write!(f, "credentials from `{}`", p.display()),
        }
    }
}

/// Why a configured credential could not be read. The helper's output is
/// never included: it may hold the secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential helper `docker-credential-{helper}` failed for `{registry}` (configured in `{file}`)")]
    Helper {
        helper: String,
        registry: String,
        file: PathBuf,
    },
    #[error("cannot read credentials for `{registry}` from `{file}`: {reason}")]
    File {
        registry: String,
        file: PathBuf,
        reason: String,
    },
    #[error(
        "credential helper `docker-credential-{helper}` did not answer within {} for `{registry}` \
         (configured in `{}`)", crate::human::duration(*.waited), .file.display()
    )]
    HelperTimeout {
        helper: String,
        registry: String,
        file: PathBuf,
        waited: Duration,
    },
    #[error("REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not (or the other way round)")]
    HalfEnvironment,
}

/// The process environment and paths the lookup reads, injectable for tests.
#[derive(Debug, Clone, Default)]
pub struct LookupEnv {
    pub username: Option<String>,
    pub password: Option<String>,
    pub registry_auth_file: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    /// The user id, for podman's `/run/containers/$UID/auth.json` when
    /// `XDG_RUNTIME_DIR` is unset.
    pub uid: Option<u32>,
    pub docker_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// How long a credential helper may take to answer; `None` (the
    /// default) waits as long as it takes. The registry client sets its
    /// `--timeout` here, so a helper that hangs cannot hang the run.
    pub helper_timeout: Option<Duration>,
}

impl LookupEnv {
    /// Reads the variables from the process environment.
    pub fn from_process() -> LookupEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        LookupEnv {
            username: var("REGISTRY_USERNAME"),
            password: var("REGISTRY_PASSWORD"),
            registry_auth_file: path("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: path("XDG_RUNTIME_DIR"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
            uid: real_uid(),
            docker_config: path("DOCKER_CONFIG"),
            home: path("HOME"),
            helper_timeout: None,
        }
    }

    /// The auth files to consult, in order, each with whether a file that
    /// cannot be read is an error (`false`: taken as absent).
    fn files(&self) -> Vec<(PathBuf, bool)> {
        let mut files = Vec::new();
        if let Some(f) = &self.registry_auth_file {
            files.push((f.clone(), true));
        } else if let Some(dir) = &self.xdg_runtime_dir {
            files.push((dir.join("containers/auth.json"), true));
        } else if let Some(uid) = self.uid {
            // Guessed, as podman does without XDG_RUNTIME_DIR: root's podman
            // makes `/run/containers` readable by root only, which must not
            // fail every run of another user.
            files.push((PathBuf::from(format!("/run/containers/{uid}/auth.json")), false));
        }
        if let Some(dir) = &self.xdg_config_home {
            files.push((dir.join("containers/auth.json"), true));
        } else if let Some(home) = &self.home {
            files.push((home.join(".config/containers/auth.json"), true));
        }
        if let Some(dir) = &self.docker_config {
            files.push((dir.join("config.json"), true));
        } else if let Some(home) = &self.home {
            files.push((home.join(".docker/config.json"), true));
        }
        files
    }
}

/// The real user id (podman's `/run/containers/$UID`), from
/// `/proc/self/status` (`Uid: real effective saved fs`).
fn real_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Looks up the credential for `registry` (`HOST[:PORT]` as written in
/// references).
pub fn lookup(registry: &str, env: &LookupEnv) -> Result<(Credential, CredentialSource), CredentialError> {
    match (&env.username, &env.password) {
        (Some(u), Some(p)) => {
            return Ok((
                Credential::Basic {
                    username: u.clone(),
                    password: Secret::new(p.clone()),
                },
                CredentialSource::Environment,
            ));
        }
        (None, None) => {}
        _ => return Err(CredentialError::HalfEnvironment),
    }
    lookup_files(env.files(), registry, env.helper_timeout)
}

/// The first credential for `registry` in `files`; a file that is absent,
/// or cannot be opened and is not required, is passed over.
fn lookup_files(
    files: Vec<(PathBuf, bool)>,
    registry: &str,
    timeout: Option<Duration>,
) -> Result<(Credential, CredentialSource), CredentialError> {
    for (file, required) in files {
        if !required && std::fs::File::open(&file).is_err() {
            continue;
        }
        if let Some(cred) = from_file(&file, registry, timeout)? {
            return Ok((cred, CredentialSource::File(file)));
        }
    }
    Ok((Credential::Anonymous, CredentialSource::Anonymous))
}

/// The keys docker and podman may have stored a registry's entry under.
fn server_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if matches!(registry, "docker.io" | "index.docker.io" | "registry-1.docker.io") {
        keys.insert(0, "https://index.docker.io/v1/".to_string());
        keys.extend(["index.docker.io".to_string(), "docker.io".to_string()]);
    }
    keys
}

/// The helper an auth file names for `key` (`credHelpers`, else `credsStore`).
fn helper_for(bytes: &[u8], key: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    v["credHelpers"][key]
        .as_str()
        .or(v["credsStore"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// `docker_credential`'s lookup of `key` in an auth file, which may run a
/// helper program; given up on after `timeout` (the helper is left to
/// finish on its own).
fn get_credential(
    bytes: &[u8],
    key: &str,
    timeout: Option<Duration>,
) -> Option<Result<DockerCredential, CredentialRetrievalError>> {
    let Some(timeout) = timeout else {
        return Some(docker_credential::get_credential_from_reader(bytes, key));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (b, k) = (bytes.to_vec(), key.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(docker_credential::get_credential_from_reader(b.as_slice(), &k));
    });
    rx.recv_timeout(timeout).ok()
}

fn from_file(file: &Path, registry: &str, timeout: Option<Duration>) -> Result<Option<Credential>, CredentialError> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialError::File {
                registry: registry.into(),
                file: file.into(),
                reason: e.to_string(),
            });
        }
    };
    for key in server_keys(registry) {
        let Some(found) = get_credential(&bytes, &key, timeout) else {
            return Err(CredentialError::HelperTimeout {
                helper: helper_for(&bytes, &key),
                registry: registry.into(),
                file: file.into(),
                waited: timeout.unwrap_or_default(),
            });
        };
        match found {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(Credential::Basic {
                    username,
                    password: Secret::new(password),
                }));
            }
            Ok(DockerCredential::IdentityToken(token)) => {
                return Ok(Some(Credential::IdentityToken(Secret::new(token))));
            }
            Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
            // The helper protocol's answer for "nothing stored for this
            // server" (docker's credsStore says so for every public registry):
            // not an error, just no credential under this key.
            Err(CredentialRetrievalError::HelperFailure {
                ref stdout, ref stderr, ..
            }) if stdout.contains("credentials not found") || stderr.contains("credentials not found") => {
                continue;
            }
            Err(CredentialRetrievalError::HelperFailure { helper, .. }) => {
                return Err(CredentialError::Helper {
                    helper: helper.trim_start_matches("docker-credential-").to_string(),
                    registry: registry.into(),
                    file: file.into(),
                });
            }
            Err(CredentialRetrievalError::HelperCommunicationError) => {
                return Err(CredentialError::File {
                    registry: registry.into(),
                    file: file.into(),
                    reason: "its credential helper could not be run (is it installed and on PATH?)".into(),
                });
            }
            // A credsStore that has nothing for this key is not an error for
            // the other keys; other failures are.
            Err(CredentialRetrievalError::MalformedHelperResponse) => {
                return Err(CredentialError::File {
                    registry: registry.into(),
                    file: file.into(),
                    reason: "its credential helper gave an unreadable answer".into(),
                });
            }
            Err(e) => {
                // Messages of the other variants carry no secret.
                return Err(CredentialError::File {
                    registry: registry.into(),
                    file: file.into(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn auth_json(dir: &Path, name: &str, registry_key: &str, user: &str, pass: &str) -> PathBuf {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!(r#"{{"auths": {{"{registry_key}": {{"auth": "{enc}"}}}}}}"#)).unwrap();
        p
    }

    /// Held by the tests that change PATH to find a helper script.
    static PATH_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: Secret::new(p),
        }
    }

    #[test]
    fn lookup_order_env_then_podman_then_docker_then_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let podman = auth_json(
            dir.path(),
            "run/containers/auth.json",
            "reg.example:5000",
            "podman",
            "p1",
        );
        let docker = auth_json(
            dir.path(),
            "docker/config.json",
            "https://reg.example:5000",
            "docker",
            "p2",
        );
        let _ = (&podman, &docker);
        let mut env = LookupEnv {
            username: Some("envuser".into()),
            password: Some("envpass".into()),
            xdg_runtime_dir: Some(dir.path().join("run")),
            docker_config: Some(dir.path().join("docker")),
            ..Default::default()
        };
        let (c, s) = lookup("reg.example:5000", &env).unwrap();
        assert_eq!((c, s), (basic("envuser", "envpass"), CredentialSource::Environment));

        env.username = None;
        env.password = None;
        let (c, s) = lookup("reg.example:5000", &env).unwrap();
        assert_eq!((c, s), (basic("podman", "p1"), CredentialSource::File(podman.clone())));

        // REGISTRY_AUTH_FILE replaces the podman default path.
        env.registry_auth_file = Some(dir.path().join("nonexistent.json"));
        let (c, s) = lookup("reg.example:5000", &env).unwrap();
        assert_eq!((c, s), (basic("docker", "p2"), CredentialSource::File(docker.clone())));

        let (c, s) = lookup("other.example", &env).unwrap();
        assert_eq!((c, s), (Credential::Anonymous, CredentialSource::Anonymous));
    }

    #[test]
    fn the_real_uid_is_read() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            real_uid().map(|u| u.to_string()).as_deref(),
            line.split_whitespace().nth(1)
        );
    }

    #[test]
    fn an_unreadable_guessed_podman_file_is_passed_over() {
        // Stands for `/run/containers/$UID/auth.json` under root's 0700
        // `/run/containers` (which root, running these tests, could read):
        // a path that cannot be opened, under a regular file.
        let dir = tempfile::tempdir().unwrap();
        let docker = auth_json(dir.path(), "docker/config.json", "reg.example", "docker", "p2");
        std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
        let guessed = dir.path().join("not-a-dir/auth.json");
        let files = |required| vec![(guessed.clone(), required), (docker.clone(), true)];
        let (c, s) = lookup_files(files(false), "reg.example", None).unwrap();
        assert_eq!((c, s), (basic("docker", "p2"), CredentialSource::File(docker.clone())));
        // The same path named by the user is an error (exit 4), not skipped.
        assert!(matches!(
            lookup_files(files(true), "reg.example", None),
            Err(CredentialError::File { .. })
        ));
        // The guessed one is the only file not required.
        let env = LookupEnv {
            uid: Some(1000),
            home: Some(dir.path().into()),
            ..Default::default()
        };
        let required: Vec<bool> = env.files().into_iter().map(|(_, r)| r).collect();
        assert_eq!(required, [false, true, true]);
        assert_eq!(env.files()[0].0, PathBuf::from("/run/containers/1000/auth.json"));
    }

    #[test]
    fn podman_fallback_file_comes_before_docker() {
        let dir = tempfile::tempdir().unwrap();
        let fallback = auth_json(
            dir.path(),
            "home/.config/containers/auth.json",
            "reg.example:5000",
            "podman",
            "p3",
        );
        let docker = auth_json(
            dir.path(),
            "home/.docker/config.json",
            "reg.example:5000",
            "docker",
            "p2",
        );
        let mut env = LookupEnv {
            home: Some(dir.path().join("home")),
            // No XDG_RUNTIME_DIR: podman's primary file is under /run, for
            // a user id that has none here.
            uid: Some(u32::MAX - 1),
            ..Default::default()
        };
        let (c, s) = lookup("reg.example:5000", &env).unwrap();
        assert_eq!((c, s), (basic("podman", "p3"), CredentialSource::File(fallback)));
        // XDG_CONFIG_HOME moves it; REGISTRY_AUTH_FILE does not drop it.
        env.xdg_config_home = Some(dir.path().join("elsewhere"));
        env.registry_auth_file = Some(dir.path().join("nonexistent.json"));
        let moved = auth_json(
            dir.path(),
            "elsewhere/containers/auth.json",
            "reg.example:5000",
            "podman",
            "p4",
        );
        let (c, s) = lookup("reg.example:5000", &env).unwrap();
        assert_eq!((c, s), (basic("podman", "p4"), CredentialSource::File(moved.clone())));
        std::fs::remove_file(&moved).unwrap();
        let (c, s) = lookup("reg.example:5000", &env).unwrap();
        assert_eq!((c, s), (basic("docker", "p2"), CredentialSource::File(docker)));
    }

    #[test]
    fn home_docker_config_and_docker_hub_keys() {
        let dir = tempfile::tempdir().unwrap();
        auth_json(
            dir.path(),
            ".docker/config.json",
            "https://index.docker.io/v1/",
            "hubuser",
            "hubpass",
        );
        let env = LookupEnv {
            home: Some(dir.path().into()),
            ..Default::default()
        };
        assert_eq!(lookup("docker.io", &env).unwrap().0, basic("hubuser", "hubpass"));
    }

    #[test]
    fn half_environment_is_an_error() {
        let env = LookupEnv {
            username: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(lookup("r", &env), Err(CredentialError::HalfEnvironment)));
    }

    #[test]
    fn failing_helper_never_shows_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let helper = bin.join("docker-credential-leaky");
        std::fs::write(
            &helper,
            "#!/bin/sh\ncat >/dev/null\necho 'hunter2-secret'\necho 'hunter2-secret' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = dir.path().join("docker");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("config.json"), r#"{"credHelpers": {"reg.example": "leaky"}}"#).unwrap();
        // The helper is found through PATH; extend it for this process only.
        let _guard = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        // SAFETY: PATH_LOCK serialises the tests of this module that change PATH.
        unsafe { std::env::set_var("PATH", path) };
        let env = LookupEnv {
            docker_config: Some(cfg),
            ..Default::default()
        };
        let err = lookup("reg.example", &env).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("docker-credential-leaky"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_helper_that_never_answers_is_given_up_on() {
        // Found by tests/test_secrets.rs: a credential helper that hangs hung
        // every binary, whatever its --timeout.
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, r#"{"credHelpers": {"reg.example": "no-such-helper-xyz"}}"#).unwrap();
        let env = LookupEnv {
            docker_config: Some(dir.path().into()),
            helper_timeout: Some(Duration::from_millis(200)),
            ..Default::default()
        };
        // A helper that is missing fails at once, as before.
        assert!(matches!(lookup("reg.example", &env), Err(CredentialError::File { .. })));
        let bytes = br#"{"credsStore": "desk"}"#;
        assert_eq!(helper_for(bytes, "reg.example"), "desk");
        assert_eq!(helper_for(b"{}", "reg.example"), "?");
        let e = CredentialError::HelperTimeout {
            helper: "stuck".into(),
            registry: "reg.example".into(),
            file: cfg.clone(),
            waited: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "credential helper `docker-credential-stuck` did not answer within 1.5 s for `reg.example` \
                 (configured in `{}`)",
                cfg.display()
            )
        );
    }

    #[test]
    fn a_helper_with_nothing_stored_means_anonymous() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-emptystore");
        std::fs::write(
            &helper,
            "#!/bin/sh\ncat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = dir.path().join("docker");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("config.json"), r#"{"credsStore": "emptystore"}"#).unwrap();
        let _guard = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
        // SAFETY: PATH_LOCK serialises the tests of this module that change PATH.
        unsafe { std::env::set_var("PATH", path) };
        let env = LookupEnv {
            docker_config: Some(cfg),
            ..Default::default()
        };
        assert_eq!(
            lookup("docker.io", &env).unwrap(),
            (Credential::Anonymous, CredentialSource::Anonymous)
        );
    }

    #[test]
    fn secret_is_redacted() {
        let c = basic("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("x").to_string(), "<redacted>");
    }
}
