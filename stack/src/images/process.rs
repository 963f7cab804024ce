//! Host processes the image builds need (debootstrap, cargo), with their output turned into
//! progress lines as it arrives.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{join_tail, push_tail, ImageError};
use crate::progress::{ProgressExt, ProgressSink};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Stdout,
    Stderr,
}

/// Runs `cmd` to completion, handing every stdout and stderr line to `on_line` as it comes.
pub(crate) async fn run_logged(
    mut cmd: Command,
    mut on_line: impl FnMut(Output, &str),
) -> std::io::Result<ExitStatus> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A cancelled build must not leave the process running on its own.
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other("child process has no piped output"));
    };
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            line = out.next_line(), if out_open => match line? {
                Some(line) => on_line(Output::Stdout, &line),
                None => out_open = false,
            },
            line = err.next_line(), if err_open => match line? {
                Some(line) => on_line(Output::Stderr, &line),
                None => err_open = false,
            },
        }
    }
    child.wait().await
}

/// Finds an executable by name in PATH, then in the sbin directories (where Debian puts
/// debootstrap, and which a non-login PATH may lack).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// `cargo build --release --bin …` in `root`; returns each built binary's path by name.
/// Paths come from cargo's JSON messages, so `CARGO_TARGET_DIR` and friends are honoured.
pub(crate) async fn cargo_build_release(
    root: &Path,
    binaries: &[String],
    features: &[String],
    progress: &ProgressSink,
) -> Result<HashMap<String, PathBuf>, ImageError> {
    let key = "cargo";
    let with = if features.is_empty() {
        String::new()
    } else {
        format!(" --features {}", features.join(","))
    };
    progress.start(
        key,
        &format!("cargo build --release{with} ({})", binaries.join(", ")),
        None,
    );
    // Under `cargo run`/`cargo test`, CARGO names the cargo that is running us.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root).args([
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
    ]);
    for name in binaries {
        cmd.args(["--bin", name]);
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let mut executables = HashMap::new();
    let mut tail = VecDeque::new();
    let status = run_logged(cmd, |stream, line| match stream {
        Output::Stdout => {
            if let Some((name, path)) = built_executable(line) {
                executables.insert(name, path);
            }
        }
        Output::Stderr => {
            push_tail(&mut tail, line.to_string());
            let trimmed = line.trim();
            if !trimmed.is_empty() {
                progress.message(key, trimmed);
            }
        }
    })
    .await
    .map_err(|e| {
        ImageError::io(
            format!("running {} in {}", cargo.to_string_lossy(), root.display()),
            e,
        )
    })?;
    if !status.success() {
        progress.finish(key, false, "cargo build failed");
        return Err(ImageError::Cargo {
            root: root.to_path_buf(),
            status: status.to_string(),
            tail: join_tail(&tail),
        });
    }
    progress.finish(key, true, "binaries built");
    Ok(executables)
}

/// The (target name, executable path) of a cargo `compiler-artifact` message for a binary.
fn built_executable(line: &str) -> Option<(String, PathBuf)> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let executable = message.get("executable")?.as_str()?;
    let name = message.get("target")?.get("name")?.as_str()?;
    Some((name.to_string(), PathBuf::from(executable)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_is_read_from_cargo_artifact_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"registry","kind":["bin"]},"executable":"/w/target/release/registry","fresh":true}"#;
        assert_eq!(
            built_executable(line),
            Some((
                "registry".to_string(),
                PathBuf::from("/w/target/release/registry")
            ))
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"name":"kit","kind":["lib"]},"executable":null}"#;
        assert_eq!(built_executable(lib), None);
        assert_eq!(built_executable("not json"), None);
    }

    #[tokio::test]
    async fn both_output_streams_reach_the_callback() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let mut lines = Vec::new();
        let status = run_logged(cmd, |stream, line| lines.push((stream, line.to_string())))
            .await
            .expect("sh runs");
        assert_eq!(status.code(), Some(3));
        assert!(lines.contains(&(Output::Stdout, "out".to_string())));
        assert!(lines.contains(&(Output::Stderr, "err".to_string())));
    }
}
