//! `WWW-Authenticate` challenges and the token they lead to.
//!
//! Registries answer 401 with either `Basic realm=…` (send the credentials
//! on every request) or `Bearer realm=…,service=…,scope=…` (fetch a token
//! from the realm for that scope, then send it). Tokens are cached per
//! registry and scope until they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A parsed authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first supported challenge of a `WWW-Authenticate` value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let realm = params.get("realm")?.clone();
    Some(Challenge::Bearer {
        realm,
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key2=value2` (quoted values may hold commas).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// A token endpoint's answer.
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// How a registry wants to be authenticated, learned from its first challenge.
#[derive(Debug, Clone)]
pub enum Scheme {
    Basic,
    Bearer,
}

/// Cached bearer tokens per (registry, scope).
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: HashMap<(String, String), (crate::credentials::Secret, Instant)>,
}

impl TokenCache {
    pub fn get(&self, registry: &str, scope: &str) -> Option<crate::credentials::Secret> {
        let (token, until) = self.tokens.get(&(registry.to_string(), scope.to_string()))?;
        (Instant::now() < *until).then(|| token.clone())
    }

    pub fn insert(&mut self, registry: &str, scope: &str, token: crate::credentials::Secret, expires_in: Option<u64>) {
        // Distribution's default lifetime is 60 s; renew a little early. The
        // lifetime comes from the token server: at most a day is believed.
        let secs = expires_in.unwrap_or(60).clamp(10, 86_400);
        let until = Instant::now() + Duration::from_secs(secs * 9 / 10);
        self.tokens
            .insert((registry.to_string(), scope.to_string()), (token, until));
    }

    /// Every token held, expired or not (for redaction).
    pub fn secrets(&self) -> impl Iterator<Item = &crate::credentials::Secret> {
        self.tokens.values().map(|(t, _)| t)
    }

    pub fn remove(&mut self, registry: &str, scope: &str) {
        self.tokens.remove(&(registry.to_string(), scope.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn absurd_token_lifetimes_are_clamped() {
        // Found by tests/test_secrets.rs (absurd_token_lifetimes_never_panic):
        // `expires_in: 18446744073709551615` overflowed and panicked.
        let mut c = TokenCache::default();
        let t = crate::credentials::Secret::new("t");
        for expires_in in [u64::MAX, u64::MAX / 9 + 1, 0] {
            c.insert("r", "s", t.clone(), Some(expires_in));
            assert_eq!(c.get("r", "s"), Some(t.clone()), "{expires_in}");
        }
    }
}
