//! The deploy state file: what `playbooks/collect_deploy_info.yml` writes for
//! one workspace after every host of it answered, and what
//! `images_overview --deployed` and `registry_cleanup --protected` read.
//!
//! ```json
//! {"workspace": "dev", "collected_at": "2026-01-25T02:00:00Z",
//!  "hosts": ["web1", "web2"],
//!  "records": [{"host": "web1", "path": "/opt/rednaw/hello-world/deploy-info.yml",
//!               "app": "hello-world", "workspace": "dev",
//!               "image": "registry.rednaw.nl/rednaw/hello-world",
//!               "tag": "eb53023", "digest": "sha256:…", "deployed_at": "…",
//!               "history": [{"digest": "sha256:…", "tag": "…", "deployed_at": "…"}]}]}
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::reference::{Digest, Reference};

/// Why a deploy state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeployStateError {
    #[error("cannot read deploy state file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("deploy state file `{path}` is not valid deploy state JSON")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "deploy state file `{path}` names workspace `{workspace}` but its record from host `{host}` is for workspace `{record}`"
    )]
    WorkspaceMismatch {
        path: PathBuf,
        workspace: String,
        host: String,
        record: String,
    },
    /// A record (or one of its history entries) whose `image` is not
    /// `registry/repository` as written: it would protect nothing in
    /// `registry_cleanup`, so the file is refused (fail closed).
    #[error("deploy state file `{path}`: {at} image `{image}`, which is not `registry/repository`: {reason}")]
    InvalidImage {
        path: PathBuf,
        /// Which record names it, e.g. "the record of app `a` from host
        /// `h` names a history entry's".
        at: String,
        image: String,
        reason: String,
    },
}

impl DeployStateError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            DeployStateError::InvalidImage { .. } => {
                "correct `image` in that host's deploy-info.yml (or deploy the app there again), then collect the \
                 deploy state again"
            }
            _ => {
                "collect the deploy state again (playbooks/collect_deploy_info.yml, or `task images:overview` / \
                  `task cleanup`, which collect it first)"
            }
        }
    }
}

/// One workspace's collected deploy state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployState {
    /// The workspace (inventory) the hosts belong to.
    pub workspace: String,
    /// When the playbook collected it (RFC 3339 UTC).
    #[serde(default)]
    pub collected_at: Option<String>,
    /// Every host of the workspace; all of them answered. Required, as
    /// `records` is: a file without them is not a deploy state (say an
    /// `images_overview --json`), and taken for one it would protect
    /// nothing while unlocking `registry_cleanup --apply`.
    pub hosts: Vec<String>,
    /// One record per deploy-info.yml found on those hosts.
    pub records: Vec<DeployRecord>,
}

/// One host's current deploy of one app, with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// Inventory hostname the record came from.
    pub host: String,
    /// Path of the deploy-info.yml on that host.
    #[serde(default)]
    pub path: Option<String>,
    pub app: String,
    pub workspace: String,
    /// `registry/repository`, without tag or digest.
    pub image: String,
    #[serde(default)]
    pub tag: Option<String>,
    pub digest: Digest,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub deployed_at: Option<String>,
    #[serde(default)]
    pub deployed_by: Option<String>,
    /// Earlier deploys, oldest first (may include the current one last).
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// One earlier deploy of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// `registry/repository` it was deployed from, when the history says
    /// (deploy-history.yml holds whole records): an app may have been
    /// deployed from another repository before. `None`: the record's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub digest: Digest,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub deployed_at: Option<String>,
}

/// Why `image` is not `registry/repository` as `write_deploy_info` writes
/// it, if it is not.
fn image_problem(image: &str) -> Option<String> {
    match Reference::from_str(image) {
        Err(e) => Some(e.to_string()),
        Ok(r) if r.tag.is_some() || r.digest.is_some() => Some("it has a tag or digest".into()),
        Ok(r) if r.to_string() != image => Some(format!("it is written `{}` in full", r.name())),
        Ok(_) => None,
    }
}

impl DeployState {
    /// Reads and checks a deploy state file.
    pub fn load(path: &Path) -> Result<DeployState, DeployStateError> {
        let text = std::fs::read(path).map_err(|source| DeployStateError::Read {
            path: path.into(),
            source,
        })?;
        let state: DeployState = serde_json::from_slice(&text).map_err(|source| DeployStateError::Parse {
            path: path.into(),
            source,
        })?;
        if let Some(r) = state.records.iter().find(|r| r.workspace != state.workspace) {
            return Err(DeployStateError::WorkspaceMismatch {
                path: path.into(),
                workspace: state.workspace.clone(),
                host: r.host.clone(),
                record: r.workspace.clone(),
            });
        }
        for r in &state.records {
            let entries = r
                .history
                .iter()
                .filter_map(|h| h.image.as_deref())
                .filter(|i| !i.is_empty());
            let images = std::iter::once(("", r.image.as_str())).chain(entries.map(|i| ("a history entry's", i)));
            for (what, image) in images {
                if let Some(reason) = image_problem(image) {
                    return Err(DeployStateError::InvalidImage {
                        path: path.into(),
                        at: format!(
                            "the record of app `{}` from host `{}` names{}{what}",
                            r.app,
                            r.host,
                            if what.is_empty() { "" } else { " " }
                        ),
                        image: image.to_string(),
                        reason,
                    });
                }
            }
        }
        Ok(state)
    }

    /// The records whose image is `registry/repository`.
    pub fn records_for<'a>(&'a self, image: &'a str) -> impl Iterator<Item = &'a DeployRecord> + 'a {
        self.records.iter().filter(move |r| r.image == image)
    }
}

/// The registry host and the repository path of a record's `image`
/// (`registry/repository`, as [`DeployState::read`] checked); `None` for
/// an image without `/`.
pub fn image_parts(image: &str) -> Option<(&str, &str)> {
    image.split_once('/')
}

impl DeployRecord {
    /// The (image, digest) pairs of the last `n` distinct digests deployed
    /// of each image, newest first, the current one included (it counts as
    /// the newest of its image). Per image, so that an app that came from
    /// another repository before keeps `n` of this one too.
    pub fn recent_deploys(&self, n: usize) -> Vec<(&str, &Digest)> {
        let mut out: Vec<(&str, &Digest)> = Vec::new();
        let newest_first =
            std::iter::once((self.image.as_str(), &self.digest)).chain(self.history.iter().rev().map(|h| {
                let image = h.image.as_deref().filter(|i| !i.is_empty());
                (image.unwrap_or(&self.image), &h.digest)
            }));
        for d in newest_first {
            if out.contains(&d) || out.iter().filter(|(image, _)| *image == d.0).count() >= n {
                continue;
            }
            out.push(d);
        }
        out
    }

    /// Where one of `digests` of repository `repository` (its path, on any
    /// registry host: a record may name this registry another way, e.g.
    /// `localhost:5000` for `127.0.0.1:5000`) is in this record:
    /// `deployed on WS/HOST (APP)` or `rollback target on WS/HOST (APP)`
    /// (anywhere in its history).
    pub fn names(&self, repository: &str, digests: &[&Digest]) -> Option<String> {
        let at = format!("{}/{} ({})", self.workspace, self.host, self.app);
        let of_repository = |image: &str| image_parts(image).is_some_and(|(_, path)| path == repository);
        let deploys = self.recent_deploys(usize::MAX);
        match deploys
            .iter()
            .position(|(i, d)| of_repository(i) && digests.contains(d))?
        {
            0 => Some(format!("deployed on {at}")),
            _ => Some(format!("rollback target on {at}")),
        }
    }

    /// The digests of [`DeployRecord::recent_deploys`] that are of the
    /// record's own image.
    pub fn recent_digests(&self, n: usize) -> Vec<&Digest> {
        self.recent_deploys(n)
            .into_iter()
            .filter(|(image, _)| *image == self.image)
            .map(|(_, d)| d)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_design_shape_and_recent_digests() {
        let json = format!(
            r#"{{"workspace": "dev", "collected_at": "2026-01-25T02:00:00Z", "hosts": ["web1"],
              "records": [{{"host": "web1", "path": "/opt/rednaw/hello-world/deploy-info.yml",
              "app": "hello-world", "workspace": "dev", "image": "registry.rednaw.nl/rednaw/hello-world",
              "tag": "eb53023", "digest": "{c}", "deployed_at": "2026-01-25T01:10:00Z", "extra": 1,
              "history": [{{"digest": "{a}", "tag": "a"}}, {{"digest": "{b}"}}, {{"digest": "{a}"}}, {{"digest": "{c}"}}]}}]}}"#,
            a = d('a'),
            b = d('b'),
            c = d('c')
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev.json");
        std::fs::write(&p, json).unwrap();
        let s = DeployState::load(&p).unwrap();
        assert_eq!(s.records_for("registry.rednaw.nl/rednaw/hello-world").count(), 1);
        assert_eq!(s.records_for("registry.rednaw.nl/rednaw/other").count(), 0);
        let r = &s.records[0];
        let recent: Vec<String> = r.recent_digests(3).iter().map(|d| d.to_string()).collect();
        assert_eq!(recent, vec![d('c'), d('a'), d('b')]);
        assert_eq!(r.recent_digests(1).len(), 1);
        assert_eq!(r.recent_digests(0).len(), 0);
    }

    #[test]
    fn each_image_keeps_its_own_window() {
        let dg = |c: char| -> Digest { d(c).parse().unwrap() };
        let entry = |image: Option<&str>, c: char| HistoryEntry {
            image: image.map(str::to_string),
            digest: dg(c),
            tag: None,
            deployed_at: None,
        };
        // Oldest first: new@a, old@b, old@c, then the current new@e.
        let r = DeployRecord {
            host: "h".into(),
            path: None,
            app: "a".into(),
            workspace: "dev".into(),
            image: "r/new".into(),
            tag: None,
            digest: dg('e'),
            description: None,
            deployed_at: None,
            deployed_by: None,
            history: vec![
                entry(None, 'a'),
                entry(Some("r/old"), 'b'),
                entry(Some("r/old"), 'c'),
                entry(Some("r/new"), 'e'),
            ],
        };
        let (a, b, c, e) = (dg('a'), dg('b'), dg('c'), dg('e'));
        assert_eq!(
            r.recent_deploys(2),
            vec![("r/new", &e), ("r/old", &c), ("r/old", &b), ("r/new", &a)],
            "the previous digest of r/new is protected whatever came between"
        );
        assert_eq!(r.recent_deploys(1), vec![("r/new", &e), ("r/old", &c)]);
        assert_eq!(r.recent_digests(2), vec![&e, &a]);
    }

    #[test]
    fn bad_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.json");
        std::fs::write(&p, r#"{"workspace": "dev", "records": [{"host": "h", "app": "a", "workspace": "prod", "image": "r/x", "digest": "sha256:00"}]}"#).unwrap();
        let e = DeployState::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
        let digest = format!("sha256:{}", "0".repeat(64));
        let record =
            format!(r#"{{"host": "h", "app": "a", "workspace": "prod", "image": "r/x", "digest": "{digest}"}}"#);
        std::fs::write(
            &p,
            format!(r#"{{"workspace": "dev", "hosts": ["h"], "records": [{record}]}}"#),
        )
        .unwrap();
        let e = DeployState::load(&p).unwrap_err().to_string();
        assert!(
            matches!(
                DeployState::load(&p),
                Err(DeployStateError::WorkspaceMismatch { ref record, .. }) if record == "prod"
            ),
            "a record of another workspace: {e}"
        );
        std::fs::write(&p, format!(r#"{{"workspace": "dev", "records": [{record}]}}"#)).unwrap();
        let e = DeployState::load(&p).unwrap_err();
        let source = std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(source.contains("missing field `hosts`"), "{e}: {source}");
        // An image that is not `registry/repository` as written protects
        // nothing: the file is refused, naming the record.
        for (image, history, says) in [
            ("acme/web", "", "it is written `docker.io/acme/web` in full"),
            ("r.example/acme/web/", "", "`r.example/acme/web/`"),
            ("r.example/acme/web:v1", "", "it has a tag or digest"),
            (
                "r.example/acme/web",
                r#", "history": [{"image": "r.example/Acme", "digest": "DIGEST"}]"#,
                "names a history entry's image `r.example/Acme`",
            ),
        ] {
            let history = history.replace("DIGEST", &digest);
            std::fs::write(
                &p,
                format!(
                    r#"{{"workspace": "dev", "hosts": ["h"], "records": [{{"host": "h", "app": "a", "workspace": "dev",
                        "image": "{image}", "digest": "{digest}"{history}}}]}}"#
                ),
            )
            .unwrap();
            let e = DeployState::load(&p).unwrap_err().to_string();
            assert!(
                e.contains("bad.json") && e.contains("app `a` from host `h`") && e.contains(says),
                "{image}: {e}"
            );
        }
        std::fs::write(
            &p,
            format!(
                r#"{{"workspace": "dev", "hosts": ["h"], "records": [{{"host": "h", "app": "a", "workspace": "dev",
                    "image": "127.0.0.1:5000/acme/web", "digest": "{digest}",
                    "history": [{{"image": "", "digest": "{digest}"}}, {{"image": "r.example/x", "digest": "{digest}"}}]}}]}}"#
            ),
        )
        .unwrap();
        DeployState::load(&p).unwrap();
        let missing = dir.path().join("missing.json");
        assert!(
            DeployState::load(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.json")
        );
    }
}
