//! On-disk cache of content addressed by digest (manifests and config
//! blobs). Such content never changes, so it is reused across runs; every
//! entry is verified against its digest when read, so a damaged or tampered
//! entry is ignored and fetched again, never used.
//!
//! Location: `$IMAGE_LIFECYCLE_CACHE_DIR`, else `$XDG_CACHE_HOME/image-lifecycle`,
//! else `~/.cache/image-lifecycle`. `IMAGE_LIFECYCLE_CACHE_DIR=off` disables it.
//! Entries are written with a temporary file and a rename (no fsync: a lost
//! entry is only refetched), by one writer thread per cache, so the network
//! tasks never wait for the file system; dropping the last clone of a
//! [`Cache`] waits for the writes handed over so far.
//!
//! Scans add **packs**: the manifests and configs one repository's last
//! scan used, in one file per repository (`packs/<sha256 of
//! registry/repository>`), so a scan of thousands of tags reads and writes
//! one file instead of thousands (creating small files is what a cold scan
//! spent most of its system time on). Pack entries are verified against
//! their digest when used, like every other entry; a damaged pack only
//! costs refetches.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
    writer: Arc<Writer>,
}

/// A file to write: where, and what.
type Job = (PathBuf, Vec<u8>);

/// The thread that writes entries, started on the first one.
#[derive(Debug, Default)]
struct Writer {
    state: Mutex<Option<(Sender<Job>, JoinHandle<()>)>>,
}

impl Writer {
    fn send(&self, path: PathBuf, body: Vec<u8>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new().name("cache-writer".into()).spawn(move || {
                let mut made = HashSet::new();
                for (path, body) in rx {
                    write(&path, &body, &mut made);
                }
            });
            match spawned {
                Ok(handle) => *state = Some((tx, handle)),
                // No thread: write here, as a cache that cannot be
                // written only costs a refetch.
                Err(_) => return write(&path, &body, &mut HashSet::new()),
            }
        }
        if let Some((tx, _)) = state.as_ref() {
            let _ = tx.send((path, body));
        }
    }

    /// Waits for every entry handed over so far.
    fn flush(&self) {
        let taken = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, handle)) = taken {
            drop(tx);
            let _ = handle.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache {
            dir,
            writer: Arc::default(),
        }
    }

    /// Waits until every entry put so far is written (or given up on).
    /// Dropping the last clone does the same.
    pub fn flush(&self) {
        self.writer.flush();
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
        self.writer.send(self.path("manifests", digest), raw);
    }

    pub fn get_blob(&self, digest: &Digest) -> Option<Bytes> {
        let raw = std::fs::read(self.path("blobs", digest)).ok()?;
        digest.verifies(&raw).then(|| Bytes::from(raw))
    }

    pub fn put_blob(&self, digest: &Digest, body: &[u8]) {
        self.writer.send(self.path("blobs", digest), body.to_vec());
    }
}

/// What a cache entry is: content addressed by digest, either a manifest
/// (with its media type) or a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Manifest,
    Blob,
}

/// One entry of a pack: the media type (empty for a blob) and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub media_type: String,
    pub body: Bytes,
}

/// The entries of a pack, by kind and digest (not verified yet).
pub type PackEntries = HashMap<(Kind, Digest), Entry>;

/// A pack larger than this is not read (a scan rewrites it).
const PACK_LIMIT: u64 = 512 << 20;
const PACK_MAGIC: &[u8] = b"image-lifecycle pack 1\n";

impl Cache {
    fn pack_path(&self, repository: &str) -> PathBuf {
        let key = Digest::sha256_of(repository.as_bytes());
        self.dir.join("packs").join(key.encoded())
    }

    /// The pack of `repository` (`registry/repository`); empty when there
    /// is none or it cannot be read. Entries are not verified here.
    pub fn read_pack(&self, repository: &str) -> PackEntries {
        let path = self.pack_path(repository);
        let fits = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= PACK_LIMIT);
        if !fits {
            return PackEntries::new();
        }
        std::fs::read(&path).map(|raw| decode_pack(&raw)).unwrap_or_default()
    }

    /// Replaces the pack of `repository` with `entries` (in the background,
    /// atomically). Entries too many for one pack are written one file
    /// each instead, and the pack is removed.
    pub fn write_pack(&self, repository: &str, entries: &PackEntries) {
        let packed = encode_pack(entries);
        if packed.len() as u64 <= PACK_LIMIT {
            return self.writer.send(self.pack_path(repository), packed);
        }
        let _ = std::fs::remove_file(self.pack_path(repository));
        for ((kind, digest), e) in entries {
            match kind {
                Kind::Manifest => self.put_manifest(digest, &e.media_type, &e.body),
                Kind::Blob => self.put_blob(digest, &e.body),
            }
        }
    }
}

/// `PACK_MAGIC`, then per entry: `m` or `b`, the digest, the media type
/// and the body length, each ending in a newline, then the body.
fn encode_pack(entries: &PackEntries) -> Vec<u8> {
    let mut keys: Vec<&(Kind, Digest)> = entries.keys().collect();
    keys.sort_by(|a, b| (a.1.encoded(), a.0 == Kind::Blob).cmp(&(b.1.encoded(), b.0 == Kind::Blob)));
    let size: usize = entries.values().map(|e| e.body.len() + e.media_type.len() + 100).sum();
    let mut out = Vec::with_capacity(PACK_MAGIC.len() + size);
    out.extend_from_slice(PACK_MAGIC);
    for key in keys {
        let e = &entries[key];
        if e.media_type.contains('\n') {
            continue;
        }
        let kind = match key.0 {
            Kind::Manifest => 'm',
            Kind::Blob => 'b',
        };
        out.extend_from_slice(format!("{kind}\n{}\n{}\n{}\n", key.1, e.media_type, e.body.len()).as_bytes());
        out.extend_from_slice(&e.body);
    }
    out
}

/// The entries of `raw` up to the first that does not parse.
fn decode_pack(raw: &[u8]) -> PackEntries {
    let mut entries = PackEntries::new();
    let Some(mut rest) = raw.strip_prefix(PACK_MAGIC) else {
        return entries;
    };
    fn line<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let text = std::str::from_utf8(&rest[..nl]).ok()?;
        *rest = &rest[nl + 1..];
        Some(text)
    }
    while !rest.is_empty() {
        let mut parse = || -> Option<((Kind, Digest), Entry)> {
            let kind = match line(&mut rest)? {
                "m" => Kind::Manifest,
                "b" => Kind::Blob,
                _ => return None,
            };
            let digest: Digest = line(&mut rest)?.parse().ok()?;
            let media_type = line(&mut rest)?.to_string();
            let len: usize = line(&mut rest)?.parse().ok()?;
            if len > rest.len() {
                return None;
            }
            let body = Bytes::copy_from_slice(&rest[..len]);
            rest = &rest[len..];
            Some(((kind, digest), Entry { media_type, body }))
        };
        match parse() {
            Some((k, e)) => {
                entries.insert(k, e);
            }
            None => break,
        }
    }
    entries
}

/// Best effort: a cache that cannot be written only costs a refetch.
/// `made` holds the directories already known to exist.
fn write(path: &Path, body: &[u8], made: &mut HashSet<PathBuf>) {
    let Some(dir) = path.parent() else { return };
    if !made.contains(dir) {
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        made.insert(dir.to_path_buf());
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
        c.flush();
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
        c.flush();
        assert_eq!(&c.get_blob(&d).unwrap()[..], &body[..]);
        std::fs::write(dir.path().join("blobs/sha256").join(d.encoded()), b"x").unwrap();
        assert!(c.get_blob(&d).is_none());
    }

    #[test]
    fn packs_round_trip_and_a_damaged_pack_keeps_what_parses() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path().into());
        assert!(c.read_pack("reg/none").is_empty());
        let mut entries = PackEntries::new();
        for i in 0..50 {
            let body = Bytes::from(format!("{{\"n\":{i}}}\n\nwith newlines\n"));
            let kind = if i % 2 == 0 { Kind::Manifest } else { Kind::Blob };
            let media_type = if kind == Kind::Manifest {
                "application/vnd.oci.image.manifest.v1+json"
            } else {
                ""
            };
            entries.insert(
                (kind, Digest::sha256_of(&body)),
                Entry {
                    media_type: media_type.into(),
                    body,
                },
            );
        }
        c.write_pack("reg/a", &entries);
        c.flush();
        assert_eq!(c.read_pack("reg/a"), entries);
        assert!(c.read_pack("reg/b").is_empty(), "one pack per repository");
        // Cut anywhere: the entries before the cut survive, nothing panics.
        let raw = encode_pack(&entries);
        for cut in (0..raw.len()).step_by(7) {
            let got = decode_pack(&raw[..cut]);
            assert!(got.len() <= entries.len());
            for (k, e) in &got {
                assert_eq!(entries.get(k), Some(e));
            }
        }
        assert_eq!(decode_pack(&raw).len(), 50);
        assert!(decode_pack(b"not a pack").is_empty());
    }

    #[test]
    fn dropping_the_last_clone_waits_for_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let bodies: Vec<Vec<u8>> = (0..200).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
        {
            let c = Cache::new(dir.path().into());
            let clone = c.clone();
            for b in &bodies {
                clone.put_blob(&Digest::sha256_of(b), b);
            }
            drop(clone);
        }
        let c = Cache::new(dir.path().into());
        for b in &bodies {
            assert_eq!(c.get_blob(&Digest::sha256_of(b)).as_deref(), Some(&b[..]));
        }
    }
}
