//! The image reference parser (`Reference`, `Digest`, `Tag` `FromStr`) on
//! arbitrary text: it never panics, and whatever it accepts prints back as
//! text that parses to the same value (Display∘FromStr is the identity on
//! parsed values), within the documented limits.
#![no_main]

use image_lifecycle::reference::{Digest, Reference, Tag, validate_host, validate_repository};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = s.parse::<Reference>() {
        let shown = r.to_string();
        let again: Reference = shown
            .parse()
            .unwrap_or_else(|e| panic!("`{s}` parsed to `{shown}`, which does not parse: {e}"));
        assert_eq!(again, r, "round trip of `{s}` via `{shown}`");
        assert_eq!(again.to_string(), shown);
        // What the parser accepted satisfies the grammar checks on its own.
        assert!(validate_host(&r.registry).is_ok(), "{r:?}");
        assert!(validate_repository(&r.repository).is_ok(), "{r:?}");
        assert!(r.name().len() <= 255, "name longer than 255: {}", r.name());
        // A repository reference (what deploy-info `image` holds) round-trips too.
        let repo = Reference::repository(&r.registry, &r.repository).expect("parsed parts are valid");
        assert_eq!(repo.to_string(), r.name());
        assert_eq!(r.name().parse::<Reference>().as_ref(), Ok(&repo));
    }
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s, "a digest is kept as written");
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d.clone()));
        assert!(d.short(12).len() <= 12);
        // Only sha256/sha512 can be verified; nothing else ever verifies.
        if !matches!(d.algorithm(), "sha256" | "sha512") {
            assert!(!d.verifies(data));
        }
    }
    if let Ok(t) = s.parse::<Tag>() {
        assert_eq!(t.as_str(), s);
        assert!(!s.is_empty() && s.len() <= 128);
    }
});
