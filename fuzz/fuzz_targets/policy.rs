//! The cleanup policy reader (`Policy::from_str`) on arbitrary text: it
//! never panics, and a policy it accepts holds what its docs promise
//! (workspaces, possibly none, listed once each, `protect_history` at least 1, exact keys
//! are valid repository names and select their own entry, periods print
//! back as the same period).
#![no_main]

use image_lifecycle::policy::{Period, Policy, Retention};
use image_lifecycle::reference::validate_repository;
use libfuzzer_sys::fuzz_target;

fn check_retention(r: &Retention) {
    assert!(r.protect_history >= 1, "protect_history {}", r.protect_history);
    let p = r.keep_younger_than;
    let shown = p.to_string();
    assert_eq!(shown.parse::<Period>(), Ok(p), "period `{shown}` does not read back");
    for t in &r.keep_tags {
        assert!(!t.as_str().is_empty());
    }
    // The plan serialises the retention; that must not fail.
    serde_json::to_string(r).expect("retention serialises");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = text.parse::<Policy>() else {
        return;
    };
    for (i, w) in policy.workspaces.iter().enumerate() {
        assert!(!w.trim().is_empty() && w.trim() == w, "workspace {w:?}");
        assert!(!policy.workspaces[..i].contains(w), "workspace {w:?} twice");
    }
    check_retention(&policy.defaults);
    for (i, rule) in policy.repositories.iter().enumerate() {
        check_retention(&rule.retention);
        assert!(
            !policy.repositories[..i].iter().any(|r| r.pattern == rule.pattern),
            "entry {:?} twice",
            rule.pattern
        );
        if !rule.is_glob() {
            assert!(validate_repository(&rule.pattern).is_ok(), "{:?}", rule.pattern);
            let chosen = policy.rule_for(&rule.pattern).expect("an exact key selects an entry");
            assert_eq!(chosen.pattern, rule.pattern, "exact key beats any glob");
            assert_eq!(policy.retention_for(&rule.pattern), &rule.retention);
        }
    }
    // Any repository name gets some retention without panicking.
    for name in ["a", "rednaw/hello-world", "x/y/z"] {
        let _ = policy.retention_for(name);
    }
});
