//! `image_labels` against real temporary git repositories: commit subjects
//! are data in every format, times normalise to UTC, remotes normalise to web
//! addresses without credentials, and odd repository states get the
//! documented answer.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_image_labels");

/// Author time differs from every committer time used below, so a test
/// that expects the committer time would notice the author time.
const AUTHOR_DATE: &str = "2001-02-03T04:05:06+00:00";
const DEFAULT_COMMITTER_DATE: &str = "2026-01-25T02:01:33+01:00";

/// A scratch git repository with a fixed identity and no user or system
/// git configuration.
struct Repo {
    root: TempDir,
}

impl Repo {
    fn new() -> Repo {
        Repo::with_init(&["init", "-q", "-b", "main"])
    }

    fn with_init(init: &[&str]) -> Repo {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("repo")).unwrap();
        fs::create_dir(root.path().join("home")).unwrap();
        fs::create_dir(root.path().join("scratch")).unwrap();
        let repo = Repo { root };
        repo.git(init);
        repo
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("repo")
    }

    /// An empty directory outside the repository, for shells to run in.
    fn scratch(&self) -> PathBuf {
        self.root.path().join("scratch")
    }

    /// Environment that isolates git (and the binary's git) from the host.
    fn isolate(&self, cmd: &mut Command) {
        cmd.env("HOME", self.root.path().join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CEILING_DIRECTORIES", self.root.path())
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
    }

    fn git_with(&self, args: &[&str], committer_date: &str) -> Output {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(self.dir()).args(args);
        self.isolate(&mut cmd);
        cmd.env("GIT_AUTHOR_NAME", "Ada Author")
            .env("GIT_AUTHOR_EMAIL", "ada@example.org")
            .env("GIT_AUTHOR_DATE", AUTHOR_DATE)
            .env("GIT_COMMITTER_NAME", "Cy Committer")
            .env("GIT_COMMITTER_EMAIL", "cy@example.org")
            .env("GIT_COMMITTER_DATE", committer_date);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn git(&self, args: &[&str]) -> String {
        let out = self.git_with(args, DEFAULT_COMMITTER_DATE);
        String::from_utf8(out.stdout).unwrap().trim_end().to_string()
    }

    /// Commits `message` verbatim (no cleanup) with a new file, at
    /// `committer_date`; returns the full SHA.
    fn commit_at(&self, message: &str, committer_date: &str) -> String {
        let msg_file = self.root.path().join("message");
        fs::write(&msg_file, message).unwrap();
        let n = fs::read_dir(self.dir()).unwrap().count();
        fs::write(self.dir().join(format!("file{n}")), "content\n").unwrap();
        self.git(&["add", "-A"]);
        self.git_with(
            &["commit", "-q", "--cleanup=verbatim", "-F", msg_file.to_str().unwrap()],
            committer_date,
        );
        self.git(&["rev-parse", "HEAD"])
    }

    fn commit(&self, message: &str) -> String {
        self.commit_at(message, DEFAULT_COMMITTER_DATE)
    }

    fn set_origin(&self, url: &str) {
        if self.git(&["remote"]).lines().any(|r| r == "origin") {
            self.git(&["remote", "set-url", "origin", url]);
        } else {
            self.git(&["remote", "add", "origin", url]);
        }
    }

    fn add_remote(&self, name: &str, url: &str) {
        self.git(&["remote", "add", name, url]);
    }

    /// Runs `image_labels --repo-dir REPO ARGS…` from the scratch directory.
    fn labels(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.arg("--repo-dir")
            .arg(self.dir())
            .args(args)
            .current_dir(self.scratch());
        self.isolate(&mut cmd);
        Run::from(cmd.output().unwrap())
    }
}

/// A finished run: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().expect("terminated by a signal"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap()
    }
}

/// `{"tag": …, "labels": {…}}` as `image_labels --format json` must print it.
fn expected_json(revision: &str, description: &str, created: &str, source: &str) -> serde_json::Value {
    serde_json::json!({
        "tag": &revision[..7],
        "labels": {
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.description": description,
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.source": source,
        }
    })
}

/// Splits `args` output exactly as a POSIX shell does, by running it
/// through `SHELL -c 'eval "set -- $ARGS"; printf "%s\0" "$@"'` in `cwd`.
fn shell_words(shell: &str, args: &str, cwd: &Path) -> Vec<String> {
    let out = Command::new(shell)
        .arg("-c")
        .arg(r#"eval "set -- $ARGS"; printf '%s\0' "$@""#)
        .env("ARGS", args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut words: Vec<String> = text.split('\0').map(String::from).collect();
    assert_eq!(words.pop().as_deref(), Some(""), "printf output ends with NUL");
    words
}

/// The POSIX shells present on this machine (`sh` always).
fn shells() -> Vec<&'static str> {
    ["sh", "bash", "dash"]
        .into_iter()
        .filter(|s| {
            Command::new(s)
                .args(["-c", "exit 0"])
                .status()
                .is_ok_and(|st| st.success())
        })
        .collect()
}

/// Reads `$GITHUB_OUTPUT` text as the Actions runner does: `name=value`
/// lines, or `name<<DELIM`, value lines, `DELIM`.
fn parse_github_output(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let heredoc = line.find("<<");
        let eq = line.find('=');
        match (heredoc, eq) {
            (Some(h), eq) if eq.is_none_or(|e| h < e) => {
                let (name, delim) = (&line[..h], &line[h + 2..]);
                let mut value = Vec::new();
                loop {
                    let l = lines.next().expect("unterminated heredoc");
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                out.push((name.to_string(), value.join("\n")));
            }
            (_, Some(e)) => out.push((line[..e].to_string(), line[e + 1..].to_string())),
            _ => panic!("invalid GITHUB_OUTPUT line {line:?}"),
        }
    }
    out
}

const SOURCE: &str = "https://github.com/rednaw/hello-world";

/// Everything a shell or a template engine might act on, plus unicode.
const HOSTILE_SUBJECT: &str = "it's \"quoted\" $(touch pwned) `touch pwned2` ${HOME} $HOME \\$x \\\\ a\\nb \
                               ; rm -rf ./* && echo | cat <<EOF > out * ? [a-z] ~ # %s %n {{ github.sha }} \
                               ${{ github.token }} 'x'\t\u{e9}\u{fc}\u{1F680} \u{202E}rtl -- --push=";

fn hostile_message() -> String {
    format!("{HOSTILE_SUBJECT}\n\nbody $(touch pwned-body)\nEOF\nsecond ` line\n")
}

#[test]
fn hostile_subject_is_exact_data_in_json() {
    let repo = Repo::new();
    repo.set_origin("git@github.com:rednaw/hello-world.git");
    let sha = repo.commit(&hostile_message());
    let run = repo.labels(&["--format", "json"]).ok();
    assert_eq!(
        run.json(),
        expected_json(&sha, HOSTILE_SUBJECT, "2026-01-25T01:01:33Z", SOURCE)
    );
    assert_eq!(run.stdout.lines().count(), 1);
    assert_eq!(run.stderr, "");
}

#[test]
fn json_is_the_default_format_with_keys_in_contract_order() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    let sha = repo.commit("simple deploy\n");
    let run = repo.labels(&[]).ok();
    assert_eq!(
        run.stdout,
        format!(
            "{{\"tag\":\"{}\",\"labels\":{{\"org.opencontainers.image.revision\":\"{sha}\",\
             \"org.opencontainers.image.description\":\"simple deploy\",\
             \"org.opencontainers.image.created\":\"2026-01-25T01:01:33Z\",\
             \"org.opencontainers.image.source\":\"{SOURCE}\"}}}}\n",
            &sha[..7]
        )
    );
}

#[test]
fn hostile_subject_args_split_by_a_shell_give_back_exact_values() {
    let repo = Repo::new();
    repo.set_origin("https://deploy:s3cret-token@github.com/rednaw/hello-world.git");
    let sha = repo.commit(&hostile_message());
    let expected_labels = [
        "--label".to_string(),
        format!("org.opencontainers.image.revision={sha}"),
        "--label".to_string(),
        format!("org.opencontainers.image.description={HOSTILE_SUBJECT}"),
        "--label".to_string(),
        "org.opencontainers.image.created=2026-01-25T01:01:33Z".to_string(),
        "--label".to_string(),
        format!("org.opencontainers.image.source={SOURCE}"),
    ];

    let bare = repo.labels(&["--format", "args"]).ok();
    let named = repo
        .labels(&["--format", "args", "--image", "registry.rednaw.nl/rednaw/hello-world"])
        .ok();
    assert!(bare.stdout.ends_with('\n') && bare.stdout.lines().count() == 1);
    let shells = shells();
    assert!(shells.contains(&"sh"));
    for shell in shells {
        let mut want = vec!["--tag".to_string(), sha[..7].to_string()];
        want.extend(expected_labels.iter().cloned());
        assert_eq!(shell_words(shell, &bare.stdout, &repo.scratch()), want, "{shell}");

        want[1] = format!("registry.rednaw.nl/rednaw/hello-world:{}", &sha[..7]);
        assert_eq!(shell_words(shell, &named.stdout, &repo.scratch()), want, "{shell}");
    }
    // Nothing was executed: the scratch directory the shells ran in is empty.
    assert_eq!(fs::read_dir(repo.scratch()).unwrap().count(), 0);
    assert!(!bare.stdout.contains("s3cret") && !bare.stderr.contains("s3cret"));
}

#[test]
fn hostile_subject_is_exact_data_in_github_output() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    let sha = repo.commit(&hostile_message());
    let run = repo.labels(&["--format", "github"]).ok();
    assert_eq!(
        parse_github_output(&run.stdout),
        [
            ("tag", &sha[..7]),
            ("revision", &sha),
            ("description", HOSTILE_SUBJECT),
            ("created", "2026-01-25T01:01:33Z"),
            ("source", SOURCE),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // No line break in the subject: the plain `name=value` form.
    assert_eq!(
        run.stdout.lines().nth(2).unwrap(),
        format!("description={HOSTILE_SUBJECT}")
    );
}

/// A carriage return is kept by git in the subject; GitHub's runner on
/// Windows would split on it, so it gets the heredoc form with a random
/// delimiter.
#[test]
fn carriage_return_in_subject_uses_a_heredoc_in_github_output() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    let subject = "before\rforged=1";
    repo.commit(&format!("{subject}\n"));
    let run = repo.labels(&["--format", "github"]).ok();
    let lines: Vec<&str> = run.stdout.split('\n').collect();
    let delim = lines[2].strip_prefix("description<<ghadelimiter_").unwrap();
    assert_eq!(delim.len(), 32);
    assert!(delim.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(lines[3], subject);
    assert_eq!(lines[4], format!("ghadelimiter_{delim}"));
    let outputs = parse_github_output(&run.stdout);
    assert_eq!(outputs[2], ("description".to_string(), subject.to_string()));
    assert_eq!(outputs.len(), 5);

    // Each run draws a new delimiter.
    let again = repo.labels(&["--format", "github"]).ok();
    assert_ne!(again.stdout, run.stdout);

    // Through a shell, the carriage return is still just data.
    let args = repo.labels(&["--format", "args"]).ok();
    assert_eq!(
        shell_words("sh", &args.stdout, &repo.scratch())[5],
        format!("org.opencontainers.image.description={subject}")
    );
}

#[test]
fn subject_is_the_first_paragraph_joined_by_spaces() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    repo.commit("add healthcheck\n+ fix nginx proxy header\n\nbody\n");
    let run = repo.labels(&[]).ok();
    assert_eq!(
        run.json()["labels"]["org.opencontainers.image.description"],
        "add healthcheck + fix nginx proxy header"
    );
}

#[test]
fn commit_times_with_any_offset_normalise_to_utc() {
    let cases = [
        ("2026-01-25T01:01:33+00:00", "2026-01-25T01:01:33Z"),
        ("2026-01-25T02:01:33+01:00", "2026-01-25T01:01:33Z"),
        ("2026-01-25T06:46:33+05:45", "2026-01-25T01:01:33Z"),
        ("2026-01-24T20:01:33-05:00", "2026-01-25T01:01:33Z"),
        // Offsets that move the date across midnight, both ways.
        ("2026-01-24T23:30:00-02:30", "2026-01-25T02:00:00Z"),
        ("2026-01-25T08:00:00+14:00", "2026-01-24T18:00:00Z"),
        ("2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00Z"),
        // git's own raw form: epoch seconds and an offset.
        ("1769302893 -0800", "2026-01-25T01:01:33Z"),
    ];
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    for (committer_date, want) in cases {
        let sha = repo.commit_at(&format!("at {committer_date}\n"), committer_date);
        let run = repo.labels(&[]).ok();
        assert_eq!(
            run.json(),
            expected_json(&sha, &format!("at {committer_date}"), want, SOURCE),
            "GIT_COMMITTER_DATE={committer_date}"
        );
    }
}

#[test]
fn remote_url_forms_normalise_without_credentials() {
    let cases = [
        ("git@github.com:rednaw/hello-world.git", SOURCE),
        ("ssh://git@github.com:22/rednaw/hello-world.git", SOURCE),
        ("https://user:s3cret-token@github.com/rednaw/hello-world.git", SOURCE),
        ("https://github.com/rednaw/hello-world", SOURCE),
        ("https://github.com/rednaw/hello-world.git", SOURCE),
        ("git://github.com/rednaw/hello-world.git", SOURCE),
        ("https://GitHub.com/rednaw/hello-world.git?private_token=s3cret", SOURCE),
        (
            "ssh://git@git.example.org:2222/team/sub/app.git",
            "https://git.example.org/team/sub/app",
        ),
        (
            "https://git.example.org:8443/team/app.git",
            "https://git.example.org:8443/team/app",
        ),
        ("http://localhost:3000/team/app.git", "http://localhost:3000/team/app"),
    ];
    let repo = Repo::new();
    let sha = repo.commit("simple deploy\n");
    for (remote, want) in cases {
        repo.set_origin(remote);
        for format in ["json", "args", "github"] {
            let run = repo.labels(&["--format", format]).ok();
            assert!(
                !run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"),
                "{remote}"
            );
            if format == "json" {
                assert_eq!(
                    run.json(),
                    expected_json(&sha, "simple deploy", "2026-01-25T01:01:33Z", want),
                    "remote {remote}"
                );
            }
        }
    }
}

#[test]
fn remote_without_web_address_is_refused_without_showing_credentials() {
    let repo = Repo::new();
    repo.commit("x\n");
    repo.set_origin("https://deploy:s3cret-token@git.example.org");
    let run = repo.labels(&[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: cannot use `https://***@git.example.org` as the image source: \
         it names no repository path; hint: pass `--source https://HOST/OWNER/REPO`\n"
    );

    let run = repo.labels(&["--source", "https://u:s3cret-token@h"]);
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);

    // `--source` forgotten: the argument parser quotes the URL back, on
    // one line, without the password.
    let run = repo.labels(&["https://u:s3cret-token@h/x/y"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("'https://***@h/x/y'"), "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
}

#[test]
fn local_path_remote_needs_source() {
    let repo = Repo::new();
    let sha = repo.commit("x\n");
    repo.set_origin("/srv/git/app.git");
    let run = repo.labels(&[]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: cannot use `/srv/git/app.git` as the image source: \
         it is a local path, not a hosted repository; hint: pass `--source https://HOST/OWNER/REPO`\n"
    );
    let run = repo.labels(&["--source", "git@github.com:rednaw/hello-world.git"]).ok();
    assert_eq!(run.json(), expected_json(&sha, "x", "2026-01-25T01:01:33Z", SOURCE));
}

#[test]
fn no_remote_is_an_error_unless_source_is_given() {
    let repo = Repo::new();
    let sha = repo.commit("x\n");
    let run = repo.labels(&[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "error: repository `{}` has no `origin` remote; \
             hint: pass `--source https://HOST/OWNER/REPO`, or add the remote with `git remote add origin URL`\n",
            repo.dir().display()
        )
    );
    // Another remote is not `origin`.
    repo.add_remote("upstream", SOURCE);
    assert_eq!(repo.labels(&[]).code, 2);

    let run = repo
        .labels(&["--source", "https://github.com/rednaw/hello-world/"])
        .ok();
    assert_eq!(run.json(), expected_json(&sha, "x", "2026-01-25T01:01:33Z", SOURCE));
}

#[test]
fn source_overrides_origin() {
    let repo = Repo::new();
    repo.set_origin("git@github.com:someone/fork.git");
    let sha = repo.commit("x\n");
    let run = repo.labels(&["--source", SOURCE]).ok();
    assert_eq!(run.json(), expected_json(&sha, "x", "2026-01-25T01:01:33Z", SOURCE));
}

#[test]
fn repository_without_commit_is_an_error() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    let run = repo.labels(&[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "error: repository `{}` has no commit yet; hint: commit first: image labels describe a commit\n",
            repo.dir().display()
        )
    );
}

#[test]
fn directory_that_is_not_a_repository_is_an_error() {
    let repo = Repo::new();
    let run = {
        let mut cmd = Command::new(BIN);
        cmd.arg("--repo-dir").arg(repo.scratch());
        repo.isolate(&mut cmd);
        Run::from(cmd.output().unwrap())
    };
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "error: `{}` is not a git repository: fatal: not a git repository",
            repo.scratch().display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .ends_with("; hint: run inside a git checkout or pass `--repo-dir DIR`\n"),
        "{}",
        run.stderr
    );

    let missing = repo.root.path().join("missing");
    let run = Run::from(Command::new(BIN).arg("--repo-dir").arg(&missing).output().unwrap());
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "error: repository directory `{}` does not exist; hint: run inside a git checkout or pass `--repo-dir DIR`\n",
            missing.display()
        )
    );
}

#[test]
fn dirty_work_tree_warns_and_labels_head() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    fs::write(repo.dir().join(".gitignore"), "target/\n").unwrap();
    let sha = repo.commit("clean\n");
    let want = expected_json(&sha, "clean", "2026-01-25T01:01:33Z", SOURCE);

    // Ignored files do not make a tree dirty.
    fs::create_dir(repo.dir().join("target")).unwrap();
    fs::write(repo.dir().join("target/out"), "x").unwrap();
    let run = repo.labels(&["--require-clean"]).ok();
    assert_eq!(run.json(), want);
    assert_eq!(run.stderr, "");

    // A modified tracked file and an untracked file do.
    fs::write(repo.dir().join(".gitignore"), "changed\n").unwrap();
    fs::write(repo.dir().join("untracked"), "x").unwrap();
    let run = repo.labels(&[]).ok();
    assert_eq!(run.json(), want);
    assert_eq!(
        run.stderr,
        format!(
            "warning: work tree `{}` has uncommitted changes (3 paths); the labels describe commit `{sha}`, not them\n",
            repo.dir().display()
        )
    );

    let run = repo.labels(&["--require-clean"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "error: work tree `{}` has uncommitted changes (3 paths); \
             hint: commit the changes, or drop `--require-clean` to label HEAD with a warning\n",
            repo.dir().display()
        )
    );
}

#[test]
fn detached_head_is_labelled_like_any_commit() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    let first = repo.commit("first\n");
    repo.commit("second\n");
    repo.git(&["checkout", "-q", "--detach", &first]);
    let run = repo.labels(&[]).ok();
    assert_eq!(
        run.json(),
        expected_json(&first, "first", "2026-01-25T01:01:33Z", SOURCE)
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn sha256_repository_tags_with_seven_characters() {
    let repo = Repo::with_init(&["init", "-q", "-b", "main", "--object-format=sha256"]);
    repo.set_origin(SOURCE);
    let sha = repo.commit("x\n");
    assert_eq!(sha.len(), 64);
    let run = repo.labels(&[]).ok();
    assert_eq!(run.json(), expected_json(&sha, "x", "2026-01-25T01:01:33Z", SOURCE));
}

#[test]
fn image_option_is_checked() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    repo.commit("x\n");
    let run = repo.labels(&["--format", "json", "--image", "registry.rednaw.nl/rednaw/hello-world"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: `--image` only applies to `--format args`\n"),
        "{}",
        run.stderr
    );
    let run = repo.labels(&[
        "--format",
        "args",
        "--image",
        "registry.rednaw.nl/rednaw/hello-world:latest",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("has a tag or digest; give the name only"),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_format_is_a_usage_error() {
    let run = Run::from(
        Command::new(BIN)
            .args(["--format", "yaml"])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .starts_with("error: invalid value 'yaml' for '--format <FORMAT>'")
    );
}

#[test]
fn git_environment_of_a_hook_does_not_redirect_the_repository() {
    let repo = Repo::new();
    repo.set_origin(SOURCE);
    let sha = repo.commit("x\n");
    let mut cmd = Command::new(BIN);
    cmd.arg("--repo-dir").arg(repo.dir());
    repo.isolate(&mut cmd);
    cmd.env("GIT_DIR", repo.scratch().as_os_str())
        .env("GIT_WORK_TREE", OsStr::new("/"));
    let run = Run::from(cmd.output().unwrap()).ok();
    assert_eq!(run.json(), expected_json(&sha, "x", "2026-01-25T01:01:33Z", SOURCE));
}

// ---------------------------------------------------------------------------
// examples/ci/github-actions.yml, run step by step as the runner would: each
// `run:` script verbatim under `bash --noprofile --norc -eo pipefail`, its
// `env:` resolved from earlier step outputs, against a real registry. Only
// `docker` is a stand-in: it records its argument vector, and the test
// pushes what it was asked to build.

mod common;

const WORKFLOW: &str = include_str!("../examples/ci/github-actions.yml");
const RESOLVE_DIGEST: &str = env!("CARGO_BIN_EXE_resolve_digest");

/// One job's steps and env, as the workflow file holds them.
struct Workflow {
    job_env: Vec<(String, String)>,
    steps: Vec<serde_norway::Value>,
}

impl Workflow {
    fn load() -> Workflow {
        let doc: serde_norway::Value = serde_norway::from_str(WORKFLOW).unwrap();
        let job = &doc["jobs"]["image"];
        Workflow {
            job_env: string_map(&job["env"]),
            steps: job["steps"].as_sequence().unwrap().clone(),
        }
    }

    fn step(&self, name: &str) -> &serde_norway::Value {
        self.steps
            .iter()
            .find(|s| s["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no step named {name:?}"))
    }
}

fn string_map(v: &serde_norway::Value) -> Vec<(String, String)> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What the runner substitutes for the `${{ }}` expressions this workflow
/// uses in `env:`.
struct Context {
    vars: Vec<(String, String)>,
    outputs: Vec<(String, Vec<(String, String)>)>,
}

impl Context {
    fn eval(&self, value: &str) -> String {
        let Some(expr) = value.strip_prefix("${{ ").and_then(|v| v.strip_suffix(" }}")) else {
            assert!(!value.contains("${{"), "unsupported expression in {value:?}");
            return value.to_string();
        };
        let lookup = |list: &[(String, String)], key: &str| {
            list.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no value for {expr}"))
        };
        if let Some(name) = expr.strip_prefix("vars.") {
            return lookup(&self.vars, name);
        }
        let rest = expr.strip_prefix("steps.").expect(expr);
        let (step, name) = rest.split_once(".outputs.").expect(expr);
        let outputs = &self.outputs.iter().find(|(id, _)| id == step).expect(expr).1;
        lookup(outputs, name)
    }
}

/// A scratch runner: a temp dir, a PATH with the tools, a fake docker.
struct Runner {
    temp: TempDir,
}

impl Runner {
    fn new() -> Runner {
        let temp = tempfile::tempdir().unwrap();
        let bin = temp.path().join("bin");
        fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("image_labels")).unwrap();
        std::os::unix::fs::symlink(RESOLVE_DIGEST, bin.join("resolve_digest")).unwrap();
        fs::write(
            bin.join("docker"),
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$FAKE_DOCKER_ARGV\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(bin.join("docker"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(temp.path().join("runner-temp")).unwrap();
        fs::create_dir(temp.path().join("home")).unwrap();
        Runner { temp }
    }

    fn runner_temp(&self) -> PathBuf {
        self.temp.path().join("runner-temp")
    }

    /// Runs step `name` in `workdir`; returns the run and its outputs.
    fn run_step(&self, wf: &Workflow, ctx: &Context, name: &str, workdir: &Path) -> (Run, Vec<(String, String)>) {
        let step = wf.step(name);
        let script = step["run"].as_str().unwrap();
        let script_file = self.temp.path().join("step.sh");
        fs::write(&script_file, script).unwrap();
        let output_file = self.temp.path().join("github-output");
        fs::write(&output_file, "").unwrap();
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .current_dir(workdir)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    self.temp.path().join("bin").display()
                ),
            )
            .env("HOME", self.temp.path().join("home"))
            .env("IMAGE_LIFECYCLE_CACHE_DIR", self.temp.path().join("cache"))
            .env("USER", "runner")
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("RUNNER_TEMP", self.runner_temp())
            .env("GITHUB_OUTPUT", &output_file)
            .env("FAKE_DOCKER_ARGV", self.temp.path().join("docker-argv"))
            .stdin(Stdio::null());
        for (k, v) in wf.job_env.iter().chain(string_map(&step["env"]).iter()) {
            cmd.env(k, ctx.eval(v));
        }
        let run = Run::from(cmd.output().unwrap());
        let outputs = parse_github_output(&fs::read_to_string(&output_file).unwrap());
        (run, outputs)
    }

    fn docker_argv(&self) -> Vec<String> {
        let text = fs::read_to_string(self.temp.path().join("docker-argv")).unwrap();
        let mut argv: Vec<String> = text.split('\0').map(String::from).collect();
        assert_eq!(argv.pop().as_deref(), Some(""));
        argv
    }
}

#[test]
fn workflow_never_interpolates_expressions_into_scripts() {
    let wf = Workflow::load();
    let mut runs = 0;
    for step in &wf.steps {
        if let Some(script) = step["run"].as_str() {
            runs += 1;
            assert!(
                !script.contains("${{"),
                "step {:?} interpolates into its script",
                step["name"]
            );
        }
    }
    assert_eq!(runs, 5);
    // Exactly one tag is pushed, and it is the short SHA.
    let build = wf.step("Build and push one tag, the short SHA, with the OCI labels")["run"]
        .as_str()
        .unwrap();
    assert_eq!(build.matches("--tag").count(), 1);
    assert!(build.contains("--tag \"$IMAGE:$TAG\""));
}

/// Fails with what to install when a tool the workflow's scripts use (and
/// GitHub's runner images carry) is missing here.
fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", "command -v \"$1\" >/dev/null", "sh", tool])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "`{tool}` is not installed: `scripts/setup` should install it (apt-get install {tool})"
        );
    }
}

#[test]
fn workflow_builds_pushes_and_verifies_a_hostile_commit() {
    require_tools(&["bash", "jq", "openssl"]);
    let registry = common::Registry::start();
    let image = registry.repo("rednaw/hello-world");
    let repo = Repo::new();
    repo.set_origin("https://github.com/rednaw/hello-world.git");
    let subject = format!("::warning::forged {HOSTILE_SUBJECT}");
    let sha = repo.commit(&format!("{subject}\n\nbody\n"));
    let short = &sha[..7];

    let wf = Workflow::load();
    let runner = Runner::new();
    let mut ctx = Context {
        vars: vec![("IMAGE".into(), image.clone())],
        outputs: Vec::new(),
    };

    let (run, config) = runner.run_step(&wf, &ctx, "Check the configuration", &repo.dir());
    run.ok();
    assert_eq!(config, [("registry".to_string(), registry.host.clone())]);
    ctx.outputs.push(("config".into(), config));

    let (run, labels) = runner.run_step(&wf, &ctx, "Read the tag and labels from git", &repo.dir());
    assert_eq!(run.ok().stdout, "");
    assert_eq!(
        labels,
        [
            ("tag", short),
            ("revision", &sha),
            ("description", &subject),
            ("created", "2026-01-25T01:01:33Z"),
            ("source", SOURCE),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    ctx.outputs.push(("labels".into(), labels));

    let build = "Build and push one tag, the short SHA, with the OCI labels";
    runner.run_step(&wf, &ctx, build, &repo.dir()).0.ok();
    let metadata_file = runner.runner_temp().join("build.json");
    let want_argv: Vec<String> = [
        "buildx",
        "build",
        "--platform",
        "linux/amd64",
        "--tag",
        &format!("{image}:{short}"),
        "--label",
        &format!("org.opencontainers.image.revision={sha}"),
        "--label",
        &format!("org.opencontainers.image.description={subject}"),
        "--label",
        "org.opencontainers.image.created=2026-01-25T01:01:33Z",
        "--label",
        &format!("org.opencontainers.image.source={SOURCE}"),
        "--metadata-file",
        metadata_file.to_str().unwrap(),
        "--push",
        ".",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(runner.docker_argv(), want_argv);
    // Nothing in the subject ran: the checkout holds only what was committed.
    assert_eq!(repo.git(&["status", "--porcelain", "--ignored"]), "");

    // Do what buildx would have done with those arguments.
    let push_labelled = |description: &str| {
        let mut labels = std::collections::BTreeMap::new();
        for pair in want_argv.chunks(2).filter(|p| p[0] == "--label") {
            let (k, v) = pair[1].split_once('=').unwrap();
            let v = if k == "org.opencontainers.image.description" {
                description
            } else {
                v
            };
            labels.insert(k.to_string(), v.to_string());
        }
        let spec = image_lifecycle::fixture::ImageSpec {
            labels,
            layer: description.as_bytes().to_vec(),
            ..Default::default()
        };
        let digest = common::push(&format!("{image}:{short}"), &spec);
        fs::write(
            &metadata_file,
            serde_json::json!({"containerimage.digest": digest.to_string()}).to_string(),
        )
        .unwrap();
        digest
    };
    let digest = push_labelled(&subject);

    let verify = "Verify the pushed image with resolve_digest";
    let (run, _) = runner.run_step(&wf, &ctx, verify, &repo.dir());
    assert_eq!(run.ok().stdout, format!("verified {image}:{short} = {digest}\n"));

    // A pushed image whose labels differ from the commit's fails the check,
    // and the facts are shown with workflow commands stopped.
    push_labelled("not the commit subject");
    let (run, _) = runner.run_step(&wf, &ctx, verify, &repo.dir());
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("::error::{image}:{short} does not carry the labels CI set")
    );
    let token = lines[1].strip_prefix("::stop-commands::").unwrap();
    assert_eq!(token.len(), 32);
    assert_eq!(*lines.last().unwrap(), format!("::{token}::"));
    assert!(lines[2..lines.len() - 1].iter().all(|l| !l.starts_with("::")));
    assert!(run.stdout.contains("\"description\": \"not the commit subject\""));
}
