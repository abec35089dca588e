//! What every binary shares: registry options, the error report format and
//! the mapping of results to exit codes.
//!
//! Exit codes (DESIGN.md): `0` ok, `1` other failure, `2` usage or invalid
//! input, `3` not found, `4` authentication/authorisation refused, `5`
//! registry unreachable or broken. Errors are printed once, on stderr:
//!
//! ```text
//! error: tag `x` not found in `127.0.0.1:5000`
//! caused by: …
//! hint: …
//! ```

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
    /// Loopback hosts always use plain HTTP. Also read, comma-separated,
    /// from IMAGE_LIFECYCLE_PLAIN_HTTP.
    #[arg(
        long = "plain-http",
        value_name = "HOST",
        env = "IMAGE_LIFECYCLE_PLAIN_HTTP",
        value_delimiter = ','
    )]
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
        ClientOptions {
            plain_http: self
                .plain_http
                .iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            timeout: self.timeout,
            concurrency: self.concurrency as usize,
            ..ClientOptions::default()
        }
    }
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

    /// Prints the report on stderr.
    pub fn report(&self) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", self.message);
        for c in &self.causes {
            let _ = writeln!(err, "caused by: {c}");
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(err, "hint: {h}");
        }
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        let mut f = Failure::from_error(e.exit_code(), &e);
        f.hint = e.hint();
        f
    }
}

/// Prints a warning on stderr.
pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
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
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            ExitCode::from(code)
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
