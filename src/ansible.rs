//! The Ansible binary-module protocol, for the modules that run on target
//! hosts (`write_deploy_info`, `deploy_info`).
//!
//! Ansible copies the binary to the host and runs it with one argument: the
//! path of a JSON file holding the task's arguments plus `_ansible_*` keys
//! (`_ansible_check_mode`, `_ansible_diff`, …). The module prints exactly one
//! JSON object on stdout. Anything else on stdout, a crash, or a missing
//! `msg` gives the user a useless "MODULE FAILURE", so every error, even a
//! panic, ends up as `{"failed": true, "msg": "…"}` naming the argument or
//! path at fault.

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

/// Largest args file read. Arguments are facts about one deploy; anything
/// near this size is a mistake or an attack, and is refused, not parsed.
pub const MAX_ARGS_BYTES: u64 = 16 * 1024 * 1024;

/// Why the arguments of a module were refused. Messages name the argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("usage: {program} ARGS_FILE (an Ansible module: run it from Ansible, or give it a JSON file of arguments)")]
    Usage { program: String },
    #[error("cannot read the module arguments file `{path}`: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the module arguments file `{path}` is larger than {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("the module arguments file `{path}` is not a JSON object: {reason}")]
    NotJson { path: String, reason: String },
    #[error("unsupported argument{} {}; supported: {}", if .unknown.len() == 1 { "" } else { "s" }, quoted(.unknown), quoted(.supported))]
    Unknown {
        unknown: Vec<String>,
        supported: Vec<String>,
    },
    #[error("missing required argument `{0}`")]
    Missing(String),
    #[error("argument `{name}` must be {expected}, got {got}")]
    WrongType {
        name: String,
        expected: &'static str,
        got: String,
    },
    #[error("argument `{name}`: {reason}")]
    Invalid { name: String, reason: String },
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// A module's arguments, taken one by one with their expected type, so
/// that every argument is checked before the module touches anything.
#[derive(Debug, Clone, Default)]
pub struct ModuleArgs {
    values: Map<String, Value>,
    check_mode: bool,
    diff: bool,
    warnings: Vec<String>,
}

impl ModuleArgs {
    /// Reads the args file named by the first command-line argument.
    pub fn from_argv(mut argv: impl Iterator<Item = OsString>) -> Result<ModuleArgs, ArgsError> {
        let program = argv
            .next()
            .map(|p| {
                Path::new(&p)
                    .file_name()
                    .unwrap_or(p.as_os_str())
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|| "module".into());
        match (argv.next(), argv.next()) {
            (Some(path), None) => ModuleArgs::from_file(Path::new(&path)),
            _ => Err(ArgsError::Usage { program }),
        }
    }

    /// Reads an args file: a JSON object, at most [`MAX_ARGS_BYTES`].
    pub fn from_file(path: &Path) -> Result<ModuleArgs, ArgsError> {
        let shown = path.display().to_string();
        let unreadable = |e: std::io::Error| ArgsError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut text = String::new();
        file.take(MAX_ARGS_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        if text.len() as u64 > MAX_ARGS_BYTES {
            return Err(ArgsError::TooLarge {
                path: shown,
                limit: MAX_ARGS_BYTES,
            });
        }
        ModuleArgs::from_json(&text).map_err(|reason| ArgsError::NotJson { path: shown, reason })
    }

    /// Parses the JSON text of an args file. The `_ansible_*` keys this
    /// crate's modules understand are taken out; other `_ansible_*` keys are
    /// dropped, since every Ansible version adds some.
    pub fn from_json(text: &str) -> Result<ModuleArgs, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let Value::Object(map) = value else {
            return Err(format!("expected an object, got {}", type_name(&value)));
        };
        let mut args = ModuleArgs::default();
        for (key, value) in map {
            match key.as_str() {
                "_ansible_check_mode" => args.check_mode = internal_bool(&key, &value)?,
                "_ansible_diff" => args.diff = internal_bool(&key, &value)?,
                k if k.starts_with("_ansible_") => {}
                _ => {
                    args.values.insert(key, value);
                }
            }
        }
        Ok(args)
    }

    /// Builds arguments directly (for tests and library callers).
    pub fn from_map(values: Map<String, Value>, check_mode: bool, diff: bool) -> ModuleArgs {
        ModuleArgs {
            values,
            check_mode,
            diff,
            warnings: Vec::new(),
        }
    }

    /// Whether Ansible runs the task in check mode: predict, change nothing.
    pub fn check_mode(&self) -> bool {
        self.check_mode
    }

    /// Whether Ansible wants `diff.before`/`diff.after`.
    pub fn diff(&self) -> bool {
        self.diff
    }

    /// Refuses arguments the module does not know, before any is looked at,
    /// so a typo is reported as a typo and not as a missing argument.
    pub fn reject_unknown(&self, supported: &[&str]) -> Result<(), ArgsError> {
        let unknown: Vec<String> = self
            .values
            .keys()
            .filter(|k| !supported.contains(&k.as_str()))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(ArgsError::Unknown {
            unknown,
            supported: supported.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Takes an optional string argument. `null` counts as absent (deploy
    /// facts say `"tag": null` when there is none). An integer is accepted and
    /// converted with a warning, as Ansible does: YAML reads an unquoted short
    /// SHA such as `6350192` as a number.
    pub fn string(&mut self, name: &str) -> Result<Option<String>, ArgsError> {
        match self.values.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
                self.warnings.push(format!(
                    "the value {n} (type int) of argument `{name}` was converted to '{n}' (type string); \
                     quote it if it is meant to be a string"
                ));
                Ok(Some(n.to_string()))
            }
            Some(other) => Err(wrong_type(name, "a string", &other)),
        }
    }

    /// Takes a required string argument.
    pub fn required_string(&mut self, name: &str) -> Result<String, ArgsError> {
        self.string(name)?.ok_or_else(|| ArgsError::Missing(name.to_string()))
    }

    /// Takes a boolean argument: JSON `true`/`false`, or the strings and
    /// numbers Ansible accepts for booleans (`yes`, `no`, `1`, `0`, …).
    pub fn bool(&mut self, name: &str, default: bool) -> Result<bool, ArgsError> {
        match self.values.remove(name) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => ansible_bool(&value).ok_or_else(|| wrong_type(name, "a boolean", &value)),
        }
    }

    /// Takes a non-negative integer argument: a JSON integer or a string of
    /// decimal digits (what a templated value may arrive as).
    pub fn uint(&mut self, name: &str) -> Result<Option<u64>, ArgsError> {
        match self.values.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map(Some).map_err(|_| ArgsError::Invalid {
                    name: name.into(),
                    reason: format!("`{s}` is too large"),
                })
            }
            Some(other) => Err(wrong_type(name, "a non-negative integer", &other)),
        }
    }

    /// Takes a file mode: an octal string (`"0644"`, `"644"`, `"0o644"`) or
    /// an integer (YAML 1.1 reads an unquoted `0644` as the number 420).
    /// Only permission bits are allowed, `0000` to `0777`.
    pub fn mode(&mut self, name: &str) -> Result<Option<u32>, ArgsError> {
        let invalid = |reason: String| ArgsError::Invalid {
            name: name.into(),
            reason,
        };
        let mode = match self.values.remove(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(m) if m <= 0o777 => m as u32,
                Some(m) => {
                    return Err(invalid(format!(
                        "{m} is not a file mode from 0000 to 0777; quote octal modes, e.g. \"0644\""
                    )));
                }
                None => {
                    return Err(wrong_type(
                        name,
                        "an octal string such as \"0644\" or an integer",
                        &Value::Number(n),
                    ));
                }
            },
            Some(Value::String(s)) => {
                let digits = s.strip_prefix("0o").unwrap_or(&s);
                let parsed =
                    (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                        .then(|| u32::from_str_radix(digits, 8).ok())
                        .flatten();
                match parsed {
                    Some(m) if m <= 0o777 => m,
                    _ => return Err(invalid(format!("`{s}` is not an octal file mode from 0000 to 0777"))),
                }
            }
            Some(other) => {
                return Err(wrong_type(
                    name,
                    "an octal string such as \"0644\" or an integer",
                    &other,
                ));
            }
        };
        Ok(Some(mode))
    }

    /// Records a warning for the result's `warnings` list.
    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// The warnings recorded so far.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn internal_bool(key: &str, value: &Value) -> Result<bool, String> {
    ansible_bool(value).ok_or_else(|| format!("`{key}` must be a boolean, got {}", type_name(value)))
}

/// Ansible's boolean conversion (`module_utils.parsing.convert_bool`).
fn ansible_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn wrong_type(name: &str, expected: &'static str, got: &Value) -> ArgsError {
    let shown = match got {
        Value::String(s) => format!("the string `{}`", truncate(s, 64)),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("the boolean {b}"),
        other => type_name(other).to_string(),
    };
    ArgsError::WrongType {
        name: name.to_string(),
        expected,
        got: shown,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dictionary",
    }
}

/// At most `max` characters of `s`, for error messages about huge values.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A failed module run: `msg`, plus fields that help the user (`path`).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub msg: String,
    pub fields: Map<String, Value>,
}

impl Failure {
    pub fn new(msg: impl Into<String>) -> Failure {
        Failure {
            msg: msg.into(),
            fields: Map::new(),
        }
    }

    /// Adds a field to the failed result, e.g. the `path` at fault.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Failure {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// A failure whose `msg` is the error and its causes, joined as
    /// `error: caused by: cause`.
    pub fn from_error(error: &dyn std::error::Error) -> Failure {
        let mut msg = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            msg.push_str(": caused by: ");
            msg.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure::new(msg)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<ArgsError> for Failure {
    fn from(e: ArgsError) -> Failure {
        Failure::from_error(&e)
    }
}

/// Set once the result is on its way to stdout, so the panic hook never
/// prints a second object.
static PRINTED: AtomicBool = AtomicBool::new(false);

/// Runs a module: reads the args file named on the command line, calls
/// `module`, and prints its result (or failure) as the one JSON object
/// Ansible expects, with `changed` defaulting to false and the recorded
/// warnings added. Returns the exit status: 0 ok, 1 failed.
///
/// A panic hook turns even a bug into a failed result: release builds abort
/// on panic (the profile sets `panic = "abort"`), so unwinding cannot be
/// relied on to reach a `catch_unwind`.
pub fn run<F>(module: F) -> ExitCode
where
    F: FnOnce(&mut ModuleArgs) -> Result<Map<String, Value>, Failure>,
{
    run_with(std::env::args_os(), module)
}

/// [`run`] with the command line given.
fn run_with<F>(argv: impl Iterator<Item = OsString>, module: F) -> ExitCode
where
    F: FnOnce(&mut ModuleArgs) -> Result<Map<String, Value>, Failure>,
{
    install_panic_hook();
    let (result, warnings) = match ModuleArgs::from_argv(argv) {
        Ok(mut args) => {
            let result = module(&mut args);
            (result, args.warnings)
        }
        Err(e) => (Err(Failure::from(e)), Vec::new()),
    };
    let failed = result.is_err();
    print_result(result_object(result, warnings));
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The JSON object for a module's result.
pub fn result_object(result: Result<Map<String, Value>, Failure>, warnings: Vec<String>) -> Map<String, Value> {
    let mut out = Map::new();
    match result {
        Ok(fields) => {
            out.insert("changed".into(), Value::Bool(false));
            out.extend(fields);
        }
        Err(failure) => {
            out.insert("failed".into(), Value::Bool(true));
            out.insert("changed".into(), Value::Bool(false));
            out.insert("msg".into(), Value::String(failure.msg));
            out.extend(failure.fields);
        }
    }
    if !warnings.is_empty() {
        out.insert("warnings".into(), Value::from(warnings));
    }
    out
}

fn print_result(object: Map<String, Value>) {
    let text = serde_json::to_string(&Value::Object(object)).unwrap_or_else(|e| {
        serde_json::json!({"failed": true, "msg": format!("cannot encode the module result: {e}")}).to_string()
    });
    print_once(&text);
}

fn print_once(text: &str) {
    if PRINTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    // Nothing useful can be done if stdout is gone; Ansible reports that.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let object = serde_json::json!({
            "failed": true,
            "changed": false,
            "msg": format!("internal error (a bug, please report it): {what}{at}"),
        });
        print_once(&object.to_string());
        std::process::exit(1);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> ModuleArgs {
        ModuleArgs::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn internal_keys_are_taken_out_and_unknown_ones_ignored() {
        let a = args(json!({"app": "x", "_ansible_check_mode": true, "_ansible_diff": "yes",
                            "_ansible_no_log": false, "_ansible_future_thing": [1]}));
        assert!(a.check_mode() && a.diff());
        assert!(a.reject_unknown(&["app"]).is_ok());
        let e = args(json!({"app": "x", "ap": 1, "zz": 2}))
            .reject_unknown(&["app", "org"])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported arguments `ap`, `zz`; supported: `app`, `org`"
        );
    }

    #[test]
    fn not_an_object_is_refused() {
        assert_eq!(
            ModuleArgs::from_json("[1]").unwrap_err(),
            "expected an object, got a list"
        );
        assert!(ModuleArgs::from_json("app=x").is_err());
        assert!(
            ModuleArgs::from_json(r#"{"_ansible_check_mode": "maybe"}"#)
                .unwrap_err()
                .contains("_ansible_check_mode")
        );
    }

    #[test]
    fn typed_getters_name_the_argument() {
        let mut a = args(
            json!({"s": "v", "n": 6350192, "nul": null, "l": [1], "b": "no", "bb": "maybe",
                                "u": "20", "neg": -1, "f": 1.5}),
        );
        assert_eq!(a.string("s").unwrap().as_deref(), Some("v"));
        assert_eq!(a.string("n").unwrap().as_deref(), Some("6350192"));
        assert_eq!(a.warnings().len(), 1);
        assert_eq!(a.string("nul").unwrap(), None);
        assert_eq!(a.string("absent").unwrap(), None);
        assert_eq!(
            a.required_string("absent").unwrap_err().to_string(),
            "missing required argument `absent`"
        );
        assert_eq!(
            a.string("l").unwrap_err().to_string(),
            "argument `l` must be a string, got a list"
        );
        assert!(!a.bool("b", true).unwrap());
        assert_eq!(
            a.bool("bb", false).unwrap_err().to_string(),
            "argument `bb` must be a boolean, got the string `maybe`"
        );
        assert_eq!(a.uint("u").unwrap(), Some(20));
        assert_eq!(
            a.uint("neg").unwrap_err().to_string(),
            "argument `neg` must be a non-negative integer, got the number -1"
        );
        assert!(a.string("f").is_err());
    }

    #[test]
    fn modes() {
        let mut a = args(
            json!({"a": "0644", "b": "600", "c": 420, "d": "0o755", "e": "u=rw", "f": 644,
                                "g": "01777", "h": true, "i": "", "j": "0888"}),
        );
        assert_eq!(a.mode("a").unwrap(), Some(0o644));
        assert_eq!(a.mode("b").unwrap(), Some(0o600));
        assert_eq!(a.mode("c").unwrap(), Some(0o644));
        assert_eq!(a.mode("d").unwrap(), Some(0o755));
        assert!(
            a.mode("e")
                .unwrap_err()
                .to_string()
                .starts_with("argument `e`: `u=rw` is not an octal file mode")
        );
        assert!(a.mode("f").unwrap_err().to_string().contains("quote octal modes"));
        assert!(a.mode("g").is_err());
        assert!(a.mode("h").is_err());
        assert!(a.mode("i").is_err());
        assert!(a.mode("j").is_err());
        assert_eq!(a.mode("absent").unwrap(), None);
    }

    #[test]
    fn results_have_changed_msg_and_warnings() {
        let ok = result_object(Ok(Map::from_iter([("changed".into(), json!(true))])), vec!["w".into()]);
        assert_eq!(Value::Object(ok), json!({"changed": true, "warnings": ["w"]}));
        let failed = result_object(Err(Failure::new("argument `org`: bad").with("path", "/x")), vec![]);
        assert_eq!(
            Value::Object(failed),
            json!({"failed": true, "changed": false, "msg": "argument `org`: bad", "path": "/x"})
        );
    }

    #[test]
    fn argv_errors_name_the_file() {
        let e = ModuleArgs::from_argv(["m".into()].into_iter()).unwrap_err();
        assert!(e.to_string().starts_with("usage: m ARGS_FILE"), "{e}");
        let e = ModuleArgs::from_argv(["m".into(), "/nonexistent/args".into()].into_iter()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read the module arguments file `/nonexistent/args`"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("args");
        std::fs::write(&p, "not json").unwrap();
        let e = ModuleArgs::from_file(&p).unwrap_err();
        assert!(matches!(e, ArgsError::NotJson { .. }), "{e}");
    }

    /// Runs itself as a child that panics inside a module: the hook must
    /// turn that into exactly one failed JSON object and exit status 1, as
    /// it does in release builds, where a panic aborts.
    #[test]
    fn a_panic_becomes_one_failed_json_object() {
        const PROBE: &str = "IMAGE_LIFECYCLE_PANIC_PROBE";
        if let Some(args) = std::env::var_os(PROBE) {
            let _ = run_with(["probe".into(), args].into_iter(), |_| panic!("boom {}", 6 * 7));
            unreachable!("the panic hook exits");
        }
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args.json");
        std::fs::write(&args, "{}").unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ansible::tests::a_panic_becomes_one_failed_json_object",
                "--test-threads=1",
            ])
            .env(PROBE, &args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The test harness prints its own words before ours on the line.
        let objects: Vec<&str> = stdout.lines().filter_map(|l| l.find('{').map(|i| &l[i..])).collect();
        assert_eq!(objects.len(), 1, "{stdout}");
        let v: Value = serde_json::from_str(objects[0]).unwrap();
        assert_eq!(v["failed"], json!(true));
        let msg = v["msg"].as_str().unwrap();
        assert!(
            msg.starts_with("internal error (a bug, please report it): boom 42 at src/ansible.rs:"),
            "{msg}"
        );
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ünï", 2), "ün…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
