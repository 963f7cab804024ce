//! `msctl test` catches a real regression: a deliberately broken build of order-service
//! (cargo feature `skip-compensation`: a declined payment is cancelled without releasing
//! its stock) makes `msctl test` exit 1, naming the failing step of `order-saga`, and save
//! the artifacts folder it names — while the same run tears its project down.
//!
//! The stack is the repository's stack.toml with order-service pointed at an image built
//! with the feature (msctl builds it: `features` on a `binaries` image). It runs under its
//! own project, next to anything else on the engine. When no engine is reachable it says
//! why and returns, except under CI, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROJECT: &str = "msctl-broken";
const BROKEN_IMAGE: &str = "msctl/services:skip-compensation";

fn repo() -> PathBuf {
    std::fs::canonicalize(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")).expect("repo")
}

/// The repository's stack file, made to live in `dir`: paths absolute, order-service on
/// the broken image.
fn broken_stack(dir: &Path) -> PathBuf {
    let root = repo();
    let text = std::fs::read_to_string(root.join("stack.toml")).expect("read stack.toml");
    let r = root.display().to_string();
    let mut out = text
        .replace("recipe = \"fixtures/", &format!("recipe = \"{r}/fixtures/"))
        .replace("file = \"fixtures/", &format!("file = \"{r}/fixtures/"))
        .replace(
            "[images.\"msctl/services:dev\"]\n",
            &format!("[images.\"msctl/services:dev\"]\nworkspace = \"{r}\"\n"),
        );
    let order = out
        .find("[components.order-service]")
        .expect("stack.toml has order-service");
    let image_line = out[order..]
        .find("image = \"msctl/services:dev\"")
        .expect("order-service runs the services image")
        + order;
    out.replace_range(
        image_line..image_line + "image = \"msctl/services:dev\"".len(),
        &format!("image = \"{BROKEN_IMAGE}\""),
    );
    // The same binaries as the services image: with another selection cargo would unify
    // the dependencies' features differently and rebuild them all in release.
    let binaries = text
        .split("[images.\"msctl/services:dev\"]")
        .nth(1)
        .and_then(|rest| rest.split("binaries = [").nth(1))
        .and_then(|rest| rest.split(']').next())
        .expect("the services image lists its binaries");
    out.push_str(&format!(
        "\n[images.\"{BROKEN_IMAGE}\"]\nbinaries = [{binaries}]\nfeatures = [\"order-service/skip-compensation\"]\nworkspace = \"{r}\"\n"
    ));
    let file = dir.join("stack.toml");
    std::fs::write(&file, out).expect("write the broken stack file");
    file
}

fn msctl(file: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_msctl"))
        .current_dir(file.parent().expect("dir"))
        .arg("--file")
        .arg(file)
        .args(["--project", PROJECT])
        .args(args)
        .output()
        .expect("run msctl");
    eprintln!(
        "$ msctl {}\nexit {:?}\n{}{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_build_that_skips_compensation_fails_msctl_test_naming_the_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = broken_stack(dir.path());
    let ps = msctl(&file, &["ps"]);
    if ps.status.code() == Some(3) {
        msctl_stack::testing::cannot_run(
            "a_build_that_skips_compensation_fails_msctl_test_naming_the_step",
            &format!(
                "the Docker engine is unreachable: {}",
                String::from_utf8_lossy(&ps.stderr).trim()
            ),
        );
        return;
    }
    let artifacts = dir.path().join("artifacts");
    let scenario = repo().join("scenarios/catalog/order-saga.toml");
    let out = msctl(
        &file,
        &[
            "test",
            "--scenario",
            scenario.to_str().expect("utf-8 path"),
            "--artifacts",
            artifacts.to_str().expect("utf-8 path"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "msctl test must fail:\n{stdout}"
    );
    // The summary names the scenario, the step and what it saw.
    assert!(stdout.contains("FAILED  order-saga"), "{stdout}");
    assert!(
        stdout.contains("step \"the declined order's stock is back\" (sql, method)"),
        "the failing step is not named:\n{stdout}"
    );
    assert!(stdout.contains("msctl test: FAILED"), "{stdout}");

    // The artifacts folder it names holds ps and every container's log.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("msctl test: logs, ps and reports saved in "))
        .unwrap_or_else(|| panic!("no artifacts line:\n{stdout}"));
    let saved =
        PathBuf::from(line.trim_start_matches("msctl test: logs, ps and reports saved in "));
    assert!(saved.starts_with(&artifacts), "{}", saved.display());
    let ps: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("ps.json")).expect("ps.json"))
            .expect("ps.json is JSON");
    assert!(
        ps.as_array()
            .expect("rows")
            .iter()
            .any(|r| r["component"] == "order-service"),
        "{ps}"
    );
    let order_log = std::fs::read_to_string(
        saved
            .join("logs")
            .join(format!("{PROJECT}-order-service-1.log")),
    )
    .expect("order-service log saved");
    assert!(!order_log.is_empty(), "the order-service log is empty");
    assert!(saved.join("report.json").is_file() && saved.join("junit.xml").is_file());

    // And the project is gone: no container carries its label any more.
    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.msctl.project={PROJECT}"),
        ])
        .output()
        .expect("docker ps");
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "msctl test left containers behind"
    );
}
