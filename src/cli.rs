//! What every binary shares: registry options, the error report format and
//! the mapping of results to exit codes.
//!
//! Exit codes (DESIGN.md): `0` ok, `1` other failure, `2` usage or invalid
//! input, `3` not found, `4` authentication/authorisation refused, `5`
//! registry unreachable or broken. An error is one line on stderr: what
//! failed, its causes (each after `: `), and what to do after `; hint: `:
//!
//! ```text
//! error: cannot reach `127.0.0.1:1` (…): error sending request: … Connection refused (os error 111); hint: check that …
//! ```
//!
//! Usage errors from the argument parser are put on one line the same way.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::registry::{ClientOptions, RegistryError};

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_FOUND: u8 = 3;
pub const EXIT_AUTH: u8 = 4;
pub const EXIT_REGISTRY: u8 = 5;

/// Registry options shared by the controller binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Use plain HTTP for this registry host (HOST or HOST:PORT); repeatable.
    /// Loopback hosts always use plain HTTP. The hosts listed,
    /// comma-separated, in IMAGE_LIFECYCLE_PLAIN_HTTP count as well.
    #[arg(long = "plain-http", value_name = "HOST", value_delimiter = ',')]
    pub plain_http: Vec<String>,
    /// Deadline of each registry operation, retries included (seconds, or
    /// with a unit: 500ms, 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Registry requests in flight at most.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

impl RegistryArgs {
    pub fn client_options(&self) -> ClientOptions {
        let env = std::env::var("IMAGE_LIFECYCLE_PLAIN_HTTP").ok();
        ClientOptions {
            plain_http: plain_http_hosts(&self.plain_http, env.as_deref()),
            timeout: self.timeout,
            concurrency: self.concurrency as usize,
            ..ClientOptions::default()
        }
    }
}

/// The hosts of every `--plain-http` and of `IMAGE_LIFECYCLE_PLAIN_HTTP`
/// (comma-separated): both count, as a list in the environment is meant
/// to hold for every run.
fn plain_http_hosts(flags: &[String], env: Option<&str>) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for h in flags
        .iter()
        .map(String::as_str)
        .chain(env.into_iter().flat_map(|e| e.split(',')))
    {
        let h = h.trim();
        if !h.is_empty() && !hosts.iter().any(|x| x == h) {
            hosts.push(h.to_string());
        }
    }
    hosts
}

/// The longest `--timeout` accepted: one day per operation.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// `60`, `60s`, `500ms`, `2m`; more than zero and at most [`MAX_TIMEOUT`].
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| (&s[..i], &s[i..]));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 30, 30s, 500ms or 2m"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{s}` is not a duration such as 30, 30s, 500ms or 2m")),
    };
    if d.is_zero() {
        return Err("the timeout must be more than zero".into());
    }
    if d > MAX_TIMEOUT {
        return Err(format!("`{s}` is longer than the longest timeout, 1 day (86400 s)"));
    }
    Ok(d)
}

/// A failure as the user sees it.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_USAGE, message)
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Failure {
        self.causes.push(cause.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// A failure from any error: its message, then its sources as causes.
    pub fn from_error(code: u8, err: &(dyn std::error::Error + 'static)) -> Failure {
        let mut f = Failure::new(code, err.to_string());
        let mut source = err.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !f.message.contains(&text) && !f.causes.contains(&text) {
                f.causes.push(text);
            }
            source = s.source();
        }
        f
    }

    /// The report: one line, without its newline (DESIGN.md: "Errors: one
    /// line saying what failed and what to do").
    pub fn line(&self) -> String {
        let mut line = format!("error: {}", escape_breaks(&self.message));
        for c in self.causes.iter().map(|c| escape_breaks(c)).filter(|c| !c.is_empty()) {
            line.push_str(": ");
            line.push_str(&c);
        }
        if let Some(h) = &self.hint {
            line.push_str("; hint: ");
            line.push_str(&escape_breaks(h));
        }
        line
    }

    /// Prints the report on stderr.
    pub fn report(&self) {
        let _ = writeln!(std::io::stderr().lock(), "{}", self.line());
    }
}

/// `text` without its trailing blanks, and any control character left
/// inside it (line breaks, escape sequences, NEL), line/paragraph separator
/// or bidirectional embedding, override or isolate escaped (`\n`,
/// `\u{1b}`, `\u{202e}`): a value quoted in a message (a tag, a path, a
/// registry's error detail) is shown as it is, cannot move the cursor or
/// reorder the rest of the line, and the report stays one line.
fn escape_breaks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end().chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.extend(c.escape_unicode())
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` with its line breaks (and the blanks around them) turned into
/// single spaces, for text that is prose broken into lines (the argument
/// parser's messages).
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A usage error of the argument parser as one line: its paragraphs (the
/// message, a tip, the usage, where to read more) joined with `; `. The
/// parser quotes what it did not expect, which may be a URL with a
/// password (`image_labels https://u:pw@host/x`, `--source` forgotten): the
/// userinfo of any URL is replaced by `***`.
fn usage_line(rendered: &str) -> String {
    static USERINFO: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\x22`]*@").expect("valid pattern")
    });
    let mut parts = Vec::new();
    for paragraph in rendered.split("\n\n") {
        let p = escape_breaks(&USERINFO.replace_all(&one_line(paragraph), "${1}***@"));
        if !p.is_empty() {
            parts.push(p);
        }
    }
    let line = parts.join("; ");
    if line.starts_with("error: ") {
        line
    } else {
        format!("error: {line}")
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        let mut f = Failure::from_error(e.exit_code(), &e);
        f.hint = e.hint();
        f
    }
}

/// Prints a warning on stderr, on one line.
pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "warning: {}", escape_breaks(message));
}

/// Writes `text` to stdout. A closed pipe (`| head`) is not an error.
pub fn print_stdout(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(EXIT_FAILURE, format!("cannot write to stdout: {e}"))),
    }
}

/// The `REGISTRY` argument as `HOST[:PORT]` (a trailing `/` dropped), or a
/// usage failure saying how to write it.
pub fn registry_host(arg: &str) -> Result<&str, Failure> {
    let registry = arg.trim_end_matches('/');
    crate::reference::validate_host(registry).map_err(|e| {
        Failure::from_error(EXIT_USAGE, &e).with_hint("write the registry as HOST[:PORT], without a repository")
    })?;
    Ok(registry)
}

/// The `main` of a controller binary: parses the arguments (a usage error
/// exits 2, `--help`/`--version` exit 0), runs `run`, and turns its result
/// into the exit status.
pub fn main_with<A: clap::Parser>(run: impl FnOnce(A) -> Result<(), Failure>) -> ExitCode {
    match A::try_parse() {
        Ok(args) => finish(run(args)),
        Err(e) if e.use_stderr() => {
            let _ = writeln!(std::io::stderr().lock(), "{}", usage_line(&e.render().to_string()));
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            // --help, --version
            let _ = e.print();
            ExitCode::SUCCESS
        }
    }
}

/// Turns `run()`'s result into the process exit status, reporting a failure.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.report();
            ExitCode::from(f.code)
        }
    }
}

/// The async runtime of a controller binary (a small multi-thread pool:
/// the work is waiting on the network).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot start the async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_hosts_come_from_the_flags_and_the_environment() {
        let flags = vec!["a.example".to_string(), " b.example:5000 ".to_string()];
        assert_eq!(
            plain_http_hosts(&flags, Some("c.example, a.example,,")),
            ["a.example", "b.example:5000", "c.example"]
        );
        assert_eq!(plain_http_hosts(&[], Some("c.example")), ["c.example"]);
        assert_eq!(plain_http_hosts(&flags, None), ["a.example", "b.example:5000"]);
    }

    #[test]
    fn a_failure_is_one_line() {
        assert_eq!(
            Failure::usage("tag `a\u{1b}[2J\u{85}\u{2028}\tb`").line(),
            "error: tag `a\\u{1b}[2J\\u{85}\\u{2028}\\tb`"
        );
        assert_eq!(
            Failure::usage("label `\u{202e}gnp.exe\u{2066}x\u{2069}`").line(),
            "error: label `\\u{202e}gnp.exe\\u{2066}x\\u{2069}`"
        );
        let f = Failure::new(EXIT_FAILURE, "cannot read `x\ny`")
            .with_cause("fatal: first\r\nsecond line\n")
            .with_cause("")
            .with_cause("last")
            .with_hint("do this");
        assert_eq!(
            f.line(),
            "error: cannot read `x\\ny`: fatal: first\\r\\nsecond line: last; hint: do this"
        );
        assert_eq!(Failure::usage("bad").line(), "error: bad");
    }

    #[test]
    fn usage_errors_are_one_line() {
        #[derive(clap::Parser, Debug)]
        #[command(name = "tool")]
        struct Args {
            name: String,
            #[arg(long)]
            json: bool,
        }
        use clap::Parser;
        for argv in [vec!["tool"], vec!["tool", "x", "--jsn"], vec!["tool", "x", "y"]] {
            let e = Args::try_parse_from(&argv).unwrap_err();
            let line = usage_line(&e.render().to_string());
            assert!(line.starts_with("error: "), "{argv:?}: {line}");
            assert!(!line.contains('\n'), "{argv:?}: {line}");
            assert!(line.contains("Usage: tool"), "{argv:?}: {line}");
        }
        let e = Args::try_parse_from(["tool", "x", "--jsn"]).unwrap_err();
        assert!(usage_line(&e.render().to_string()).contains("tip: a similar argument exists: '--json'"));
        // A password in what the parser quotes back is not shown.
        let e = Args::try_parse_from(["tool", "x", "https://u:s3cret@h/x"]).unwrap_err();
        let line = usage_line(&e.render().to_string());
        assert!(line.contains("'https://***@h/x'"), "{line}");
        assert!(!line.contains("s3cret"), "{line}");
        // Control characters cannot move the cursor.
        for odd in ["a\u{1b}[2Jb", "a\u{7}\u{85}\u{2028}b"] {
            let e = Args::try_parse_from(["tool", "x", odd]).unwrap_err();
            let line = usage_line(&e.render().to_string());
            assert!(!line.chars().any(|c| c.is_control() || c == '\u{2028}'), "{line:?}");
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("60").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("5h").is_err());
        // Found by tests/test_faults.rs: these panicked (overflow) instead of
        // being refused as usage errors.
        assert_eq!(parse_timeout("86400").unwrap(), MAX_TIMEOUT);
        for huge in ["86401", "1441m", "18446744073709551615", "307445734561825861m"] {
            let e = parse_timeout(huge).unwrap_err();
            assert!(e.contains("longer than the longest timeout"), "{huge}: {e}");
        }
    }
}
