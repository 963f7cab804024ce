//! Images: the msctl base image, the infrastructure images built from recipes in
//! `fixtures/images/<name>/`, and the service image built from host-built release binaries.
//!
//! Everything goes through the engine API (bollard): builds get an in-memory tar context, and
//! the offline base is a `debootstrap` root filesystem streamed to the engine as an import
//! (`create_image` with `fromSrc=-`), so no docker CLI and no registry are needed.
//!
//! Builds are skipped when an image with the same content already exists: every image msctl
//! builds carries [`RECIPE_HASH_LABEL`], a hash of its build context and of the base image it
//! was built on, so a rebuilt base also rebuilds what stands on it.

mod base;
mod context;
mod process;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

use crate::progress::{ProgressExt, ProgressSink};

pub use base::{base_packages_hash, ensure_base};
use context::BuildContext;

/// The tag of the base image every msctl image is built FROM.
pub const BASE_TAG: &str = "msctl/base:bookworm";

/// Debian packages in the base image: the infrastructure servers (so their recipes only add
/// configuration), `iproute2` for `tc netem` helpers, and the tools entrypoints and health
/// checks use. `util-linux` (setpriv) and `bash` are part of every Debian system.
pub const BASE_PACKAGES: &[&str] = &[
    "postgresql",
    "redis-server",
    "rabbitmq-server",
    "prometheus",
    "iproute2",
    "ca-certificates",
    "curl",
    "procps",
    "tini",
];

/// Label carrying the content hash of an image's build context (and base image id).
pub const RECIPE_HASH_LABEL: &str = "io.msctl.recipe-hash";

/// Label on the base image carrying [`base_packages_hash`] of the package list it holds.
pub const BASE_PACKAGES_LABEL: &str = "io.msctl.base-packages";

/// Environment variable naming the Debian mirror debootstrap (and the online build) use.
pub const DEBIAN_MIRROR_ENV: &str = "MSCTL_DEBIAN_MIRROR";

/// The mirror used when [`DEBIAN_MIRROR_ENV`] is unset.
pub const DEFAULT_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// How images get built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Never try a registry: the base is built with debootstrap from the Debian mirror.
    pub offline: bool,
    /// Rebuild the requested image, without the engine's build cache, even when an
    /// up-to-date one exists. Only the image being asked for: `build_recipe` and
    /// `build_binaries` never force a base rebuild (call [`ensure_base`] with `force` for that).
    pub force: bool,
}

/// What can go wrong while building images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A request to the engine failed.
    #[error("docker engine request failed while {action}: {source}")]
    Engine {
        /// What msctl was doing, e.g. `inspecting image "msctl/base:bookworm"`.
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The offline base needs debootstrap on the host.
    #[error(
        "debootstrap is not installed (looked in PATH, /usr/sbin and /sbin); install it with \
         apt-get install debootstrap, or make debian:bookworm-slim available to the engine"
    )]
    DebootstrapMissing,
    /// debootstrap ran and failed.
    #[error(
        "debootstrap of bookworm from {mirror} failed ({status}); check that the mirror is \
         reachable (set {DEBIAN_MIRROR_ENV} to use another) and that msctl runs as root; \
         last output:\n{tail}"
    )]
    Debootstrap {
        mirror: String,
        status: String,
        tail: String,
    },
    /// Importing the root filesystem into the engine failed.
    #[error("importing the base root filesystem as {BASE_TAG} failed: {message}")]
    Import { message: String },
    /// A local file or process operation failed.
    #[error("{action} failed: {source}")]
    Io {
        /// What msctl was doing, naming the path or program.
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// A recipe directory without a Dockerfile.
    #[error(
        "recipe directory {} has no Dockerfile; add one, or point the component at an existing \
         image instead of a recipe", dir.display()
    )]
    MissingDockerfile { dir: PathBuf },
    /// The engine reported a build failure.
    #[error("building image {tag} failed: {message}; last build output:\n{tail}")]
    Build {
        tag: String,
        message: String,
        tail: String,
    },
    /// `cargo build` failed.
    #[error(
        "cargo build --release in {} failed ({status}); fix the build and retry; last output:\n{tail}",
        root.display()
    )]
    Cargo {
        root: PathBuf,
        status: String,
        tail: String,
    },
    /// A requested binary was not produced by cargo.
    #[error(
        "cargo built no binary named {name:?} in {}; check the name against the workspace's \
         [[bin]] targets", root.display()
    )]
    MissingBinary { name: String, root: PathBuf },
    /// `build_binaries` was called with nothing to put in the image.
    #[error("no binaries given for image {tag}; name at least one cargo [[bin]] target")]
    NoBinaries { tag: String },
}

impl ImageError {
    pub(crate) fn engine(action: impl Into<String>, source: bollard::errors::Error) -> Self {
        Self::Engine {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}

/// Imports and builds send or wait for a lot of data before the engine answers; the caller's
/// client timeout (bollard's default is 120 s) must not cut them short.
pub(crate) const LONG_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Held by a binaries image from its cargo build until its binaries are packed.
static BINARIES_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Lines of build output kept to explain a failure.
const TAIL_LINES: usize = 30;

/// Builds the image `tag` from the recipe in `context_dir` (a Dockerfile plus the files it
/// copies), unless an image `tag` with the same content hash exists already. Returns the id.
///
/// Files keep their modes in the build context; `*.sh` files are always executable. When the
/// Dockerfile builds FROM [`BASE_TAG`], the base is ensured first (built if missing).
pub async fn build_recipe(
    docker: &Docker,
    tag: &str,
    context_dir: &Path,
    opts: &BuildOptions,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    let dir = context_dir.to_path_buf();
    let mut ctx = tokio::task::spawn_blocking(move || BuildContext::from_dir(&dir))
        .await
        .map_err(|e| ImageError::io("reading the recipe", std::io::Error::other(e)))??;
    let base_id = if ctx.base_image().as_deref() == Some(BASE_TAG) {
        let base_opts = BuildOptions {
            force: false,
            ..*opts
        };
        Some(ensure_base(docker, &base_opts, progress).await?)
    } else {
        None
    };
    ctx.mix_into_hash(base_id.as_deref().unwrap_or(""));
    // One label only: with the classic builder every label is one more build step.
    let labels = HashMap::from([(RECIPE_HASH_LABEL.to_string(), ctx.hash())]);
    build_unless_current(docker, tag, ctx, labels, opts, progress).await
}

/// Runs `cargo build --release` for `binaries` (with `features`) in `workspace_root`, then builds the image
/// `tag` FROM [`BASE_TAG`] with each binary in `/usr/local/bin` — unless an image `tag` with
/// the same binaries (and base) exists already. Returns the image id.
pub async fn build_binaries(
    docker: &Docker,
    tag: &str,
    workspace_root: &Path,
    binaries: &[String],
    features: &[String],
    opts: &BuildOptions,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    if binaries.is_empty() {
        return Err(ImageError::NoBinaries {
            tag: tag.to_string(),
        });
    }
    // One binaries image at a time, from its cargo build until its binaries are packed:
    // images built with other `features` write the same paths under target/release, so two
    // at once could each pack the other's build. (cargo would serialise the builds on its
    // lock anyway; the recipe and base builds still run alongside.)
    let packing = BINARIES_LOCK.lock().await;
    let executables =
        process::cargo_build_release(workspace_root, binaries, features, progress).await?;
    let files: Vec<(String, PathBuf)> = binaries
        .iter()
        .map(|name| {
            executables
                .get(name)
                .map(|path| (name.clone(), path.clone()))
                .ok_or_else(|| ImageError::MissingBinary {
                    name: name.clone(),
                    root: workspace_root.to_path_buf(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut ctx = tokio::task::spawn_blocking(move || BuildContext::for_binaries(&files))
        .await
        .map_err(|e| ImageError::io("packing the binaries", std::io::Error::other(e)))??;
    drop(packing);
    let base_opts = BuildOptions {
        force: false,
        ..*opts
    };
    let base_id = ensure_base(docker, &base_opts, progress).await?;
    ctx.mix_into_hash(&base_id);
    let labels = HashMap::from([
        (RECIPE_HASH_LABEL.to_string(), ctx.hash()),
        ("io.msctl.binaries".to_string(), binaries.join(",")),
    ]);
    build_unless_current(docker, tag, ctx, labels, opts, progress).await
}

/// Skips the build when `tag` already carries the context's hash (and `force` is off).
async fn build_unless_current(
    docker: &Docker,
    tag: &str,
    ctx: BuildContext,
    labels: HashMap<String, String>,
    opts: &BuildOptions,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    let hash = ctx.hash();
    if !opts.force {
        if let Some(existing) = inspect_optional(docker, tag).await? {
            if image_label(&existing, RECIPE_HASH_LABEL) == Some(hash.as_str()) {
                progress.note(format!("image {tag} is up to date"));
                return Ok(existing.id.unwrap_or_default());
            }
        }
    }
    run_build(docker, tag, ctx.into_tar(), labels, opts.force, progress).await
}

/// Builds `tag` from an in-memory tar context with the Dockerfile at its root. Never pulls:
/// the FROM image is the locally built base. `no_cache` (a forced build) re-runs every step
/// instead of reusing the engine's build cache. Returns the new image id.
pub(crate) async fn run_build(
    docker: &Docker,
    tag: &str,
    tar: Vec<u8>,
    labels: HashMap<String, String>,
    no_cache: bool,
    progress: &ProgressSink,
) -> Result<String, ImageError> {
    let key = format!("build:{tag}");
    progress.start(&key, &format!("building {tag}"), None);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .nocache(no_cache)
        .labels(&labels)
        .build();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let docker = docker.clone().with_timeout(LONG_REQUEST_TIMEOUT);
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                let message = match e {
                    bollard::errors::Error::DockerStreamError { error } => error,
                    other => other.to_string(),
                };
                progress.finish(&key, false, format!("build of {tag} failed"));
                return Err(ImageError::Build {
                    tag: tag.to_string(),
                    message: message.trim().to_string(),
                    tail: join_tail(&tail),
                });
            }
        };
        for line in info
            .stream
            .iter()
            .chain(info.status.iter())
            .flat_map(|text| text.lines())
            .map(str::trim_end)
            .filter(|line| !line.trim().is_empty())
        {
            push_tail(&mut tail, line.to_string());
            progress.message(&key, line);
        }
    }
    let built = docker
        .inspect_image(tag)
        .await
        .map_err(|e| ImageError::engine(format!("inspecting the image {tag} just built"), e))?;
    progress.finish(&key, true, format!("built {tag}"));
    Ok(built.id.unwrap_or_default())
}

/// Inspects an image, mapping "no such image" to `None`.
pub(crate) async fn inspect_optional(
    docker: &Docker,
    name: &str,
) -> Result<Option<bollard::models::ImageInspect>, ImageError> {
    match docker.inspect_image(name).await {
        Ok(image) => Ok(Some(image)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(ImageError::engine(format!("inspecting image {name:?}"), e)),
    }
}

/// A label of an inspected image.
pub(crate) fn image_label<'a>(
    image: &'a bollard::models::ImageInspect,
    key: &str,
) -> Option<&'a str> {
    image
        .config
        .as_ref()
        .and_then(|config| config.labels.as_ref())
        .and_then(|labels| labels.get(key))
        .map(String::as_str)
}

pub(crate) fn push_tail(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line);
}

pub(crate) fn join_tail(tail: &VecDeque<String>) -> String {
    tail.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Debian mirror to use: [`DEBIAN_MIRROR_ENV`] or [`DEFAULT_DEBIAN_MIRROR`].
pub fn debian_mirror() -> String {
    std::env::var(DEBIAN_MIRROR_ENV)
        .ok()
        .map(|m| m.trim().trim_end_matches('/').to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| DEFAULT_DEBIAN_MIRROR.to_string())
}
