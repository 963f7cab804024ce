//! Real-engine test of the image pipeline: the offline base (debootstrap + import through the
//! engine API) and the four infrastructure recipes in fixtures/images/.
//!
//! Skips, saying why, when no Docker engine is reachable. The first run bootstraps the base
//! from the Debian mirror (a few minutes); later runs reuse it and the unchanged recipes.

use std::path::PathBuf;
use std::time::Instant;

use msctl_stack::images::{
    build_recipe, ensure_base, BuildOptions, BASE_PACKAGES_LABEL, BASE_TAG, RECIPE_HASH_LABEL,
};
use msctl_stack::progress::{ProgressEvent, ProgressSink};

/// Prints progress as plain lines (so a failing run shows what happened), minus byte counts.
fn printing_sink() -> ProgressSink {
    std::sync::Arc::new(|event| match event {
        ProgressEvent::Start { label, .. } => eprintln!("[start] {label}"),
        ProgressEvent::Advance {
            key,
            message: Some(message),
            ..
        } => eprintln!("[{key}] {message}"),
        ProgressEvent::Advance { .. } => {}
        ProgressEvent::Finish { key, ok, message } => {
            eprintln!("[{key}] {} {message}", if ok { "done:" } else { "FAILED:" })
        }
        ProgressEvent::Note(line) => eprintln!("[note] {line}"),
    })
}

/// The tests in this file share the engine's base image and one of them changes the process
/// environment (the mirror): they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn recipes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images")
}

#[tokio::test]
async fn offline_base_and_infrastructure_recipes_build() {
    let docker = match msctl_stack::engine::connect().await {
        Ok(docker) => docker,
        Err(e) => {
            msctl_stack::testing::cannot_run(
                "offline_base_and_infrastructure_recipes_build",
                &e.to_string(),
            );
            return;
        }
    };
    let _serial = SERIAL.lock().await;
    let progress = printing_sink();
    let opts = BuildOptions {
        offline: true,
        force: false,
    };

    let started = Instant::now();
    let base_id = ensure_base(&docker, &opts, &progress)
        .await
        .unwrap_or_else(|e| panic!("ensure_base failed: {e}"));
    eprintln!("base {BASE_TAG} = {base_id} in {:.1?}", started.elapsed());
    let base = docker.inspect_image(BASE_TAG).await.expect("inspect base");
    let labels = base
        .config
        .and_then(|c| c.labels)
        .expect("the base image has labels");
    assert!(
        labels.contains_key(BASE_PACKAGES_LABEL),
        "base lacks {BASE_PACKAGES_LABEL}: {labels:?}"
    );
    eprintln!("base size: {} MB", base.size.unwrap_or(0) / 1_000_000);

    for name in ["postgres", "redis", "rabbitmq", "prometheus"] {
        let tag = format!("msctl/{name}:dev");
        let dir = recipes_dir().join(name);
        let started = Instant::now();
        let id = build_recipe(&docker, &tag, &dir, &opts, &progress)
            .await
            .unwrap_or_else(|e| panic!("building {tag} failed: {e}"));
        eprintln!("{tag} = {id} in {:.1?}", started.elapsed());

        // An unchanged recipe is recognised by its hash label and not rebuilt.
        let again = build_recipe(&docker, &tag, &dir, &opts, &progress)
            .await
            .unwrap_or_else(|e| panic!("second build of {tag} failed: {e}"));
        assert_eq!(id, again, "{tag} was rebuilt although nothing changed");
        let image = docker
            .inspect_image(&tag)
            .await
            .expect("inspect recipe image");
        let has_hash = image
            .config
            .and_then(|c| c.labels)
            .is_some_and(|l| l.contains_key(RECIPE_HASH_LABEL));
        assert!(has_hash, "{tag} lacks {RECIPE_HASH_LABEL}");
    }
}

/// A recipe whose Dockerfile fails must surface the engine's error and the build output.
#[tokio::test]
async fn failing_recipe_reports_the_build_output() {
    let docker = match msctl_stack::engine::connect().await {
        Ok(docker) => docker,
        Err(e) => {
            msctl_stack::testing::cannot_run(
                "failing_recipe_reports_the_build_output",
                &e.to_string(),
            );
            return;
        }
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // FROM scratch needs no base and no registry; COPY of a missing file fails the build.
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY does-not-exist /x\n",
    )
    .expect("write Dockerfile");
    let err = build_recipe(
        &docker,
        "msctl/imagetest-broken:dev",
        dir.path(),
        &BuildOptions::default(),
        &printing_sink(),
    )
    .await
    .expect_err("a broken recipe must fail");
    let text = err.to_string();
    assert!(
        text.contains("msctl/imagetest-broken:dev") && text.contains("does-not-exist"),
        "{text}"
    );
}

/// The service-image path end to end on a throw-away cargo project: cargo build --release,
/// binaries packed at 0o755 into an image FROM the base, and a second call recognised as
/// up to date.
#[tokio::test]
async fn binaries_are_packed_into_an_image_on_the_base() {
    let docker = match msctl_stack::engine::connect().await {
        Ok(docker) => docker,
        Err(e) => {
            msctl_stack::testing::cannot_run(
                "binaries_are_packed_into_an_image_on_the_base",
                &e.to_string(),
            );
            return;
        }
    };
    let _serial = SERIAL.lock().await;
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        project.path().join("Cargo.toml"),
        "[package]\nname = \"imagetest-hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [workspace]\n\n[features]\nloud = []\n\n[[bin]]\nname = \"imagetest-hello\"\npath = \"main.rs\"\n",
    )
    .expect("write Cargo.toml");
    std::fs::write(
        project.path().join("main.rs"),
        "fn main() { if cfg!(feature = \"loud\") { println!(\"HELLO FROM MSCTL\") } else { println!(\"hello from msctl\") } }\n",
    )
    .expect("write main.rs");
    let opts = BuildOptions {
        offline: true,
        force: false,
    };
    let progress = printing_sink();
    let binaries = vec!["imagetest-hello".to_string()];
    let tag = "msctl/imagetest-binaries:dev";
    let id = msctl_stack::images::build_binaries(
        &docker,
        tag,
        project.path(),
        &binaries,
        &[],
        &opts,
        &progress,
    )
    .await
    .unwrap_or_else(|e| panic!("build_binaries failed: {e}"));
    let again = msctl_stack::images::build_binaries(
        &docker,
        tag,
        project.path(),
        &binaries,
        &[],
        &opts,
        &progress,
    )
    .await
    .unwrap_or_else(|e| panic!("second build_binaries failed: {e}"));
    assert_eq!(id, again, "unchanged binaries were rebuilt");

    let missing = msctl_stack::images::build_binaries(
        &docker,
        tag,
        project.path(),
        &["no-such-bin".to_string()],
        &[],
        &opts,
        &progress,
    )
    .await
    .expect_err("an unknown binary must fail");
    assert!(missing.to_string().contains("no-such-bin"), "{missing}");

    // The binary runs from /usr/local/bin (on PATH, executable) in a container of the image.
    let output = run_to_completion(&docker, tag, "imagetest-hello").await;
    assert_eq!(output.trim(), "hello from msctl");

    // A variant built with a cargo feature is a different image that runs the variant.
    let loud_tag = "msctl/imagetest-binaries:loud";
    let loud = msctl_stack::images::build_binaries(
        &docker,
        loud_tag,
        project.path(),
        &binaries,
        &["loud".to_string()],
        &opts,
        &progress,
    )
    .await
    .unwrap_or_else(|e| panic!("build_binaries with a feature failed: {e}"));
    assert_ne!(loud, id, "the feature did not change the image");
    let output = run_to_completion(&docker, loud_tag, "imagetest-hello").await;
    assert_eq!(output.trim(), "HELLO FROM MSCTL");
    let _ = docker
        .remove_image(
            loud_tag,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;

    let _ = docker
        .remove_image(
            tag,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

/// Runs `command` in a throw-away container of `image` (labelled for this test) and returns
/// its output.
async fn run_to_completion(docker: &bollard::Docker, image: &str, command: &str) -> String {
    use futures_util::StreamExt;
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec![command.to_string()]),
        labels: Some(std::collections::HashMap::from([(
            "io.msctl.project".to_string(),
            "imagetest".to_string(),
        )])),
        ..Default::default()
    };
    let created = docker
        .create_container(None, body)
        .await
        .expect("create container");
    docker
        .start_container(&created.id, None)
        .await
        .expect("start container");
    let mut wait = docker.wait_container(&created.id, None);
    while let Some(item) = wait.next().await {
        item.expect("container exits with status 0");
    }
    let options = bollard::query_parameters::LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(&created.id, Some(options));
    let mut output = String::new();
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.expect("log chunk").to_string());
    }
    let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
        .force(true)
        .build();
    docker
        .remove_container(&created.id, Some(remove))
        .await
        .expect("remove container");
    output
}

/// An unreachable mirror fails with debootstrap's own words and the mirror's name — and a
/// failed bootstrap leaves the existing base image alone.
#[tokio::test]
async fn unreachable_mirror_fails_with_the_mirror_named() {
    let docker = match msctl_stack::engine::connect().await {
        Ok(docker) => docker,
        Err(e) => {
            msctl_stack::testing::cannot_run(
                "unreachable_mirror_fails_with_the_mirror_named",
                &e.to_string(),
            );
            return;
        }
    };
    let _serial = SERIAL.lock().await;
    let before = docker.inspect_image(BASE_TAG).await.ok().and_then(|i| i.id);
    // Port 9 (discard) on loopback: nothing listens, so debootstrap fails at once.
    let mirror = "http://127.0.0.1:9/debian";
    std::env::set_var(msctl_stack::images::DEBIAN_MIRROR_ENV, mirror);
    let result = ensure_base(
        &docker,
        &BuildOptions {
            offline: true,
            force: true,
        },
        &printing_sink(),
    )
    .await;
    std::env::remove_var(msctl_stack::images::DEBIAN_MIRROR_ENV);
    let err = result.expect_err("a bootstrap from an unreachable mirror must fail");
    let text = err.to_string();
    assert!(
        text.contains(mirror) && text.contains("debootstrap"),
        "{text}"
    );
    let after = docker.inspect_image(BASE_TAG).await.ok().and_then(|i| i.id);
    assert_eq!(before, after, "a failed bootstrap replaced the base image");
}
