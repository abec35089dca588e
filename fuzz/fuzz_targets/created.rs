//! The `created` label parser (`metadata::normalize_created`) on arbitrary
//! text: it never panics; a value it normalises prints as RFC 3339 UTC with
//! whole seconds that reads back as the same instant (so it is idempotent);
//! anything else is kept, trimmed, as written.
#![no_main]

use chrono::{DateTime, Utc};
use image_lifecycle::metadata::{Created, ImageMetadata, LABEL_CREATED, format_utc, normalize_created};
use libfuzzer_sys::fuzz_target;

fn check_normalised(raw: &str, t: DateTime<Utc>) {
    let shown = format_utc(t);
    // `YYYY-MM-DDTHH:MM:SSZ`, exactly, within RFC 3339's four-digit years.
    assert_eq!(shown.len(), 20, "`{raw}` normalised to `{shown}`");
    // It reads back, as the same instant (a leap second stays one), so
    // normalising is idempotent.
    match normalize_created(&shown) {
        Created::Rfc3339(again) => {
            assert_eq!(format_utc(again), shown, "`{raw}` → `{shown}`");
            assert_eq!(again.timestamp(), t.timestamp(), "`{raw}` → `{shown}`");
        }
        other => panic!("`{raw}` normalised to `{shown}`, which reads back as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match normalize_created(raw) {
        Created::Rfc3339(t) | Created::Legacy(t) => check_normalised(raw, t),
        Created::Raw(kept) => assert_eq!(kept, raw.trim()),
    }
    // Through the label reader: `created` is either a time that
    // `created_time` reads back or kept raw with a warning, never lost.
    let labels = [(LABEL_CREATED.to_string(), raw.to_string())].into();
    let meta = ImageMetadata::from_labels(Some(&labels), None);
    let created = meta.created.as_deref().expect("a present label is never dropped");
    match normalize_created(raw) {
        Created::Raw(_) => {
            assert_eq!(created, raw.trim());
            assert!(meta.warnings.iter().any(|w| w.contains("not an RFC 3339 time")));
        }
        Created::Rfc3339(t) | Created::Legacy(t) => {
            assert_eq!(meta.created_time().map(format_utc), Some(format_utc(t)));
        }
    }
});
