//! On-disk cache of content addressed by digest (manifests and config
//! blobs). Such content never changes, so it is reused across runs; every
//! entry is verified against its digest when read, so a damaged or tampered
//! entry is ignored and fetched again, never used.
//!
//! Location: `$IMAGE_LIFECYCLE_CACHE_DIR`, else `$XDG_CACHE_HOME/image-lifecycle`,
//! else `~/.cache/image-lifecycle`. `IMAGE_LIFECYCLE_CACHE_DIR=off` disables it.
//! Entries are written with a temporary file and a rename (no fsync: a lost
//! entry is only refetched).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::reference::Digest;

/// The cache directory from the environment, or `None` when disabled.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os("IMAGE_LIFECYCLE_CACHE_DIR") {
        Some(v) if v == "off" => return None,
        Some(v) if !v.is_empty() => return Some(PathBuf::from(v)),
        _ => {}
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("image-lifecycle"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/image-lifecycle"))
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    fn path(&self, kind: &str, digest: &Digest) -> PathBuf {
        self.dir.join(kind).join(digest.algorithm()).join(digest.encoded())
    }

    /// A cached manifest: media type and body.
    pub fn get_manifest(&self, digest: &Digest) -> Option<(String, Bytes)> {
        let raw = std::fs::read(self.path("manifests", digest)).ok()?;
        let nl = raw.iter().position(|&b| b == b'\n')?;
        let media_type = std::str::from_utf8(&raw[..nl]).ok()?.to_string();
        let body = Bytes::copy_from_slice(&raw[nl + 1..]);
        digest.verifies(&body).then_some((media_type, body))
    }

    pub fn put_manifest(&self, digest: &Digest, media_type: &str, body: &[u8]) {
        if media_type.contains('\n') {
            return;
        }
        let mut raw = Vec::with_capacity(media_type.len() + 1 + body.len());
        raw.extend_from_slice(media_type.as_bytes());
        raw.push(b'\n');
        raw.extend_from_slice(body);
        write(&self.path("manifests", digest), &raw);
    }

    pub fn get_blob(&self, digest: &Digest) -> Option<Bytes> {
        let raw = std::fs::read(self.path("blobs", digest)).ok()?;
        digest.verifies(&raw).then(|| Bytes::from(raw))
    }

    pub fn put_blob(&self, digest: &Digest, body: &[u8]) {
        write(&self.path("blobs", digest), body);
    }
}

/// Best effort: a cache that cannot be written only costs a refetch.
fn write(path: &Path, body: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    if std::fs::write(&tmp, body).is_ok() && std::fs::rename(&tmp, path).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&tmp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path().into());
        let body = br#"{"schemaVersion":2}"#;
        let d = Digest::sha256_of(body);
        assert!(c.get_manifest(&d).is_none());
        c.put_manifest(&d, "application/vnd.oci.image.manifest.v1+json", body);
        let (mt, b) = c.get_manifest(&d).unwrap();
        assert_eq!(
            (mt.as_str(), &b[..]),
            ("application/vnd.oci.image.manifest.v1+json", &body[..])
        );
        // A tampered entry is not used.
        let p = dir.path().join("manifests/sha256").join(d.encoded());
        std::fs::write(&p, b"application/json\n{\"evil\":1}").unwrap();
        assert!(c.get_manifest(&d).is_none());
        c.put_blob(&d, body);
        assert_eq!(&c.get_blob(&d).unwrap()[..], &body[..]);
        std::fs::write(dir.path().join("blobs/sha256").join(d.encoded()), b"x").unwrap();
        assert!(c.get_blob(&d).is_none());
    }
}
