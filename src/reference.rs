//! Image references, tags and digests, parsed once into types.
//!
//! Grammar (as docker and the OCI distribution spec use it):
//! `[HOST[:PORT]/]REPO[:TAG][@DIGEST]`. The host is recognised as docker does:
//! the first path component is a host when it contains `.` or `:` or is
//! `localhost`; otherwise the reference is on Docker Hub (`docker.io`, with
//! `library/` added to single-component names). The binaries' arguments go
//! through [`Reference::parse_with_host`], which refuses a reference without
//! a host rather than sending it to Docker Hub.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Why a reference, tag or digest was refused. Messages name the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid registry host `{0}`")]
    InvalidHost(String),
    #[error("invalid repository name `{0}`: components are lower-case [a-z0-9] joined by `.`, `_`, `__` or `-`")]
    InvalidRepository(String),
    #[error("invalid tag `{0}`: a tag is [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")]
    InvalidTag(String),
    #[error("invalid digest `{0}`: expected `algorithm:hex`, sha256 with 64 lower-case hex digits")]
    InvalidDigest(String),
    #[error("image reference `{0}` is longer than 255 characters")]
    TooLong(String),
    #[error(
        "image reference `{0}` names no registry host (its first part must be one, with a `.` or `:`, or \
         `localhost`, and Docker Hub is written `docker.io/…`)"
    )]
    NoHost(String),
}

/// A content digest, `algorithm:encoded`. `sha256` and `sha512` are checked
/// for length and lower-case hex; other registered-looking algorithms are
/// accepted by grammar only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    algorithm: String,
    encoded: String,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let hash = Sha256::digest(bytes);
        let mut encoded = String::with_capacity(64);
        for b in hash {
            use std::fmt::Write;
            let _ = write!(encoded, "{b:02x}");
        }
        Digest {
            algorithm: "sha256".into(),
            encoded,
        }
    }

    /// Whether `bytes` hash to this digest. Algorithms other than sha256 and
    /// sha512 cannot be verified and count as a mismatch.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        match self.algorithm.as_str() {
            "sha256" => Digest::sha256_of(bytes) == *self,
            "sha512" => {
                use sha2::Sha512;
                let hash = Sha512::digest(bytes);
                let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                hex == self.encoded
            }
            _ => false,
        }
    }

    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    pub fn encoded(&self) -> &str {
        &self.encoded
    }

    /// The first `n` characters of the encoded part, for compact display.
    pub fn short(&self, n: usize) -> &str {
        &self.encoded[..n.min(self.encoded.len())]
    }
}

/// Longest digest accepted (`algorithm:encoded`); sha512 takes 135.
pub const MAX_DIGEST_LEN: usize = 1024;

/// Longest text parsed as a reference at all.
const MAX_REFERENCE_LEN: usize = 4096;

impl FromStr for Digest {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ReferenceError::InvalidDigest(s.to_string());
        if s.len() > MAX_DIGEST_LEN {
            return Err(bad());
        }
        let (algorithm, encoded) = s.split_once(':').ok_or_else(bad)?;
        let alg_ok = !algorithm.is_empty()
            && algorithm
                .split(['+', '.', '_', '-'])
                .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        let enc_ok = !encoded.is_empty()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
        if !alg_ok || !enc_ok {
            return Err(bad());
        }
        let lower_hex = |len: usize| {
            encoded.len() == len
                && encoded
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        match algorithm {
            "sha256" if !lower_hex(64) => return Err(bad()),
            "sha512" if !lower_hex(128) => return Err(bad()),
            _ => {}
        }
        Ok(Digest {
            algorithm: algorithm.into(),
            encoded: encoded.into(),
        })
    }
}

impl TryFrom<String> for Digest {
    type Error = ReferenceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.encoded)
    }
}

/// A tag, per the OCI grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest tag the OCI grammar allows.
pub const TAG_MAX_LEN: usize = 128;

/// Whether `s` is made of the tag characters `[A-Za-z0-9_][A-Za-z0-9._-]*`
/// and at most `max_len` bytes long. References are held to the grammar's
/// [`TAG_MAX_LEN`]; names a registry lists may be longer (ECR allows 300).
pub fn is_tag_like(s: &str, max_len: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max_len
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for Tag {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_tag_like(s, TAG_MAX_LEN) {
            Ok(Tag(s.to_string()))
        } else {
            Err(ReferenceError::InvalidTag(s.to_string()))
        }
    }
}

impl TryFrom<String> for Tag {
    type Error = ReferenceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The registry host of Docker Hub as references name it.
pub const DOCKER_HUB: &str = "docker.io";

/// An image reference: registry host, repository, and optionally a tag
/// and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `HOST[:PORT]` as written (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path, e.g. `rednaw/hello-world`.
    pub repository: String,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// A reference to a repository, without tag or digest.
    pub fn repository(registry: &str, repository: &str) -> Result<Reference, ReferenceError> {
        validate_host(registry)?;
        validate_repository(repository)?;
        Ok(Reference {
            registry: registry.into(),
            repository: repository.into(),
            tag: None,
            digest: None,
        })
    }

    /// `registry/repository`, the image name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository, without tag or digest.
    pub fn repo_only(&self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: Tag) -> Reference {
        Reference {
            tag: Some(tag),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository with another digest and no tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The host that serves the registry API (Docker Hub's API host differs
    /// from the name references use).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }
}

/// The host that serves the registry API for `registry`.
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB || registry == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // Only the name is limited (255, below); this bound only keeps absurd
        // input from being worked on. It is far above the longest valid
        // reference (name, tag of 128, digest of at most MAX_DIGEST_LEN).
        if s.len() > MAX_REFERENCE_LEN {
            return Err(ReferenceError::TooLong(s.to_string()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // Host: the first component if it looks like one.
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') => {
                (first.to_string(), path)
            }
            _ => (DOCKER_HUB.to_string(), rest),
        };
        // Tag: after the last `:` of the path (the host's port is gone by now).
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) => (repo, Some(tag.parse::<Tag>()?)),
            None => (path, None),
        };
        validate_host(&registry)?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        validate_repository(&repository)?;
        if registry.len() + 1 + repository.len() > 255 {
            return Err(ReferenceError::TooLong(s.to_string()));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// Parses a reference that writes its registry host out, as the
    /// binaries' arguments must (DESIGN.md: `HOST[:PORT]/REPO[:TAG][@DIGEST]`):
    /// `acme/web` or `nginx` would be Docker Hub to docker, but against a
    /// production registry a guessed host is a mistake, so it is refused.
    pub fn parse_with_host(s: &str) -> Result<Reference, ReferenceError> {
        let r: Reference = s.parse()?;
        match s.strip_prefix(r.registry.as_str()) {
            Some(rest) if rest.starts_with('/') => Ok(r),
            _ => Err(ReferenceError::NoHost(s.to_string())),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Checks `HOST[:PORT]`, `[IPv6]:PORT`.
pub fn validate_host(host: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidHost(host.to_string());
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match after {
            "" => return Ok(()),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u32>().map_or(true, |p| p > 65535))
    {
        return Err(bad());
    }
    if let Some(name) = name {
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// Checks a repository path: `/`-separated lower-case components.
pub fn validate_repository(repo: &str) -> Result<(), ReferenceError> {
    let ok = !repo.is_empty() && repo.split('/').all(valid_path_component);
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidRepository(repo.to_string()))
    }
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Whether plain HTTP is used for `registry` (`HOST[:PORT]`): loopback
/// (`localhost`, `127.0.0.0/8`, `[::1]`) as docker does, or a host named in
/// `extra` (by host, or host and port).
pub fn is_plain_http(registry: &str, extra: &[String]) -> bool {
    let host = host_without_port(registry);
    // Host names are case-insensitive (`LOCALHOST`, `--plain-http VM`); an
    // IPv4 address written as IPv6 (`[::ffff:127.0.0.1]`) is that address.
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
        && ip.to_canonical().is_loopback()
    {
        return true;
    }
    extra
        .iter()
        .any(|e| e.eq_ignore_ascii_case(registry) || e.eq_ignore_ascii_case(host))
}

/// The host part of `HOST[:PORT]` (brackets of IPv6 kept).
pub fn host_without_port(registry: &str) -> &str {
    if registry.starts_with('[') {
        match registry.find(']') {
            Some(i) => &registry[..=i],
            None => registry,
        }
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_full_reference() {
        let r: Reference = format!("registry.rednaw.nl/rednaw/hello-world:eb53023@{D}")
            .parse()
            .unwrap();
        assert_eq!(r.registry, "registry.rednaw.nl");
        assert_eq!(r.repository, "rednaw/hello-world");
        assert_eq!(r.tag.as_ref().unwrap().as_str(), "eb53023");
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(
            r.to_string(),
            format!("registry.rednaw.nl/rednaw/hello-world:eb53023@{D}")
        );
        assert_eq!(r.name(), "registry.rednaw.nl/rednaw/hello-world");
    }

    #[test]
    fn host_with_port_is_not_a_tag() {
        let r: Reference = "127.0.0.1:5000/acme/web".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/web");
        assert!(r.tag.is_none());
        let r: Reference = "localhost:5000/web:v1".parse().unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost:5000", "web"));
        assert_eq!(r.tag.unwrap().as_str(), "v1");
        let r: Reference = "[::1]:5000/web:v1".parse().unwrap();
        assert_eq!(r.registry, "[::1]:5000");
    }

    #[test]
    fn docker_hub_defaults() {
        let r: Reference = "nginx:1.25".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r: Reference = "rednaw/hello-world".parse().unwrap();
        assert_eq!(r.repository, "rednaw/hello-world");
    }

    #[test]
    fn arguments_write_their_registry_host() {
        for ok in [
            "registry.example.com/acme/web:v1",
            "127.0.0.1:5000/acme/web",
            "localhost/web",
            "[::1]:5000/web",
            "docker.io/nginx:1.25",
        ] {
            assert!(Reference::parse_with_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "acme/web:v1",
            "nginx",
            "127.0.0.1:5000",
            "web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(
                Reference::parse_with_host(bad),
                Err(ReferenceError::NoHost(bad.to_string())),
                "{bad}"
            );
        }
        // Other errors stay what they are.
        assert!(matches!(
            Reference::parse_with_host("reg.example/Acme"),
            Err(ReferenceError::InvalidRepository(_))
        ));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Registry.example.com/UPPER/case",
            "example.com/repo:bad tag",
            "example.com/repo:-leadingdash",
            "example.com/repo@sha256:abc",
            &format!("example.com/repo@sha256:{}", "A".repeat(64)),
            "example.com/repo/",
            "example.com//repo",
            "example.com/re..po",
            "exa_mple.com/repo",
            "example.com:99999/repo",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "accepted {bad:?}");
        }
        let long_tag = format!("example.com/repo:{}", "a".repeat(129));
        assert!(matches!(
            long_tag.parse::<Reference>(),
            Err(ReferenceError::InvalidTag(_))
        ));
    }

    #[test]
    fn long_valid_references_parse_and_round_trip() {
        // Found while fuzzing the Display∘FromStr round trip: a length check
        // on the whole text (255 + 72) refused valid references with a long
        // tag, and Docker Hub names printed too long to read back.
        // A name of 255 and a tag of 128 are within the grammar, with a digest.
        let name = format!("r.example/{}", "a".repeat(245));
        let full = format!("{name}:{}@{D}", "t".repeat(128));
        let r: Reference = full.parse().unwrap();
        assert_eq!(r.to_string(), full);
        // Docker Hub names print longer than written; they must read back.
        let short = format!("{}:{}@{D}", "a".repeat(200), "t".repeat(50));
        let r: Reference = short.parse().unwrap();
        assert_eq!(r.to_string().parse::<Reference>(), Ok(r.clone()), "{r}");
        // Absurd lengths are still refused before any work.
        assert!(matches!(
            "a".repeat(5000).parse::<Reference>(),
            Err(ReferenceError::TooLong(_))
        ));
        assert!(format!("x:{}", "a".repeat(2000)).parse::<Digest>().is_err());
    }

    #[test]
    fn digest_validation() {
        assert!(D.parse::<Digest>().is_ok());
        assert!("sha256:ABCDEF".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "a".repeat(63)).parse::<Digest>().is_err());
        assert!(format!("sha512:{}", "a".repeat(128)).parse::<Digest>().is_ok());
        assert!("md5".parse::<Digest>().is_err());
        let d = Digest::sha256_of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(d.verifies(b"hello"));
        assert!(!d.verifies(b"hello!"));
    }

    #[test]
    fn tag_grammar() {
        assert!("eb53023".parse::<Tag>().is_ok());
        assert!("_x.y-z".parse::<Tag>().is_ok());
        assert!(".x".parse::<Tag>().is_err());
        assert!("a/b".parse::<Tag>().is_err());
        assert!("a".repeat(128).parse::<Tag>().is_ok());
    }

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        assert!(is_plain_http("localhost:5000", &[]));
        assert!(is_plain_http("127.0.0.1:5000", &[]));
        assert!(is_plain_http("127.3.4.5", &[]));
        assert!(is_plain_http("[::1]:5000", &[]));
        assert!(!is_plain_http("registry.example.com", &[]));
        assert!(!is_plain_http("10.0.0.1:5000", &[]));
        assert!(is_plain_http("reg.lan:5000", &["reg.lan".into()]));
        assert!(is_plain_http("reg.lan:5000", &["reg.lan:5000".into()]));
        assert!(!is_plain_http("reg.lan:5001", &["reg.lan:5000".into()]));
        assert!(is_plain_http("LOCALHOST:5000", &[]));
        assert!(is_plain_http("[::ffff:127.0.0.1]:5000", &[]));
        assert!(!is_plain_http("[::ffff:10.0.0.1]:5000", &[]));
        assert!(is_plain_http("VM:5000", &["vm".into()]));
        assert!(is_plain_http("vm:5000", &["VM:5000".into()]));
    }
}
