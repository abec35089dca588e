//! CI-time image metadata: the OCI labels CI bakes into every image, read
//! from the image config (or, as a fallback, from manifest/index
//! annotations), and the normalisation of `created`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

pub const LABEL_REVISION: &str = "org.opencontainers.image.revision";
pub const LABEL_DESCRIPTION: &str = "org.opencontainers.image.description";
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
pub const LABEL_SOURCE: &str = "org.opencontainers.image.source";

/// How a warning about a missing label ends.
pub const MISSING: &str = " is missing";

/// The four CI labels every image should carry.
pub const CI_LABELS: [&str; 4] = [LABEL_REVISION, LABEL_DESCRIPTION, LABEL_CREATED, LABEL_SOURCE];

/// The metadata of one image (one digest). A missing label is `None`, with a
/// warning in `warnings`: an image that breaks the CI contract is still shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMetadata {
    /// Full git SHA (`org.opencontainers.image.revision`).
    pub revision: Option<String>,
    /// Commit subject (`org.opencontainers.image.description`).
    pub description: Option<String>,
    /// `org.opencontainers.image.created`, normalised to RFC 3339 UTC
    /// when it could be parsed, else the raw value.
    pub created: Option<String>,
    /// Repository URL (`org.opencontainers.image.source`).
    pub source: Option<String>,
    /// Problems found while reading the labels (missing label, legacy or
    /// unparseable `created`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The image config could not be read as JSON, so its labels are
    /// unknown (not missing); the reason is in `warnings`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub labels_unreadable: bool,
}

impl ImageMetadata {
    /// Reads the CI labels from `labels` (config labels), falling back per
    /// key to `annotations` (manifest or index annotations).
    pub fn from_labels(
        labels: Option<&BTreeMap<String, String>>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> ImageMetadata {
        let get = |key: &str| -> Option<String> {
            labels
                .and_then(|l| l.get(key))
                .or_else(|| annotations.and_then(|a| a.get(key)))
                .cloned()
        };
        let mut meta = ImageMetadata {
            revision: get(LABEL_REVISION),
            description: get(LABEL_DESCRIPTION),
            created: None,
            source: get(LABEL_SOURCE),
            warnings: Vec::new(),
            labels_unreadable: false,
        };
        for (key, value) in [
            (LABEL_REVISION, &meta.revision),
            (LABEL_DESCRIPTION, &meta.description),
            (LABEL_SOURCE, &meta.source),
        ] {
            if value.is_none() {
                meta.warnings.push(format!("label `{key}`{MISSING}"));
            }
        }
        match get(LABEL_CREATED) {
            None => meta.warnings.push(format!("label `{LABEL_CREATED}`{MISSING}")),
            Some(raw) => match normalize_created(&raw) {
                Created::Rfc3339(t) => meta.created = Some(format_utc(t)),
                Created::Legacy(t) => {
                    meta.warnings.push(format!(
                        "label `{LABEL_CREATED}` is `{raw}`, without a timezone; read as UTC"
                    ));
                    meta.created = Some(format_utc(t));
                }
                Created::Raw(r) => {
                    meta.warnings.push(format!(
                        "label `{LABEL_CREATED}` is `{r}`, not an RFC 3339 time; kept as is"
                    ));
                    meta.created = Some(r);
                }
            },
        }
        meta
    }

    /// `created` as a time, when it was parseable.
    pub fn created_time(&self) -> Option<DateTime<Utc>> {
        self.created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether every CI label is present.
    pub fn is_complete(&self) -> bool {
        self.revision.is_some() && self.description.is_some() && self.created.is_some() && self.source.is_some()
    }
}

/// A `created` value after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// RFC 3339 with an offset, converted to UTC.
    Rfc3339(DateTime<Utc>),
    /// The legacy CI form `YYYY-MM-DD HH:MM:SS`, read as UTC.
    Legacy(DateTime<Utc>),
    /// Anything else, kept as written (trimmed).
    Raw(String),
}

/// Parses a `created` value: RFC 3339 (any offset, fractional seconds
/// allowed) or the legacy CI form `YYYY-MM-DD HH:MM:SS` (taken as UTC).
pub fn normalize_created(raw: &str) -> Created {
    let s = raw.trim();
    // RFC 3339 has four-digit years: a time whose UTC year falls outside
    // them (`0000-01-01T00:30:00+01:00`) could not be written back as one.
    let writable = |t: DateTime<Utc>| (0..=9999).contains(&t.year());
    match parse_created(s) {
        Created::Rfc3339(t) | Created::Legacy(t) if !writable(t) => Created::Raw(s.to_string()),
        other => other,
    }
}

fn parse_created(s: &str) -> Created {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Created::Rfc3339(t.with_timezone(&Utc));
    }
    // RFC 3339 allows a space instead of `T`; chrono's parser does not.
    if s.len() > 10 && s.as_bytes()[10] == b' ' {
        let with_t = format!("{}T{}", &s[..10], &s[11..]);
        if let Ok(t) = DateTime::parse_from_rfc3339(&with_t) {
            return Created::Rfc3339(t.with_timezone(&Utc));
        }
    }
    // Exactly `YYYY-MM-DD HH:MM:SS` (chrono alone would take a one-digit
    // hour); other zoneless forms stay raw, as DESIGN.md says.
    let legacy_shape = s.len() == 19
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if legacy_shape && let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Created::Legacy(t.and_utc());
    }
    Created::Raw(s.to_string())
}

/// RFC 3339 UTC with whole seconds: `2026-01-25T01:01:33Z`.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn created_normalisation() {
        assert_eq!(
            normalize_created("2026-01-25T01:01:33Z"),
            Created::Rfc3339(utc("2026-01-25T01:01:33Z"))
        );
        assert_eq!(
            normalize_created("2026-01-25T03:01:33+02:00"),
            Created::Rfc3339(utc("2026-01-25T01:01:33Z"))
        );
        assert_eq!(
            normalize_created("2026-01-24T20:01:33-05:00"),
            Created::Rfc3339(utc("2026-01-25T01:01:33Z"))
        );
        assert_eq!(
            normalize_created("2026-01-25T01:01:33.123456789Z"),
            Created::Rfc3339(utc("2026-01-25T01:01:33.123456789Z"))
        );
        assert_eq!(
            normalize_created("2026-01-25 01:01:33+00:00"),
            Created::Rfc3339(utc("2026-01-25T01:01:33Z"))
        );
        assert_eq!(
            normalize_created("2026-01-25 01:01:33"),
            Created::Legacy(utc("2026-01-25T01:01:33Z"))
        );
        assert_eq!(
            normalize_created(" 2026-01-25 01:01:33 "),
            Created::Legacy(utc("2026-01-25T01:01:33Z"))
        );
        assert_eq!(normalize_created("yesterday"), Created::Raw("yesterday".into()));
        // Only the legacy CI form is read without a zone.
        for raw in [
            "2026-01-25T01:01:33",
            "2026-01-25 1:01:33",
            "2026-1-25 01:01:33",
            "2026-01-25  01:01:33",
        ] {
            assert_eq!(normalize_created(raw), Created::Raw(raw.into()), "{raw}");
        }
        assert_eq!(
            normalize_created("2026-13-25T01:01:33Z"),
            Created::Raw("2026-13-25T01:01:33Z".into())
        );
        assert_eq!(format_utc(utc("2026-01-25T01:01:33.9Z")), "2026-01-25T01:01:33Z");
    }

    #[test]
    fn normalised_times_read_back() {
        // Found while writing the `created` fuzz target's invariant:
        // `0000-01-01T00:30:00+01:00` normalised to `-0001-12-31T23:30:00Z`,
        // which is not RFC 3339 (and then counted as undated).
        assert_eq!(
            normalize_created("0000-01-01T00:30:00+01:00"),
            Created::Raw("0000-01-01T00:30:00+01:00".into())
        );
        for raw in [
            "0000-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "2016-12-31T23:59:60Z",
            "2016-12-31 23:59:60",
            "+12345-01-01 00:00:00",
        ] {
            match normalize_created(raw) {
                Created::Rfc3339(t) | Created::Legacy(t) => {
                    let shown = format_utc(t);
                    assert!(
                        matches!(normalize_created(&shown), Created::Rfc3339(_)),
                        "{raw} -> {shown} does not read back"
                    );
                }
                Created::Raw(_) => {}
            }
        }
    }

    #[test]
    fn labels_win_over_annotations_and_missing_is_a_warning() {
        let labels: BTreeMap<String, String> = [
            (LABEL_REVISION.to_string(), "abc".to_string()),
            (LABEL_CREATED.into(), "2026-01-25 01:01:33".into()),
        ]
        .into();
        let annotations: BTreeMap<String, String> = [
            (LABEL_REVISION.to_string(), "from-annotation".to_string()),
            (LABEL_DESCRIPTION.into(), "desc: \"quoted\"".into()),
        ]
        .into();
        let m = ImageMetadata::from_labels(Some(&labels), Some(&annotations));
        assert_eq!(m.revision.as_deref(), Some("abc"));
        assert_eq!(m.description.as_deref(), Some("desc: \"quoted\""));
        assert_eq!(m.created.as_deref(), Some("2026-01-25T01:01:33Z"));
        assert_eq!(m.source, None);
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
        assert!(m.warnings.iter().any(|w| w.contains(LABEL_SOURCE)));
        assert!(m.warnings.iter().any(|w| w.contains("read as UTC")));
        assert!(!m.is_complete());
        assert_eq!(m.created_time(), Some(utc("2026-01-25T01:01:33Z")));
    }

    #[test]
    fn no_labels_at_all() {
        let m = ImageMetadata::from_labels(None, None);
        assert_eq!(
            m,
            ImageMetadata {
                warnings: m.warnings.clone(),
                ..Default::default()
            }
        );
        assert_eq!(m.warnings.len(), 4);
        assert_eq!(m.created_time(), None);
    }
}
