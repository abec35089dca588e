//! The deploy-info reader (`deploy_info::parse_record` and `parse_history`)
//! on arbitrary text, as found in a hostile or damaged
//! `deploy-info.yml`/`deploy-history.yml`: it never panics, a refusal names
//! the file, and whatever it accepts renders back (through the writer's own
//! renderer) to text that parses to the same records.
#![no_main]

use std::path::Path;

use image_lifecycle::deploy_info::{DeployInfoError, parse_history, parse_record, render_history, render_record};
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/opt/fuzz/app/deploy-info.yml";

fn names_the_file(e: &DeployInfoError) {
    assert!(e.to_string().contains(PATH), "error does not name the file: {e}");
    assert_eq!(e.path(), Some(Path::new(PATH)));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(PATH);
    match parse_record(text, path) {
        Ok(record) => {
            let rendered = render_record(&record);
            let again = parse_record(&rendered, path)
                .unwrap_or_else(|e| panic!("rendered record does not parse: {e}\n{rendered}"));
            assert_eq!(again, record, "record round trip via\n{rendered}");
            assert_eq!(render_record(&again), rendered, "rendering is stable");
        }
        Err(e) => names_the_file(&e),
    }
    match parse_history(text, path) {
        Ok(history) => {
            let rendered = render_history(&history);
            let again = parse_history(&rendered, path)
                .unwrap_or_else(|e| panic!("rendered history does not parse: {e}\n{rendered}"));
            assert_eq!(again, history, "history round trip via\n{rendered}");
        }
        Err(e) => names_the_file(&e),
    }
});
