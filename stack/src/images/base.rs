//! The base image, [`BASE_TAG`]: Debian bookworm with the infrastructure packages.
//!
//! Online it is built FROM `debian:bookworm-slim` (present locally, or pulled). When that image
//! cannot be had — `--offline`, or no registry answers — it is bootstrapped on the host with
//! `debootstrap` from a Debian mirror and the root filesystem is streamed to the engine as an
//! import, so an engine that can pull nothing still gets every msctl image.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use super::process::{find_program, run_logged};
use super::{
    debian_mirror, image_label, inspect_optional, join_tail, push_tail, run_build, BuildOptions,
    ImageError, BASE_PACKAGES, BASE_PACKAGES_LABEL, BASE_TAG, DEFAULT_DEBIAN_MIRROR,
    LONG_REQUEST_TIMEOUT,
};
use crate::progress::{ProgressExt, ProgressSink};

/// The upstream image the online base is built FROM.
const UPSTREAM_BASE: &str = "debian:bookworm-slim";

/// How long a registry gets to answer a pull at all; beyond that we bootstrap instead.
const PULL_ANSWER_DEADLINE: Duration = Duration::from_secs(20);

/// How long the whole pull of the (small) upstream image may take once the registry answered.
const PULL_DEADLINE: Duration = Duration::from_secs(600);

/// Bump when the way the base is made changes, so existing bases are rebuilt.
const BASE_RECIPE_VERSION: &str = "1";

/// Serialises base builds within this process.
static BASE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Hash of the base image's contents as msctl specifies them (suite, packages, recipe
/// version); recorded in [`BASE_PACKAGES_LABEL`].
pub fn base_packages_hash() -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("bookworm\nrecipe={BASE_RECIPE_VERSION}\n"));
    for package in BASE_PACKAGES {
        hasher.update(package.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// Makes sure [`BASE_TAG`] exists and returns its image id.
///
/// An existing base is kept (unless `force`) when it carries the current package hash or no
/// hash at all (a base supplied by the user); one built from another package list is rebuilt.
/// Otherwise the base is built FROM `debian:bookworm-slim` when that is present or pullable
/// (never tried when `offline`), else with debootstrap.
pub async fn ensure_base(
    docker: &Docker,
    opts: &BuildOptions,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    // Parallel recipe builds all need the base: one builds it, the others wait and reuse it.
    let _building = match BASE_LOCK.try_lock() {
        Ok(guard) => guard,
        Err(_) => {
            progress.note(format!("waiting for another build of {BASE_TAG}"));
            BASE_LOCK.lock().await
        }
    };
    let want = base_packages_hash();
    if !opts.force {
        if let Some(existing) = inspect_optional(docker, BASE_TAG).await? {
            match image_label(&existing, BASE_PACKAGES_LABEL) {
                Some(have) if have != want => progress.note(format!(
                    "{BASE_TAG} was built from another package list; rebuilding it"
                )),
                _ => return Ok(existing.id.unwrap_or_default()),
            }
        }
    }
    if opts.offline {
        progress.note(format!(
            "offline: building {BASE_TAG} with debootstrap from {}",
            debian_mirror()
        ));
    } else {
        match upstream_available(docker, progress).await {
            Ok(()) => {
                return build_from_upstream(
                    docker,
                    UPSTREAM_BASE,
                    BASE_TAG,
                    &want,
                    opts.force,
                    progress,
                )
                .await
            }
            Err(reason) => progress.note(format!(
                "{UPSTREAM_BASE} is not available ({reason}); building {BASE_TAG} locally \
                 with debootstrap from {} instead",
                debian_mirror()
            )),
        }
    }
    build_with_debootstrap(docker, &want, progress).await
}

/// Ok when the upstream image is present or could be pulled; else why not.
async fn upstream_available(docker: &Docker, progress: &ProgressSink) -> Result<(), String> {
    match inspect_optional(docker, UPSTREAM_BASE).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => return Err(e.to_string()),
    }
    let key = "base:pull";
    progress.start(key, &format!("pulling {UPSTREAM_BASE}"), None);
    let options = CreateImageOptionsBuilder::default()
        .from_image("debian")
        .tag("bookworm-slim")
        .build();
    let mut stream = docker.create_image(Some(options), None, None);
    let started = Instant::now();
    let mut answered = false;
    loop {
        let deadline = if answered {
            PULL_DEADLINE
        } else {
            PULL_ANSWER_DEADLINE
        };
        let Some(remaining) = deadline.checked_sub(started.elapsed()) else {
            progress.finish(key, false, "pull timed out");
            return Err(format!("no progress within {}s", deadline.as_secs()));
        };
        match tokio::time::timeout(remaining, stream.next()).await {
            Err(_) => {
                progress.finish(key, false, "pull timed out");
                return Err(format!(
                    "pull did not finish within {}s",
                    deadline.as_secs()
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                progress.finish(key, false, "pull failed");
                return Err(format!("pull failed: {e}"));
            }
            Ok(Some(Ok(info))) => {
                answered = true;
                if let Some(status) = info.status {
                    progress.message(key, status);
                }
            }
        }
    }
    // A pull stream can end without an error item yet without the image (e.g. cancelled).
    match inspect_optional(docker, UPSTREAM_BASE).await {
        Ok(Some(_)) => {
            progress.finish(key, true, format!("pulled {UPSTREAM_BASE}"));
            Ok(())
        }
        _ => {
            progress.finish(key, false, "pull failed");
            Err("the pull ended without the image".to_string())
        }
    }
}

/// Builds the base FROM the upstream image with apt-get inside the engine.
async fn build_from_upstream(
    docker: &Docker,
    from: &str,
    tag: &str,
    hash: &str,
    force: bool,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    let dockerfile = upstream_dockerfile(from, &debian_mirror());
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(dockerfile.len() as u64);
    header.set_mtime(0);
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .and_then(|()| tar.finish())
        .map_err(|e| ImageError::io("packing the base Dockerfile", e))?;
    let tar = tar
        .into_inner()
        .map_err(|e| ImageError::io("packing the base Dockerfile", e))?;
    let labels = HashMap::from([(BASE_PACKAGES_LABEL.to_string(), hash.to_string())]);
    run_build(docker, tag, tar, labels, force, progress).await
}

/// The Dockerfile of the online base: the package list installed with apt-get FROM `from`.
fn upstream_dockerfile(from: &str, mirror: &str) -> String {
    let mut dockerfile = format!("# Generated by msctl: the msctl base image.\nFROM {from}\n");
    if mirror != DEFAULT_DEBIAN_MIRROR {
        // bookworm images use deb822 sources; older layouts use sources.list.
        dockerfile.push_str(&format!(
            "RUN for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do \\\n \
             [ -f \"$f\" ] && sed -i 's|{DEFAULT_DEBIAN_MIRROR}|{mirror}|g' \"$f\"; done; true\n"
        ));
    }
    dockerfile.push_str(&format!(
        "RUN apt-get update \\\n \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {} \\\n \
         && apt-get clean && rm -rf /var/lib/apt/lists/*\n\
         ENV LANG=C.UTF-8\n",
        BASE_PACKAGES.join(" ")
    ));
    dockerfile
}

/// debootstrap → clean → import, in a temporary directory that is removed afterwards.
async fn build_with_debootstrap(
    docker: &Docker,
    hash: &str,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    let debootstrap = find_program("debootstrap").ok_or(ImageError::DebootstrapMissing)?;
    let mirror = debian_mirror();
    let workdir = tempfile::Builder::new()
        .prefix("msctl-base-")
        .tempdir()
        .map_err(|e| ImageError::io("creating a temporary directory for debootstrap", e))?;
    let rootfs = workdir.path().join("rootfs");
    let result = async {
        run_debootstrap(&debootstrap, &rootfs, &mirror, progress).await?;
        clean_rootfs(&rootfs).await?;
        import_rootfs(docker, &rootfs, hash, progress).await
    }
    .await;
    remove_workdir(workdir, progress).await;
    result
}

async fn run_debootstrap(
    debootstrap: &Path,
    rootfs: &Path,
    mirror: &str,
    progress: &ProgressSink,
) -> Result<(), ImageError> {
    let key = "base:debootstrap";
    progress.start(key, &format!("debootstrap bookworm from {mirror}"), None);
    let started = Instant::now();
    let mut cmd = Command::new(debootstrap);
    cmd.arg("--variant=minbase")
        .arg(format!("--include={}", BASE_PACKAGES.join(",")))
        .arg("bookworm")
        .arg(rootfs)
        .arg(mirror)
        // Package scripts must not ask questions: there is nobody to answer.
        .env("DEBIAN_FRONTEND", "noninteractive");
    let mut tail = VecDeque::new();
    let status = run_logged(cmd, |_, line| {
        let line = line.trim_end();
        if !line.is_empty() {
            push_tail(&mut tail, line.to_string());
            progress.message(key, line);
        }
    })
    .await
    .map_err(|e| ImageError::io(format!("running {}", debootstrap.display()), e))?;
    if !status.success() {
        progress.finish(key, false, "debootstrap failed");
        return Err(ImageError::Debootstrap {
            mirror: mirror.to_string(),
            status: status.to_string(),
            tail: join_tail(&tail),
        });
    }
    progress.finish(
        key,
        true,
        format!("debootstrap done in {:.0?}", started.elapsed()),
    );
    Ok(())
}

/// Drops what an image does not need: downloaded packages, package lists, documentation.
async fn clean_rootfs(rootfs: &Path) -> Result<(), ImageError> {
    let rootfs = rootfs.to_path_buf();
    tokio::task::spawn_blocking(move || {
        for dir in [
            "var/cache/apt/archives",
            "var/cache/apt",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/info",
        ] {
            empty_dir(&rootfs.join(dir))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ImageError::io("cleaning the root filesystem", std::io::Error::other(e)))?
}

/// Removes a directory's regular files and symlinks, and its subdirectories' contents
/// recursively, keeping the directories themselves (apt expects them). Never follows links.
fn empty_dir(dir: &Path) -> Result<(), ImageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ImageError::io(format!("cleaning {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| ImageError::io(format!("cleaning {}", dir.display()), e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| ImageError::io(format!("cleaning {}", path.display()), e))?;
        if kind.is_dir() {
            empty_dir(&path)?;
        } else {
            std::fs::remove_file(&path)
                .map_err(|e| ImageError::io(format!("removing {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// Streams the root filesystem (as a tar made by the host's `tar`, numeric owners kept) to the
/// engine's import endpoint and tags the result [`BASE_TAG`].
async fn import_rootfs(
    docker: &Docker,
    rootfs: &Path,
    hash: &str,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    let key = "base:import";
    let estimate = {
        let rootfs = rootfs.to_path_buf();
        tokio::task::spawn_blocking(move || estimate_tar_size(&rootfs))
            .await
            .unwrap_or(0)
    };
    progress.start(
        key,
        &format!("importing the root filesystem as {BASE_TAG}"),
        (estimate > 0).then_some(estimate),
    );
    let started = Instant::now();
    let mut child = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(rootfs)
        // The engine provides /dev, /proc and /sys at run time.
        .args([
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "-cf",
            "-",
            ".",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ImageError::io("running tar to pack the root filesystem", e))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ImageError::Import {
            message: "tar has no piped output".to_string(),
        });
    };
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text).await;
        text
    });
    let tar_failure = Arc::new(Mutex::new(None::<String>));
    let sent = Arc::new(AtomicU64::new(0));
    let body = TarUpload {
        stdout,
        child: Some(child),
        stderr_text: Some(stderr_text),
        failure: tar_failure.clone(),
        sent: sent.clone(),
        reported: 0,
        limit: estimate,
        progress: progress.clone(),
    }
    .into_stream();

    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo("msctl/base")
        .tag("bookworm")
        .message("msctl base: debootstrap bookworm minbase")
        .changes(vec![
            format!("LABEL {BASE_PACKAGES_LABEL}={hash}"),
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "ENV LANG=C.UTF-8".to_string(),
            r#"CMD ["bash"]"#.to_string(),
        ])
        .build();
    let docker = docker.clone().with_timeout(LONG_REQUEST_TIMEOUT);
    let mut stream = docker.create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    let mut engine_error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status {
                    progress.message(key, status);
                }
            }
            Err(e) => {
                engine_error = Some(e.to_string());
                break;
            }
        }
    }
    drop(stream);
    // tar's own complaint explains a broken upload better than the engine's view of it.
    let tar_failure = tar_failure.lock().ok().and_then(|mut slot| slot.take());
    if let Some(message) = tar_failure.or(engine_error) {
        progress.finish(key, false, "import failed");
        return Err(ImageError::Import { message });
    }
    let image = inspect_optional(&docker, BASE_TAG)
        .await?
        .ok_or_else(|| ImageError::Import {
            message: format!("the engine accepted the upload but {BASE_TAG} does not exist"),
        })?;
    progress.finish(
        key,
        true,
        format!(
            "imported {} MiB in {:.0?}",
            sent.load(Ordering::Relaxed) / (1024 * 1024),
            started.elapsed()
        ),
    );
    Ok(image.id.unwrap_or_default())
}

/// The tar child's output as an upload body, reporting bytes sent; ends with an error when
/// tar fails so the engine never commits a truncated filesystem.
struct TarUpload {
    stdout: ChildStdout,
    child: Option<Child>,
    stderr_text: Option<tokio::task::JoinHandle<String>>,
    failure: Arc<Mutex<Option<String>>>,
    sent: Arc<AtomicU64>,
    reported: u64,
    limit: u64,
    progress: ProgressSink,
}

/// Upload chunk size: big enough to keep syscalls few, small enough to report progress often.
const CHUNK: usize = 256 * 1024;

/// Progress is reported every this many bytes.
const REPORT_EVERY: u64 = 8 * 1024 * 1024;

impl TarUpload {
    fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut upload| async move {
            let mut buf = BytesMut::with_capacity(CHUNK);
            match upload.stdout.read_buf(&mut buf).await {
                Ok(0) => {
                    let failure = upload.finish().await?;
                    Some((Err(std::io::Error::other(failure)), upload))
                }
                Ok(n) => {
                    let sent = upload.sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                    if sent - upload.reported >= REPORT_EVERY {
                        upload.reported = sent;
                        let position = if upload.limit > 0 {
                            sent.min(upload.limit)
                        } else {
                            sent
                        };
                        upload.progress.position("base:import", position);
                    }
                    Some((Ok(buf.freeze()), upload))
                }
                Err(e) => {
                    upload.record(format!("reading tar output: {e}"));
                    Some((Err(e), upload))
                }
            }
        })
    }

    /// At end of output: `None` when tar succeeded (or was already checked), else its error.
    async fn finish(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let status = match child.wait().await {
            Ok(status) => status,
            Err(e) => {
                let message = format!("waiting for tar: {e}");
                self.record(message.clone());
                return Some(message);
            }
        };
        if status.success() {
            return None;
        }
        let stderr = match self.stderr_text.take() {
            Some(handle) => handle.await.unwrap_or_default(),
            None => String::new(),
        };
        let message = format!("tar failed ({status}): {}", stderr.trim());
        self.record(message.clone());
        Some(message)
    }

    fn record(&self, message: String) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(message);
        }
    }
}

/// Roughly how many bytes `tar` will produce for `rootfs` (headers and padding included), for
/// a progress bar; 0 when unknown.
fn estimate_tar_size(rootfs: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            *total += 512;
            if meta.is_dir() {
                walk(&entry.path(), total);
            } else if meta.is_file() {
                *total += meta.len().div_ceil(512) * 512;
            }
        }
    }
    let mut total = 1024;
    if let Ok(entries) = std::fs::read_dir(rootfs) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            total += 512;
            if ["dev", "proc", "sys"].iter().any(|skip| name == *skip) {
                continue;
            }
            let path = entry.path();
            match path.symlink_metadata() {
                Ok(meta) if meta.is_dir() => walk(&path, &mut total),
                Ok(meta) if meta.is_file() => total += meta.len().div_ceil(512) * 512,
                _ => {}
            }
        }
    }
    total
}

/// Removes the debootstrap directory — but only once nothing is mounted inside it: a
/// debootstrap that died half-way can leave /proc or a bind-mounted host /dev there, and
/// deleting through those would damage the host.
async fn remove_workdir(workdir: tempfile::TempDir, progress: &ProgressSink) {
    let path = workdir.path().to_path_buf();
    let mut mounts = mounts_under(&path);
    // Deepest first, so nested mounts come off before their parents.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for mount in &mounts {
        let mut cmd = Command::new("umount");
        cmd.arg("--lazy").arg(mount);
        let _ = run_logged(cmd, |_, _| {}).await;
    }
    if !mounts_under(&path).is_empty() {
        let kept = workdir.keep();
        progress.note(format!(
            "left {} in place: something is still mounted inside it; unmount it and remove it \
             by hand",
            kept.display()
        ));
        return;
    }
    let removal = tokio::task::spawn_blocking(move || workdir.close()).await;
    if !matches!(removal, Ok(Ok(()))) {
        progress.note(format!(
            "could not remove the temporary directory {}; remove it by hand",
            path.display()
        ));
    }
}

/// Mount points at or below `dir`, from /proc/self/mounts.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|field| PathBuf::from(unescape_mount_field(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect()
}

/// /proc/self/mounts writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape_mount_field(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_field("/proc"), "/proc");
        assert_eq!(unescape_mount_field(r"/x\"), r"/x\");
    }

    #[test]
    fn online_base_installs_every_package_and_rewrites_the_mirror_only_when_asked() {
        let default = upstream_dockerfile(UPSTREAM_BASE, DEFAULT_DEBIAN_MIRROR);
        assert!(default.contains("FROM debian:bookworm-slim\n"), "{default}");
        assert!(default.contains(&BASE_PACKAGES.join(" ")), "{default}");
        assert!(!default.contains("sed -i"), "{default}");
        let mirrored = upstream_dockerfile(UPSTREAM_BASE, "http://mirror.example/debian");
        assert!(
            mirrored.contains("|http://mirror.example/debian|"),
            "{mirrored}"
        );
    }

    #[test]
    fn package_hash_is_stable_and_hex() {
        assert_eq!(base_packages_hash(), base_packages_hash());
        assert_eq!(base_packages_hash().len(), 64);
    }

    #[test]
    fn emptying_a_directory_keeps_it_and_does_not_follow_links() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("keep"), "x").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/file"), "x").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).expect("symlink");
        empty_dir(dir.path()).expect("empty");
        assert!(dir.path().join("sub").is_dir());
        assert!(!dir.path().join("sub/file").exists());
        assert!(outside.path().join("keep").exists());
    }
}
