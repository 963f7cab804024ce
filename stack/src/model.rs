//! The stack.toml model: parsing with source positions, validation, and the checked
//! [`Stack`] that the rest of msctl works from.
//!
//! Parsing happens in two layers. `Raw*` types mirror the file and keep the byte span of
//! every value that a later check may need to point at; [`Stack::parse`] turns them into the
//! validated model or a list of [`ConfigError`]s, each naming file, line and column. Commands
//! never see raw strings: durations, ports and conditions are typed by the time they leave here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;

use crate::graph::DependencyGraph;

/// A problem in a stack file, positioned at the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every problem found in one file (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Turns byte offsets into line and column for one source text.
#[derive(Debug, Clone)]
pub struct SourceMap<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> SourceMap<'a> {
    /// A map over `text`, which was read from `file`.
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Self { file, text }
    }

    /// 1-based line and column of a byte offset (clamped to the text).
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// An error at the start of `span`.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.position(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw layer: what the file says.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    name: Spanned<String>,
    #[serde(default)]
    images: IndexMap<Spanned<String>, RawImage>,
    #[serde(default)]
    components: IndexMap<Spanned<String>, RawComponent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    recipe: Option<Spanned<String>>,
    binaries: Option<Vec<String>>,
    features: Option<Spanned<Vec<String>>>,
    workspace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    image: Spanned<String>,
    command: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    environment: BTreeMap<String, RawEnvValue>,
    #[serde(default)]
    ports: Vec<Spanned<String>>,
    #[serde(default)]
    volumes: BTreeMap<Spanned<String>, Spanned<String>>,
    depends_on: Option<Spanned<RawDependsOn>>,
    health: Option<Spanned<RawHealth>>,
    replicas: Option<Spanned<i64>>,
    restart: Option<Spanned<String>>,
    #[serde(default)]
    profiles: Vec<String>,
    metrics: Option<RawMetrics>,
    prometheus_config: Option<Spanned<String>>,
    stop_timeout: Option<Spanned<String>>,
    seed: Option<Spanned<RawSeed>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    file: Spanned<String>,
    port: Spanned<i64>,
    #[serde(default = "default_seed_path")]
    path: String,
}

fn default_seed_path() -> String {
    "/admin/seed".to_string()
}

/// Environment values may be written as strings, numbers or booleans, as in compose.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawEnvValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl RawEnvValue {
    fn into_string(self) -> String {
        match self {
            RawEnvValue::Text(s) => s,
            RawEnvValue::Integer(i) => i.to_string(),
            RawEnvValue::Float(f) => f.to_string(),
            RawEnvValue::Bool(b) => b.to_string(),
        }
    }
}

/// `depends_on` as a list (condition `started`, as in compose) or a table of conditions.
///
/// Written by hand rather than `#[serde(untagged)]`: untagged enums buffer their input and
/// so lose the spans that errors need to point at the right dependency.
#[derive(Debug)]
enum RawDependsOn {
    List(Vec<Spanned<String>>),
    Map(IndexMap<Spanned<String>, Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawDependsOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawDependsOn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of component names or a table of component = condition")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(RawDependsOn::List(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = IndexMap::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.insert(k, v);
                }
                Ok(RawDependsOn::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    command: Option<Spanned<RawCommand>>,
    http: Option<Spanned<String>>,
    tcp: Option<Spanned<i64>>,
    port: Option<Spanned<i64>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<i64>>,
    start_period: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    port: Spanned<i64>,
    #[serde(default = "default_metrics_path")]
    path: String,
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

// ---------------------------------------------------------------------------------------
// Checked layer: what the rest of msctl uses.

/// A validated stack file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stack {
    /// `name` from the file; the default project name.
    pub name: String,
    /// The stack file itself.
    pub file: PathBuf,
    /// The folder holding the stack file; relative paths (recipes) resolve against it.
    pub root: PathBuf,
    /// Images msctl knows how to build, by tag.
    pub images: IndexMap<String, ImageRecipe>,
    /// Components in file order.
    pub components: IndexMap<String, Component>,
    /// Start order: dependencies before dependents.
    #[serde(skip)]
    pub graph: DependencyGraph,
}

/// How msctl builds an image that a component names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRecipe {
    /// A folder with a Dockerfile (relative to the stack file).
    Recipe(PathBuf),
    /// Release binaries of a cargo workspace, copied into an image on the base.
    Binaries(CargoBinaries),
}

/// What `cargo build --release` builds for a binaries image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CargoBinaries {
    /// Binary targets (`--bin NAME` each).
    pub binaries: Vec<String>,
    /// Cargo features (`--features`), e.g. `order-service/skip-compensation` for a
    /// deliberately broken variant of an image.
    pub features: Vec<String>,
    /// The workspace folder, relative to the stack file (default: the stack's folder).
    pub workspace: PathBuf,
}

/// One component of the stack: a service, a database, a one-shot job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    /// The component name; also its DNS alias inside the project network.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Overrides the image's command.
    pub command: Option<Vec<String>>,
    /// Overrides the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables, sorted so the config hash is stable.
    pub environment: BTreeMap<String, String>,
    /// Published ports (always on 127.0.0.1).
    pub ports: Vec<PortMapping>,
    /// Named volumes, mounted at `path`; the Docker volume is `<project>-<component>-<name>`.
    pub volumes: Vec<VolumeMount>,
    /// What must hold before this component starts.
    pub depends_on: Vec<Dependency>,
    /// How Docker decides the component is healthy.
    pub health: Option<HealthCheck>,
    /// How many containers run this component.
    pub replicas: u32,
    /// What Docker does when the process exits.
    pub restart: RestartPolicy,
    /// Profiles this component belongs to.
    pub profiles: Vec<String>,
    /// Where Prometheus scrapes this component, if it exposes metrics.
    pub metrics: Option<MetricsEndpoint>,
    /// When set, msctl renders a Prometheus configuration scraping every component with
    /// `metrics` and passes it to this component in the named environment variable.
    pub prometheus_config: Option<String>,
    /// Grace period between SIGTERM and SIGKILL on stop.
    pub stop_timeout: Duration,
    /// Fixture data msctl loads into this component (`msctl seed`, and after `up` creates it).
    pub seed: Option<Seed>,
}

/// How fixtures are loaded into a component: the file is POSTed to `path` on the published
/// `port`, with the component's `ADMIN_TOKEN` as `X-Admin-Token`. The endpoint must be
/// idempotent (seeding twice changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seed {
    /// JSON file, relative to the stack file.
    pub file: PathBuf,
    /// Container port (must be published).
    pub port: u16,
    /// HTTP path.
    pub path: String,
}

/// A published port: `host` on 127.0.0.1 to `container`; `host = 0` picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PortMapping {
    /// Port on 127.0.0.1 (0 = ephemeral).
    pub host: u16,
    /// Port inside the container.
    pub container: u16,
}

impl PortMapping {
    /// Parses compose's short syntax: `"CONTAINER"`, `"HOST:CONTAINER"` or
    /// `"127.0.0.1:HOST:CONTAINER"`, with an optional `/tcp`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.strip_suffix("/tcp").unwrap_or(text);
        if body.ends_with("/udp") {
            return Err(format!("port \"{text}\": only tcp ports are supported"));
        }
        let parts: Vec<&str> = body.split(':').collect();
        let port = |s: &str, what: &str| -> Result<u16, String> {
            s.trim().parse::<u16>().map_err(|_| {
                format!("port \"{text}\": {what} \"{s}\" is not a port number (0-65535)")
            })
        };
        let (host, container) = match parts.as_slice() {
            [c] => (0, port(c, "container port")?),
            [h, c] => (port(h, "host port")?, port(c, "container port")?),
            [ip, h, c] => {
                if *ip != "127.0.0.1" {
                    return Err(format!(
                        "port \"{text}\": msctl publishes ports on 127.0.0.1 only; write \"{h}:{c}\""
                    ));
                }
                (port(h, "host port")?, port(c, "container port")?)
            }
            _ => {
                return Err(format!(
                    "port \"{text}\": expected \"CONTAINER\" or \"HOST:CONTAINER\""
                ))
            }
        };
        if container == 0 {
            return Err(format!("port \"{text}\": the container port cannot be 0"));
        }
        Ok(Self { host, container })
    }
}

/// A named volume mounted into every replica of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeMount {
    /// Short name; the Docker volume is `<project>-<component>-<name>`.
    pub name: String,
    /// Absolute path inside the container.
    pub path: String,
}

/// One edge of the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The component depended on.
    pub component: String,
    /// What must hold of it.
    pub condition: Condition,
}

/// When a dependency counts as satisfied (compose's `service_*` conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Its containers are running.
    Started,
    /// Its containers report healthy (or running, when it has no health check).
    Healthy,
    /// It is a one-shot job whose every container exited with code 0.
    CompletedSuccessfully,
}

impl Condition {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "started" | "service_started" => Some(Self::Started),
            "healthy" | "service_healthy" => Some(Self::Healthy),
            "completed_successfully" | "service_completed_successfully" => {
                Some(Self::CompletedSuccessfully)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::CompletedSuccessfully => "completed_successfully",
        })
    }
}

/// A health check, run by the Docker engine inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// What is checked.
    pub probe: HealthProbe,
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Consecutive failures before the container is unhealthy.
    pub retries: u32,
    /// Grace period during which failures do not count.
    pub start_period: Duration,
}

/// What a health check runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthProbe {
    /// A command in exec form; healthy when it exits 0.
    Exec(Vec<String>),
    /// A shell command line; healthy when it exits 0.
    Shell(String),
    /// An HTTP GET on 127.0.0.1 inside the container; healthy on a 2xx.
    Http {
        /// Container port.
        port: u16,
        /// Request path.
        path: String,
    },
    /// A TCP connect to 127.0.0.1 inside the container.
    Tcp {
        /// Container port.
        port: u16,
    },
}

/// Docker restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart; one-shot jobs use this.
    No,
    /// Always restart.
    Always,
    /// Restart when the exit code is non-zero.
    OnFailure,
    /// Restart unless stopped by the user (the default).
    UnlessStopped,
}

impl RestartPolicy {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "no" => Some(Self::No),
            "always" => Some(Self::Always),
            "on-failure" => Some(Self::OnFailure),
            "unless-stopped" => Some(Self::UnlessStopped),
            _ => None,
        }
    }

    /// The engine's name for this policy.
    pub fn as_docker(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// Where a component serves Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsEndpoint {
    /// Container port.
    pub port: u16,
    /// HTTP path.
    pub path: String,
}

/// Longest replica count accepted; a typo like `replicas = 1000` should not melt a laptop.
const MAX_REPLICAS: i64 = 32;

impl Stack {
    /// Reads and validates a stack file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read the stack file: {e}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text`, which came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let map = SourceMap::new(path, text);
        let raw: RawStack = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ConfigErrors(vec![map.error(span, toml_message(&e))])
        })?;
        let mut errors = Vec::new();
        let stack = check(&map, raw, &mut errors);
        if errors.is_empty() {
            Ok(stack)
        } else {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(errors))
        }
    }

    /// Components that `up` should start: every component, or those in `profiles` plus
    /// everything they depend on, in start order.
    pub fn select(&self, names: &[String], profiles: &[String]) -> Result<Vec<String>, String> {
        for name in names {
            if !self.components.contains_key(name) {
                return Err(unknown_component(self, name));
            }
        }
        for p in profiles {
            if !self.components.values().any(|c| c.profiles.contains(p)) {
                let known: BTreeSet<&String> = self
                    .components
                    .values()
                    .flat_map(|c| c.profiles.iter())
                    .collect();
                return Err(format!(
                    "no component is in profile \"{p}\"; known profiles: {}",
                    known.into_iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let mut roots: Vec<String> = names.to_vec();
        roots.extend(
            self.components
                .values()
                .filter(|c| c.profiles.iter().any(|p| profiles.contains(p)))
                .map(|c| c.name.clone()),
        );
        if roots.is_empty() {
            return Ok(self.graph.order().to_vec());
        }
        Ok(self.graph.closure(&roots))
    }

    /// Resolves a user-typed component name: exact, or a unique prefix (`product` for
    /// `product-service`).
    pub fn resolve_component(&self, name: &str) -> Result<&Component, String> {
        if let Some(c) = self.components.get(name) {
            return Ok(c);
        }
        let matches: Vec<&Component> = self
            .components
            .values()
            .filter(|c| c.name.starts_with(name))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(unknown_component(self, name)),
            many => Err(format!(
                "\"{name}\" matches several components ({}); type more of the name",
                many.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The folder holding the stack file, absolute when it can be resolved (a bare
/// `stack.toml` has an empty parent, which is no use as a working directory).
fn stack_root(file: &Path) -> PathBuf {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf())
}

fn unknown_component(stack: &Stack, name: &str) -> String {
    format!(
        "no component named \"{name}\" in {}; components: {}",
        stack.file.display(),
        stack
            .components
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// toml's message carries its own rendering of the source line; keep only the first line of
/// the explanation so ours (file:line:col: message) stays on one line.
fn toml_message(e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    msg.lines().next().unwrap_or(msg).to_string()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn duration(
    map: &SourceMap,
    errors: &mut Vec<ConfigError>,
    value: &Option<Spanned<String>>,
    default: Duration,
    what: &str,
) -> Duration {
    match value {
        None => default,
        Some(v) => match humantime::parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(_) => {
                errors.push(map.error(
                    v.span(),
                    format!(
                        "{what} \"{}\" is not a duration; write e.g. \"500ms\", \"2s\" or \"1m\"",
                        v.get_ref()
                    ),
                ));
                default
            }
        },
    }
}

fn port_number(
    map: &SourceMap,
    errors: &mut Vec<ConfigError>,
    v: &Spanned<i64>,
    what: &str,
) -> u16 {
    match u16::try_from(*v.get_ref()) {
        Ok(p) if p > 0 => p,
        _ => {
            errors.push(map.error(
                v.span(),
                format!("{what} {} is not a port number (1-65535)", v.get_ref()),
            ));
            1
        }
    }
}

fn check(map: &SourceMap, raw: RawStack, errors: &mut Vec<ConfigError>) -> Stack {
    let name = raw.name.get_ref().clone();
    if !valid_name(&name) {
        errors.push(map.error(
            raw.name.span(),
            format!("stack name \"{name}\" must be lowercase letters, digits, '-' or '_' (at most 48), starting with a letter or digit"),
        ));
    }

    let mut images = IndexMap::new();
    for (tag, img) in raw.images {
        if img.binaries.is_none() {
            for (key, span) in [
                ("features", img.features.as_ref().map(|f| f.span())),
                ("workspace", img.workspace.as_ref().map(|w| w.span())),
            ] {
                if let Some(span) = span {
                    errors.push(map.error(
                        span,
                        format!(
                            "image \"{}\": `{key}` only applies to a `binaries` image",
                            tag.get_ref()
                        ),
                    ));
                }
            }
        }
        let recipe = match (img.recipe, img.binaries) {
            (Some(r), None) => ImageRecipe::Recipe(PathBuf::from(r.get_ref())),
            (None, Some(b)) if !b.is_empty() => {
                let workspace = img
                    .workspace
                    .as_ref()
                    .map_or_else(|| PathBuf::from("."), |w| PathBuf::from(w.get_ref()));
                if let Some(w) = &img.workspace {
                    let full = stack_root(map.file).join(&workspace);
                    if !full.join("Cargo.toml").is_file() {
                        errors.push(map.error(
                            w.span(),
                            format!(
                                "image \"{}\": workspace {} has no Cargo.toml",
                                tag.get_ref(),
                                full.display()
                            ),
                        ));
                    }
                }
                let features = img.features.map(|f| f.into_inner()).unwrap_or_default();
                if let Some(bad) = features.iter().find(|f| {
                    f.is_empty()
                        || !f
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c))
                }) {
                    errors.push(map.error(
                        tag.span(),
                        format!(
                            "image \"{}\": feature {bad:?} is not a cargo feature name (letters, digits, '-', '_', 'crate/feature')",
                            tag.get_ref()
                        ),
                    ));
                }
                ImageRecipe::Binaries(CargoBinaries {
                    binaries: b,
                    features,
                    workspace,
                })
            }
            _ => {
                errors.push(map.error(
                    tag.span(),
                    format!(
                        "image \"{}\" needs exactly one of `recipe` (a folder with a Dockerfile) or `binaries` (a non-empty list of cargo binaries)",
                        tag.get_ref()
                    ),
                ));
                continue;
            }
        };
        if let ImageRecipe::Recipe(dir) = &recipe {
            let full = stack_root(map.file).join(dir);
            if !full.join("Dockerfile").is_file() {
                errors.push(map.error(
                    tag.span(),
                    format!(
                        "image \"{}\": recipe folder {} has no Dockerfile",
                        tag.get_ref(),
                        full.display()
                    ),
                ));
            }
        }
        images.insert(tag.into_inner(), recipe);
    }

    let names: Vec<String> = raw.components.keys().map(|k| k.get_ref().clone()).collect();
    let mut components = IndexMap::new();
    let mut dep_spans: HashMap<(String, String), Range<usize>> = HashMap::new();
    // host port -> (component, span) for the duplicate check
    let mut host_ports: HashMap<u16, String> = HashMap::new();

    for (key, rc) in raw.components {
        let cname = key.get_ref().clone();
        if !valid_name(&cname) {
            errors.push(map.error(
                key.span(),
                format!("component name \"{cname}\" must be lowercase letters, digits, '-' or '_' (at most 48), starting with a letter or digit"),
            ));
        }
        if rc.image.get_ref().trim().is_empty() {
            errors.push(map.error(
                rc.image.span(),
                format!("component \"{cname}\": image cannot be empty"),
            ));
        }

        let replicas = match &rc.replicas {
            None => 1,
            Some(r) if (1..=MAX_REPLICAS).contains(r.get_ref()) => *r.get_ref() as u32,
            Some(r) => {
                errors.push(map.error(
                    r.span(),
                    format!(
                        "component \"{cname}\": replicas must be between 1 and {MAX_REPLICAS}, not {}",
                        r.get_ref()
                    ),
                ));
                1
            }
        };

        let mut ports = Vec::new();
        for p in &rc.ports {
            match PortMapping::parse(p.get_ref()) {
                Ok(pm) => {
                    if pm.host != 0 {
                        if replicas > 1 {
                            errors.push(map.error(
                                p.span(),
                                format!(
                                    "component \"{cname}\" has {replicas} replicas, so host port {} would be taken twice; use \"{}\" for an ephemeral port",
                                    pm.host, pm.container
                                ),
                            ));
                        }
                        if let Some(other) = host_ports.insert(pm.host, cname.clone()) {
                            errors.push(map.error(
                                p.span(),
                                format!(
                                    "host port {} of component \"{cname}\" is already published by component \"{other}\"",
                                    pm.host
                                ),
                            ));
                        }
                    }
                    if ports
                        .iter()
                        .any(|q: &PortMapping| q.container == pm.container)
                    {
                        errors.push(map.error(
                            p.span(),
                            format!(
                                "component \"{cname}\" publishes container port {} twice",
                                pm.container
                            ),
                        ));
                    }
                    ports.push(pm);
                }
                Err(msg) => {
                    errors.push(map.error(p.span(), format!("component \"{cname}\": {msg}")))
                }
            }
        }

        let mut volumes = Vec::new();
        for (vname, vpath) in &rc.volumes {
            if !valid_name(vname.get_ref()) {
                errors.push(map.error(
                    vname.span(),
                    format!("component \"{cname}\": volume name \"{}\" must be lowercase letters, digits, '-' or '_'", vname.get_ref()),
                ));
            }
            if !vpath.get_ref().starts_with('/') {
                errors.push(map.error(
                    vpath.span(),
                    format!(
                        "component \"{cname}\": volume \"{}\" must mount at an absolute path, not \"{}\"",
                        vname.get_ref(),
                        vpath.get_ref()
                    ),
                ));
            }
            volumes.push(VolumeMount {
                name: vname.get_ref().clone(),
                path: vpath.get_ref().clone(),
            });
        }

        let mut depends_on = Vec::new();
        if let Some(deps) = rc.depends_on {
            let entries: Vec<(Spanned<String>, Option<Spanned<String>>)> = match deps.into_inner() {
                RawDependsOn::List(list) => list.into_iter().map(|d| (d, None)).collect(),
                RawDependsOn::Map(m) => m.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            };
            for (dep, cond) in entries {
                let dname = dep.get_ref().clone();
                if !names.contains(&dname) {
                    errors.push(map.error(
                        dep.span(),
                        format!(
                            "component \"{cname}\" depends on \"{dname}\", which is not a component of this stack"
                        ),
                    ));
                    continue;
                }
                if dname == cname {
                    errors.push(map.error(
                        dep.span(),
                        format!("component \"{cname}\" cannot depend on itself"),
                    ));
                    continue;
                }
                let condition = match &cond {
                    None => Condition::Started,
                    Some(c) => match Condition::parse(c.get_ref()) {
                        Some(c) => c,
                        None => {
                            errors.push(map.error(
                                c.span(),
                                format!(
                                    "unknown condition \"{}\" for dependency \"{dname}\"; use started, healthy or completed_successfully",
                                    c.get_ref()
                                ),
                            ));
                            Condition::Started
                        }
                    },
                };
                dep_spans.insert((cname.clone(), dname.clone()), dep.span());
                depends_on.push(Dependency {
                    component: dname,
                    condition,
                });
            }
        }

        let health = rc.health.map(|h| {
            let span = h.span();
            let h = h.into_inner();
            let probe = match (&h.command, &h.http, &h.tcp) {
                (Some(c), None, None) => match c.get_ref() {
                    RawCommand::Exec(v) if v.is_empty() => {
                        errors.push(map.error(c.span(), "health command cannot be empty"));
                        HealthProbe::Exec(vec!["true".into()])
                    }
                    RawCommand::Exec(v) => HealthProbe::Exec(v.clone()),
                    RawCommand::Shell(s) => HealthProbe::Shell(s.clone()),
                },
                (None, Some(path), None) => {
                    let port = match &h.port {
                        Some(p) => port_number(map, errors, p, "health port"),
                        None => {
                            errors.push(map.error(
                                path.span(),
                                format!("component \"{cname}\": an http health check needs `port` (the container port)"),
                            ));
                            1
                        }
                    };
                    if !path.get_ref().starts_with('/') {
                        errors.push(map.error(
                            path.span(),
                            format!("health path \"{}\" must start with '/'", path.get_ref()),
                        ));
                    }
                    HealthProbe::Http {
                        port,
                        path: path.get_ref().clone(),
                    }
                }
                (None, None, Some(t)) => HealthProbe::Tcp {
                    port: port_number(map, errors, t, "health tcp port"),
                },
                _ => {
                    errors.push(map.error(
                        span.clone(),
                        format!("component \"{cname}\": a health check needs exactly one of `command`, `http` or `tcp`"),
                    ));
                    HealthProbe::Exec(vec!["true".into()])
                }
            };
            let retries = match &h.retries {
                None => 30,
                Some(r) if (1..=10_000).contains(r.get_ref()) => *r.get_ref() as u32,
                Some(r) => {
                    errors.push(map.error(r.span(), "health retries must be between 1 and 10000"));
                    30
                }
            };
            HealthCheck {
                probe,
                interval: duration(map, errors, &h.interval, Duration::from_secs(2), "health interval"),
                timeout: duration(map, errors, &h.timeout, Duration::from_secs(5), "health timeout"),
                retries,
                start_period: duration(map, errors, &h.start_period, Duration::ZERO, "health start_period"),
            }
        });

        let restart = match &rc.restart {
            None => RestartPolicy::UnlessStopped,
            Some(r) => RestartPolicy::parse(r.get_ref()).unwrap_or_else(|| {
                errors.push(map.error(
                    r.span(),
                    format!(
                        "unknown restart policy \"{}\"; use no, always, on-failure or unless-stopped",
                        r.get_ref()
                    ),
                ));
                RestartPolicy::UnlessStopped
            }),
        };

        let metrics = rc.metrics.map(|m| MetricsEndpoint {
            port: port_number(map, errors, &m.port, "metrics port"),
            path: m.path,
        });

        let stop_timeout = duration(
            map,
            errors,
            &rc.stop_timeout,
            Duration::from_secs(10),
            "stop_timeout",
        );

        let seed = rc.seed.map(|sd| {
            let span = sd.span();
            let sd = sd.into_inner();
            let port = port_number(map, errors, &sd.port, "seed port");
            if !ports.iter().any(|p| p.container == port) {
                errors.push(map.error(
                    span,
                    format!("component \"{cname}\": seed port {port} must be published in `ports` so msctl can reach it on 127.0.0.1"),
                ));
            }
            let file = PathBuf::from(sd.file.get_ref());
            if !stack_root(map.file).join(&file).is_file() {
                errors.push(map.error(
                    sd.file.span(),
                    format!("component \"{cname}\": seed file {} does not exist", file.display()),
                ));
            }
            Seed {
                file,
                port,
                path: sd.path,
            }
        });

        components.insert(
            cname.clone(),
            Component {
                name: cname,
                image: rc.image.into_inner(),
                command: rc.command,
                entrypoint: rc.entrypoint,
                environment: rc
                    .environment
                    .into_iter()
                    .map(|(k, v)| (k, v.into_string()))
                    .collect(),
                ports,
                volumes,
                depends_on,
                health,
                replicas,
                restart,
                profiles: rc.profiles,
                metrics,
                prometheus_config: rc.prometheus_config.map(Spanned::into_inner),
                stop_timeout,
                seed,
            },
        );
    }

    // Conditions that cannot be met: waiting for a job to complete needs a job, and waiting
    // for health of a component without a health check is allowed (it counts as running).
    for c in components.values() {
        for d in &c.depends_on {
            if d.condition == Condition::CompletedSuccessfully {
                if let Some(dep) = components.get(&d.component) {
                    if dep.restart != RestartPolicy::No {
                        let span = dep_spans
                            .get(&(c.name.clone(), d.component.clone()))
                            .cloned()
                            .unwrap_or(0..0);
                        errors.push(map.error(
                            span,
                            format!(
                                "component \"{}\" waits for \"{}\" to complete, but \"{}\" has restart policy {}; set restart = \"no\" on one-shot jobs",
                                c.name, d.component, d.component, dep.restart.as_docker()
                            ),
                        ));
                    }
                }
            }
        }
    }

    let graph = match DependencyGraph::new(&components) {
        Ok(g) => g,
        Err(cycle) => {
            let span = dep_spans
                .get(&(cycle[0].clone(), cycle[1].clone()))
                .cloned()
                .unwrap_or(0..0);
            errors.push(map.error(span, format!("dependency cycle: {}", cycle.join(" -> "))));
            DependencyGraph::default()
        }
    };

    Stack {
        name,
        file: map.file.to_path_buf(),
        root: stack_root(map.file),
        images,
        components,
        graph,
    }
}
