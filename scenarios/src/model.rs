//! The scenario file format: parsing with source positions, validation, and the checked
//! [`Scenario`] the engine runs.
//!
//! As in stack.toml, two layers: `Raw*` types mirror the file and keep spans; [`parse`]
//! turns them into the checked model or a list of [`ConfigError`]s naming file:line:col.
//! Everything that can be checked without a running stack is checked here: durations,
//! templates, JSON paths, regexes, fault parameters, references to faults and variables.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use msctl_chaos::{FaultKind, FaultSpec, HttpFault, PartitionReset, Target};
use msctl_stack::model::{ConfigError, ConfigErrors, SourceMap};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_spanned::Spanned;

use crate::jsonpath::JsonPath;
use crate::matcher::Matcher;
use crate::template::{self, Reference, Template};

/// Longest load phase accepted.
pub const MAX_LOAD_DURATION: Duration = Duration::from_secs(600);
/// Most virtual users accepted.
pub const MAX_VUS: u32 = 1000;
/// Highest arrival rate accepted (requests per second).
pub const MAX_RATE: f64 = 50_000.0;
/// Default and highest request count of one load phase.
pub const MAX_LOAD_REQUESTS: u64 = 5_000_000;

// ---------------------------------------------------------------------------------------
// Raw layer.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    vars: IndexMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    steady_state: Vec<Spanned<RawStep>>,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    rollbacks: Vec<Spanned<RawStep>>,
    #[serde(default)]
    tune: IndexMap<String, Spanned<IndexMap<String, toml::Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    request: Option<Spanned<RawRequest>>,
    expect: Option<Spanned<RawExpect>>,
    #[serde(default)]
    capture: IndexMap<String, Spanned<String>>,
    eventually: Option<Spanned<RawEventually>>,
    chaos: Option<Spanned<RawChaos>>,
    heal: Option<Spanned<String>>,
    load: Option<Spanned<RawLoad>>,
    sql: Option<Spanned<RawSql>>,
    sleep: Option<Spanned<String>>,
    workload: Option<Spanned<RawWorkload>>,
    check: Option<Spanned<RawCheck>>,
    during: Option<Spanned<String>>,
    within: Option<Spanned<RawWithin>>,
    #[serde(default)]
    continuous: bool,
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default = "get")]
    method: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    headers: IndexMap<String, Spanned<String>>,
    json: Option<toml::Value>,
    body: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

fn get() -> Spanned<String> {
    Spanned::new(0..0, "GET".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    status: Option<Spanned<toml::Value>>,
    latency: Option<Spanned<String>>,
    #[serde(default)]
    json: Vec<Spanned<RawJsonExpect>>,
    #[serde(default)]
    headers: IndexMap<String, Spanned<toml::Value>>,
    body_contains: Option<Spanned<String>>,
    body_lacks: Option<Spanned<OneOrMany>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonExpect {
    path: Spanned<String>,
    #[serde(flatten)]
    matcher: RawMatcher,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatcher {
    equals: Option<toml::Value>,
    not_equals: Option<toml::Value>,
    exists: Option<bool>,
    // Not Spanned: `flatten` buffers values and loses spans; errors point at the entry.
    matches: Option<String>,
    gte: Option<f64>,
    lte: Option<f64>,
    one_of: Option<Vec<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventually {
    timeout: Spanned<String>,
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWithin {
    fault: Spanned<String>,
    deadline: Spanned<String>,
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split(',').map(|t| t.trim().to_string()).collect(),
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChaos {
    fault: Spanned<String>,
    target: Spanned<OneOrMany>,
    name: Option<String>,
    from: Option<OneOrMany>,
    /// partition only: keep, start or heal (what happens to the open connections).
    reset: Option<Spanned<String>>,
    signal: Option<String>,
    delay: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    percent: Option<f64>,
    error_rate: Option<f64>,
    status: Option<u16>,
    first: Option<u64>,
    path: Option<String>,
    duration: Option<Spanned<String>>,
    seed: Option<u64>,
    /// A start delay (`"12s"`); a boolean here is a mistaken `after_handler`.
    after: Option<Spanned<toml::Value>>,
    /// http-fault only: apply it after the handler (a lost response).
    after_handler: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    clients: Option<u32>,
    duration: Spanned<String>,
    seed: Option<u64>,
    think: Option<Spanned<String>>,
    products: Option<u32>,
    scarce: Option<u32>,
    scarce_stock: Option<u32>,
    order_share: Option<f64>,
    admin_token: Option<String>,
    jwt_secret: Option<String>,
    jwt_issuer: Option<String>,
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(default)]
    only: Vec<Spanned<String>>,
    settle: Option<Spanned<String>>,
    replica_error_share: Option<f64>,
    replica_error_allowance: Option<u32>,
    revocation_paths: Option<Vec<String>>,
    #[serde(default)]
    budgets: IndexMap<String, RawBudget>,
    admin_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    ratio: f64,
    per_sec: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    vus: Option<u32>,
    rate: Option<f64>,
    duration: Spanned<String>,
    max_requests: Option<u64>,
    max_in_flight: Option<u32>,
    #[serde(default)]
    requests: Vec<Spanned<RawLoadRequest>>,
    #[serde(default)]
    thresholds: RawThresholds,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoadRequest {
    #[serde(default = "one")]
    weight: u32,
    #[serde(default = "get")]
    method: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    headers: IndexMap<String, Spanned<String>>,
    json: Option<toml::Value>,
    body: Option<Spanned<String>>,
    status: Option<Spanned<toml::Value>>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    p50: Option<Spanned<String>>,
    p95: Option<Spanned<String>>,
    p99: Option<Spanned<String>>,
    error_rate: Option<f64>,
    min_rps: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    component: Spanned<String>,
    query: Spanned<String>,
    expect: Option<Spanned<toml::Value>>,
    capture: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Checked layer.

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `name` from the file.
    pub name: String,
    /// `description` from the file.
    pub description: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// Declared variables, in order (values may be templates over earlier ones).
    pub vars: IndexMap<String, Value>,
    /// Probes checked before and after the method.
    pub steady_state: Vec<Step>,
    /// The method.
    pub steps: Vec<Step>,
    /// Always run at the end.
    pub rollbacks: Vec<Step>,
    /// Component settings the scenario runs with (`[tune.COMPONENT]`), applied before it
    /// starts by recreating those components.
    pub tune: crate::environment::Tuning,
}

/// One step (or probe, or rollback).
#[derive(Debug, Clone)]
pub struct Step {
    /// Display name (given, or derived from the action).
    pub name: String,
    /// 1-based line of the step in its file.
    pub line: usize,
    /// What it does.
    pub action: Action,
    /// Re-check until it holds or the timeout passes.
    pub eventually: Option<Eventually>,
    /// Must hold while this fault (by name) is active.
    pub during: Option<String>,
    /// Must hold within a deadline after this fault is healed.
    pub within: Option<Within>,
    /// Steady-state probes only: also checked repeatedly during the method, at this period.
    pub continuous: Option<Duration>,
}

/// Retry policy of `eventually`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eventually {
    /// Give up after this long.
    pub timeout: Duration,
    /// Wait between attempts.
    pub interval: Duration,
}

/// A `within` expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Within {
    /// The fault's name.
    pub fault: String,
    /// How long after the heal the step has to hold.
    pub deadline: Duration,
    /// Wait between attempts.
    pub interval: Duration,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// An HTTP request with expectations and captures.
    Request(RequestStep),
    /// Apply a fault.
    Chaos(ChaosStep),
    /// Revert a fault by name, or every fault the scenario applied (`None`).
    Heal(Option<String>),
    /// A load phase.
    Load(LoadStep),
    /// A SQL query against a component's database.
    Sql(SqlStep),
    /// Wait.
    Sleep(Duration),
    /// Concurrent clients using the shop, recording a history.
    Workload(crate::workload::WorkloadSpec),
    /// Judge the last workload's history against the checkers.
    Check(crate::checks::CheckSpec),
}

impl Action {
    /// The step kind, as in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Request(_) => "request",
            Action::Chaos(_) => "chaos",
            Action::Heal(_) => "heal",
            Action::Load(_) => "load",
            Action::Sql(_) => "sql",
            Action::Sleep(_) => "sleep",
            Action::Workload(_) => "workload",
            Action::Check(_) => "check",
        }
    }
}

/// A templated HTTP request.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// Method, upper case.
    pub method: reqwest::Method,
    /// URL template.
    pub url: Template,
    /// Header name → value template.
    pub headers: Vec<(String, Template)>,
    /// Body.
    pub body: Body,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// None.
    Empty,
    /// JSON (strings templated).
    Json(Value),
    /// Text (templated).
    Text(Template),
}

/// A `request` step.
#[derive(Debug, Clone)]
pub struct RequestStep {
    /// The request.
    pub request: RequestTemplate,
    /// Checked in order; the first failure is reported.
    pub expect: Vec<Expectation>,
    /// Variable → JSON path into the response body.
    pub capture: Vec<(String, JsonPath)>,
}

/// One expectation on a response.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// The status is one of these.
    Status(Vec<u16>),
    /// The response arrived within this.
    Latency(Duration),
    /// A JSON-path value satisfies a matcher.
    Json(JsonPath, Matcher),
    /// A header satisfies a matcher.
    Header(String, Matcher),
    /// The body contains this text (templated).
    BodyContains(Template),
    /// The body contains none of these texts (templated).
    BodyLacks(Vec<Template>),
}

impl Expectation {
    /// How the expectation reads in messages.
    pub fn describe(&self) -> String {
        match self {
            Expectation::Status(s) => format!(
                "status {}",
                s.iter().map(u16::to_string).collect::<Vec<_>>().join("|")
            ),
            Expectation::Latency(d) => format!("latency ≤ {}", humantime::format_duration(*d)),
            Expectation::Json(p, _) => format!("json {p}"),
            Expectation::Header(h, _) => format!("header {h}"),
            Expectation::BodyContains(_) => "body_contains".to_string(),
            Expectation::BodyLacks(_) => "body_lacks".to_string(),
        }
    }
}

/// A `chaos` step.
#[derive(Debug, Clone)]
pub struct ChaosStep {
    /// Name later steps use in `during`, `within` and `heal`.
    pub name: String,
    /// The fault, validated.
    pub spec: FaultSpec,
    /// Applied this long after the step, in the background (the step returns at once):
    /// how a schedule of faults runs alongside a later load or workload step.
    pub after: Option<Duration>,
}

/// A `load` step.
#[derive(Debug, Clone)]
pub struct LoadStep {
    /// Closed (virtual users) or open (arrival rate) model.
    pub model: LoadModel,
    /// How long.
    pub duration: Duration,
    /// Stop after this many requests.
    pub max_requests: u64,
    /// Open model only: most requests in flight (further arrivals are dropped and counted).
    pub max_in_flight: u32,
    /// The weighted request mix.
    pub requests: Vec<LoadRequest>,
    /// What fails the step.
    pub thresholds: Thresholds,
}

/// Closed or open workload model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadModel {
    /// N users, each sending its next request when the previous one answered.
    Vus(u32),
    /// New requests at a fixed rate per second, whatever the answers take.
    Rate(f64),
}

/// One entry of a load mix.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// Relative weight.
    pub weight: u32,
    /// The request (timeout 10 s).
    pub request: RequestTemplate,
    /// Statuses counted as success (default: 2xx and 3xx).
    pub ok_status: Option<Vec<u16>>,
}

/// Thresholds of a load phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    /// Median latency at most.
    pub p50: Option<Duration>,
    /// 95th percentile at most.
    pub p95: Option<Duration>,
    /// 99th percentile at most.
    pub p99: Option<Duration>,
    /// Failed share (0–1) at most.
    pub error_rate: Option<f64>,
    /// Completed requests per second at least.
    pub min_rps: Option<f64>,
}

/// A `sql` step.
#[derive(Debug, Clone)]
pub struct SqlStep {
    /// Whose database (its `DATABASE_URL` in the stack file).
    pub component: String,
    /// A SELECT (templated).
    pub query: Template,
    /// What the first column of the first row must satisfy (absent when there is no row).
    pub expect: Option<Matcher>,
    /// Store that value in this variable.
    pub capture: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Parsing.

/// Names every scenario may use without declaring them.
pub const BUILTINS: [&str; 2] = ["run_id", "scenario"];

struct Ctx<'a> {
    map: SourceMap<'a>,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push(self.map.error(span, msg));
    }

    fn duration(&mut self, v: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    v.span(),
                    format!(
                        "{what} {:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"2m\"",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// The length of a load or workload phase: more than zero, at most
    /// [`MAX_LOAD_DURATION`].
    fn phase_duration(&mut self, v: &Spanned<String>) -> Duration {
        let d = self.duration(v, "duration").unwrap_or_default();
        if d.is_zero() || d > MAX_LOAD_DURATION {
            self.err(
                v.span(),
                format!(
                    "duration must be more than 0s and at most {}",
                    humantime::format_duration(MAX_LOAD_DURATION)
                ),
            );
        }
        d
    }

    fn template(&mut self, text: &str, span: Range<usize>) -> Template {
        match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                self.err(span, e);
                Template::parse("").unwrap_or_else(|_| unreachable!())
            }
        }
    }

    fn regex(&mut self, v: &Spanned<String>) -> Option<Regex> {
        match Regex::new(v.get_ref()) {
            Ok(r) => Some(r),
            Err(e) => {
                self.err(v.span(), format!("invalid regex {:?}: {e}", v.get_ref()));
                None
            }
        }
    }

    fn json_value(&mut self, v: &toml::Value, span: Range<usize>) -> Value {
        match serde_json::to_value(v) {
            Ok(v) => v,
            Err(e) => {
                self.err(span, format!("cannot use this value as JSON: {e}"));
                Value::Null
            }
        }
    }

    fn statuses(&mut self, v: &Spanned<toml::Value>) -> Option<Vec<u16>> {
        let one = |x: &toml::Value| {
            x.as_integer()
                .and_then(|i| u16::try_from(i).ok())
                .filter(|s| (100..=599).contains(s))
        };
        let list = match v.get_ref() {
            toml::Value::Array(a) => a.iter().map(one).collect::<Option<Vec<_>>>(),
            other => one(other).map(|s| vec![s]),
        };
        if list.as_ref().is_none_or(Vec::is_empty) {
            self.err(
                v.span(),
                "status must be an HTTP status (100–599) or a list of them, e.g. 202 or [200, 201]",
            );
        }
        list
    }

    fn matcher(&mut self, raw: &RawMatcher, span: Range<usize>) -> Matcher {
        Matcher {
            equals: raw
                .equals
                .as_ref()
                .map(|v| self.json_value(v, span.clone())),
            not_equals: raw
                .not_equals
                .as_ref()
                .map(|v| self.json_value(v, span.clone())),
            exists: raw.exists,
            matches: raw
                .matches
                .as_ref()
                .and_then(|r| self.regex(&Spanned::new(span.clone(), r.clone()))),
            gte: raw.gte,
            lte: raw.lte,
            one_of: raw
                .one_of
                .as_ref()
                .map(|l| l.iter().map(|v| self.json_value(v, span.clone())).collect()),
        }
    }

    /// A bare value means `equals`; a table with matcher keys is a matcher.
    fn value_or_matcher(&mut self, v: &Spanned<toml::Value>) -> Matcher {
        if let toml::Value::Table(t) = v.get_ref() {
            let keys = [
                "equals",
                "not_equals",
                "exists",
                "matches",
                "gte",
                "lte",
                "one_of",
            ];
            if !t.is_empty() && t.keys().all(|k| keys.contains(&k.as_str())) {
                let mut m = Matcher {
                    equals: t.get("equals").map(|x| self.json_value(x, v.span())),
                    not_equals: t.get("not_equals").map(|x| self.json_value(x, v.span())),
                    exists: t.get("exists").and_then(toml::Value::as_bool),
                    gte: t.get("gte").and_then(number),
                    lte: t.get("lte").and_then(number),
                    one_of: t
                        .get("one_of")
                        .and_then(toml::Value::as_array)
                        .map(|a| a.iter().map(|x| self.json_value(x, v.span())).collect()),
                    ..Matcher::default()
                };
                if let Some(r) = t.get("matches") {
                    match r.as_str() {
                        Some(s) => {
                            m.matches = self.regex(&Spanned::new(v.span(), s.to_string()));
                        }
                        None => self.err(v.span(), "matches must be a string (a regex)"),
                    }
                }
                return m;
            }
        }
        let value = self.json_value(v.get_ref(), v.span());
        Matcher::equals(value)
    }

    // Request and load-mix entries are different raw types (a load entry has a weight and
    // statuses, no timeout), and `flatten` would lose the spans, so the parts come singly.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        method: &Spanned<String>,
        url: &Spanned<String>,
        headers: &IndexMap<String, Spanned<String>>,
        json: Option<&toml::Value>,
        body: Option<&Spanned<String>>,
        timeout: Duration,
        span: Range<usize>,
    ) -> RequestTemplate {
        let m = method.get_ref().to_ascii_uppercase();
        let method_ok =
            ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&m.as_str());
        if !method_ok {
            self.err(
                method.span(),
                format!(
                    "unknown method {:?}; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
                    method.get_ref()
                ),
            );
        }
        let url_t = self.template(url.get_ref(), url.span());
        let headers = headers
            .iter()
            .map(|(k, v)| (k.clone(), self.template(v.get_ref(), v.span())))
            .collect();
        if json.is_some() && body.is_some() {
            self.err(
                span.clone(),
                "a request has either `json` or `body`, not both",
            );
        }
        let body = match (json, body) {
            (Some(j), _) => {
                let v = self.json_value(j, span.clone());
                let mut names = Vec::new();
                if let Err(e) = template::json_placeholders(&v, &mut names) {
                    self.err(span, e);
                }
                Body::Json(v)
            }
            (None, Some(b)) => Body::Text(self.template(b.get_ref(), b.span())),
            (None, None) => Body::Empty,
        };
        RequestTemplate {
            method: reqwest::Method::from_bytes(m.as_bytes()).unwrap_or(reqwest::Method::GET),
            url: url_t,
            headers,
            body,
            timeout,
        }
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Default timeout of one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default interval between attempts of `eventually` and `within`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// Parses and validates a scenario file's text.
pub fn parse(file: &Path, text: &str) -> Result<Scenario, ConfigErrors> {
    let map = SourceMap::new(file, text);
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ConfigErrors(vec![map.error(span, e.message().to_string())])
    })?;
    let mut cx = Ctx {
        map,
        errors: Vec::new(),
    };
    if raw.name.get_ref().trim().is_empty() {
        cx.err(raw.name.span(), "name must not be empty");
    }
    let mut vars = IndexMap::new();
    let mut known: BTreeSet<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
    for (k, v) in &raw.vars {
        let value = cx.json_value(v.get_ref(), v.span());
        let mut names = Vec::new();
        if let Err(e) = template::json_placeholders(&value, &mut names) {
            cx.err(v.span(), e);
        }
        check_refs(&mut cx, &names, &known, v.span());
        known.insert(k.clone());
        vars.insert(k.clone(), value);
    }
    let mut faults: BTreeSet<String> = BTreeSet::new();
    let steady_state = raw
        .steady_state
        .iter()
        .map(|s| step(&mut cx, s, Phase::SteadyState, &mut known, &mut faults))
        .collect();
    let steps = raw
        .steps
        .iter()
        .map(|s| step(&mut cx, s, Phase::Method, &mut known, &mut faults))
        .collect();
    let rollbacks = raw
        .rollbacks
        .iter()
        .map(|s| step(&mut cx, s, Phase::Rollback, &mut known, &mut faults))
        .collect();
    let mut tune = crate::environment::Tuning::new();
    for (component, vars) in &raw.tune {
        let mut out = IndexMap::new();
        for (k, v) in vars.get_ref() {
            match v {
                toml::Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    out.insert(k.clone(), v.to_string());
                }
                _ => cx.err(
                    vars.span(),
                    format!("tune.{component}.{k} must be a string, number or boolean"),
                ),
            }
        }
        tune.insert(component.clone(), out);
    }
    if raw.steps.is_empty() && raw.steady_state.is_empty() {
        cx.err(
            raw.name.span(),
            "a scenario needs at least one [[steps]] entry",
        );
    }
    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    Ok(Scenario {
        name: raw.name.into_inner(),
        description: raw.description,
        file: file.to_path_buf(),
        vars,
        steady_state,
        steps,
        rollbacks,
        tune,
    })
}

/// Reads and parses a scenario file.
pub fn load(file: &Path) -> Result<Scenario, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the scenario file: {e}"),
        }])
    })?;
    parse(file, &text)
}

/// Where a step sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A steady-state probe.
    SteadyState,
    /// The method.
    Method,
    /// A rollback.
    Rollback,
}

fn check_refs(cx: &mut Ctx<'_>, names: &[String], known: &BTreeSet<String>, span: Range<usize>) {
    for n in names {
        if let Reference::Var(v) = template::reference(n) {
            if !known.contains(v) {
                cx.err(
                    span.clone(),
                    format!(
                        "unknown variable \"{{{{{v}}}}}\"; declare it under [vars], capture it in an earlier step, or use a builtin (gateway, run_id, uuid, scenario, COMPONENT:PORT)"
                    ),
                );
            }
        }
    }
}

fn request_refs(r: &RequestTemplate, out: &mut Vec<String>) {
    out.extend(r.url.placeholders().map(String::from));
    for (_, h) in &r.headers {
        out.extend(h.placeholders().map(String::from));
    }
    match &r.body {
        Body::Json(v) => {
            let _ = template::json_placeholders(v, out);
        }
        Body::Text(t) => out.extend(t.placeholders().map(String::from)),
        Body::Empty => {}
    }
}

fn matcher_refs(m: &Matcher, out: &mut Vec<String>) {
    for v in m.values() {
        let _ = template::json_placeholders(v, out);
    }
}

fn step(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawStep>,
    phase: Phase,
    known: &mut BTreeSet<String>,
    faults: &mut BTreeSet<String>,
) -> Step {
    let span = raw.span();
    let (line, _) = cx.map.position(span.start);
    let s = raw.get_ref();
    let kinds: Vec<&str> = [
        ("request", s.request.is_some()),
        ("chaos", s.chaos.is_some()),
        ("heal", s.heal.is_some()),
        ("load", s.load.is_some()),
        ("sql", s.sql.is_some()),
        ("sleep", s.sleep.is_some()),
        ("workload", s.workload.is_some()),
        ("check", s.check.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(k, _)| k)
    .collect();
    if kinds.len() != 1 {
        cx.err(
            span.clone(),
            format!(
                "a step needs exactly one of request, chaos, heal, load, sql, sleep, workload, check; this one has {}",
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            ),
        );
    }
    if phase == Phase::SteadyState
        && (s.chaos.is_some()
            || s.heal.is_some()
            || s.load.is_some()
            || s.workload.is_some()
            || s.check.is_some())
    {
        cx.err(
            span.clone(),
            "a steady-state probe is a request or a sql check, not chaos, heal, load, workload or check",
        );
    }
    if phase != Phase::SteadyState && (s.continuous || s.interval.is_some()) {
        cx.err(
            span.clone(),
            "`continuous` and `interval` belong to [[steady_state]] probes",
        );
    }
    if s.expect.is_some() && s.request.is_none() {
        cx.err(
            span.clone(),
            "`expect` applies to a request; a sql step takes `expect` inside [steps.sql]",
        );
    }
    if !s.capture.is_empty() && s.request.is_none() {
        cx.err(
            span.clone(),
            "`capture` applies to a request; a sql step takes `capture` inside [steps.sql]",
        );
    }
    let mut refs = Vec::new();
    let action = if let Some(r) = &s.request {
        let rr = r.get_ref();
        let timeout = rr
            .timeout
            .as_ref()
            .and_then(|t| cx.duration(t, "timeout"))
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let request = cx.request(
            &rr.method,
            &rr.url,
            &rr.headers,
            rr.json.as_ref(),
            rr.body.as_ref(),
            timeout,
            r.span(),
        );
        request_refs(&request, &mut refs);
        let mut expect = Vec::new();
        if let Some(e) = &s.expect {
            let e = e.get_ref();
            if let Some(st) = &e.status {
                if let Some(list) = cx.statuses(st) {
                    expect.push(Expectation::Status(list));
                }
            }
            if let Some(l) = &e.latency {
                if let Some(d) = cx.duration(l, "latency") {
                    expect.push(Expectation::Latency(d));
                }
            }
            for j in &e.json {
                let jr = j.get_ref();
                match JsonPath::parse(jr.path.get_ref()) {
                    Ok(p) => {
                        let m = cx.matcher(&jr.matcher, j.span());
                        matcher_refs(&m, &mut refs);
                        expect.push(Expectation::Json(p, m));
                    }
                    Err(err) => cx.err(jr.path.span(), err),
                }
            }
            for (h, v) in &e.headers {
                let m = cx.value_or_matcher(v);
                matcher_refs(&m, &mut refs);
                expect.push(Expectation::Header(h.to_ascii_lowercase(), m));
            }
            if let Some(b) = &e.body_lacks {
                // A list is taken whole here: commas are common in JSON needles.
                let needles = match b.get_ref() {
                    OneOrMany::One(s) => vec![s.clone()],
                    OneOrMany::Many(v) => v.clone(),
                };
                let ts: Vec<Template> = needles.iter().map(|n| cx.template(n, b.span())).collect();
                for t in &ts {
                    refs.extend(t.placeholders().map(String::from));
                }
                expect.push(Expectation::BodyLacks(ts));
            }
            if let Some(b) = &e.body_contains {
                let t = cx.template(b.get_ref(), b.span());
                refs.extend(t.placeholders().map(String::from));
                expect.push(Expectation::BodyContains(t));
            }
        }
        let capture = s
            .capture
            .iter()
            .filter_map(|(k, p)| match JsonPath::parse(p.get_ref()) {
                Ok(path) => Some((k.clone(), path)),
                Err(e) => {
                    cx.err(p.span(), e);
                    None
                }
            })
            .collect();
        Action::Request(RequestStep {
            request,
            expect,
            capture,
        })
    } else if let Some(c) = &s.chaos {
        let name = c
            .get_ref()
            .name
            .clone()
            .or_else(|| s.name.clone())
            .unwrap_or_else(|| format!("{}@{line}", c.get_ref().fault.get_ref()));
        let spec = chaos_spec(cx, c);
        let after = c.get_ref().after.as_ref().and_then(|a| match a.get_ref() {
            toml::Value::String(text) => cx.duration(&Spanned::new(a.span(), text.clone()), "after"),
            toml::Value::Boolean(_) => {
                cx.err(
                    a.span(),
                    "after is the fault's start delay (e.g. after = \"12s\"); for a fault applied after the handler (a lost response) write after_handler = true",
                );
                None
            }
            _ => {
                cx.err(
                    a.span(),
                    "after must be a duration string such as \"12s\" (the fault's start delay)",
                );
                None
            }
        });
        faults.insert(name.clone());
        Action::Chaos(ChaosStep { name, spec, after })
    } else if let Some(h) = &s.heal {
        let name = h.get_ref();
        if name == "all" {
            Action::Heal(None)
        } else {
            if !faults.contains(name) {
                cx.err(h.span(), unknown_fault(name, faults));
            }
            Action::Heal(Some(name.clone()))
        }
    } else if let Some(l) = &s.load {
        Action::Load(load_step(cx, l, &mut refs))
    } else if let Some(q) = &s.sql {
        let qr = q.get_ref();
        let query = cx.template(qr.query.get_ref(), qr.query.span());
        refs.extend(query.placeholders().map(String::from));
        let expect = qr.expect.as_ref().map(|e| cx.value_or_matcher(e));
        if let Some(m) = &expect {
            matcher_refs(m, &mut refs);
        }
        if qr.component.get_ref().trim().is_empty() {
            cx.err(qr.component.span(), "component must name a stack component");
        }
        if expect.is_none() && qr.capture.is_none() {
            cx.err(
                q.span(),
                "a sql step needs `expect` (a value or {gte, lte, …}) or `capture`",
            );
        }
        Action::Sql(SqlStep {
            component: qr.component.get_ref().clone(),
            query,
            expect,
            capture: qr.capture.clone(),
        })
    } else if let Some(d) = &s.sleep {
        Action::Sleep(cx.duration(d, "sleep").unwrap_or_default())
    } else if let Some(w) = &s.workload {
        Action::Workload(workload_step(cx, w))
    } else if let Some(c) = &s.check {
        Action::Check(check_step(cx, c))
    } else {
        Action::Sleep(Duration::ZERO)
    };
    check_refs(cx, &refs, known, span.clone());
    match &action {
        Action::Request(r) => {
            known.extend(r.capture.iter().map(|(k, _)| k.clone()));
        }
        Action::Sql(q) => known.extend(q.capture.clone()),
        _ => {}
    }
    let eventually = s.eventually.as_ref().and_then(|e| {
        let er = e.get_ref();
        let timeout = cx.duration(&er.timeout, "timeout")?;
        let interval = match &er.interval {
            Some(i) => cx.duration(i, "interval")?,
            None => DEFAULT_INTERVAL,
        };
        Some(Eventually { timeout, interval })
    });
    let retryable = matches!(action, Action::Request(_) | Action::Sql(_));
    if (eventually.is_some() || s.during.is_some() || s.within.is_some()) && !retryable {
        cx.err(
            span.clone(),
            "`eventually`, `during` and `within` apply to request and sql steps",
        );
    }
    if let Some(d) = &s.during {
        if !faults.contains(d.get_ref()) {
            cx.err(d.span(), unknown_fault(d.get_ref(), faults));
        }
    }
    let within = s.within.as_ref().and_then(|w| {
        let wr = w.get_ref();
        if !faults.contains(wr.fault.get_ref()) {
            cx.err(wr.fault.span(), unknown_fault(wr.fault.get_ref(), faults));
        }
        let deadline = cx.duration(&wr.deadline, "deadline")?;
        let interval = match &wr.interval {
            Some(i) => cx.duration(i, "interval")?,
            None => DEFAULT_INTERVAL,
        };
        Some(Within {
            fault: wr.fault.get_ref().clone(),
            deadline,
            interval,
        })
    });
    let continuous = if s.continuous {
        Some(
            s.interval
                .as_ref()
                .and_then(|i| cx.duration(i, "interval"))
                .unwrap_or(Duration::from_secs(1)),
        )
    } else {
        None
    };
    let name = s.name.clone().unwrap_or_else(|| match &action {
        Action::Request(r) => format!("{} {}", r.request.method, r.request.url_text()),
        Action::Chaos(c) => format!("chaos {}", c.name),
        Action::Heal(Some(f)) => format!("heal {f}"),
        Action::Heal(None) => "heal all".to_string(),
        Action::Load(_) => "load".to_string(),
        Action::Sql(q) => format!("sql {}", q.component),
        Action::Sleep(d) => format!("sleep {}", humantime::format_duration(*d)),
        Action::Workload(_) => "workload".to_string(),
        Action::Check(_) => "check".to_string(),
    });
    Step {
        name,
        line,
        action,
        eventually,
        during: s.during.as_ref().map(|d| d.get_ref().clone()),
        within,
        continuous,
    }
}

impl RequestTemplate {
    /// The URL template as written.
    pub fn url_text(&self) -> String {
        self.url
            .render(&|n| Ok(Value::String(format!("{{{{{n}}}}}"))))
            .unwrap_or_default()
    }
}

fn unknown_fault(name: &str, faults: &BTreeSet<String>) -> String {
    format!(
        "no earlier chaos step is named {name:?}{}",
        if faults.is_empty() {
            String::new()
        } else {
            format!(
                "; known faults: {}",
                faults.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    )
}

fn chaos_spec(cx: &mut Ctx<'_>, c: &Spanned<RawChaos>) -> FaultSpec {
    let r = c.get_ref();
    let targets = |cx: &mut Ctx<'_>, list: Vec<String>, span: Range<usize>| -> Vec<Target> {
        list.iter()
            .filter_map(|t| match t.parse::<Target>() {
                Ok(t) => Some(t),
                Err(e) => {
                    cx.err(span.clone(), e);
                    None
                }
            })
            .collect()
    };
    let target_list = targets(cx, r.target.get_ref().list(), r.target.span());
    let ms = |cx: &mut Ctx<'_>, v: &Option<Spanned<String>>, what: &str| {
        v.as_ref()
            .and_then(|d| cx.duration(d, what))
            .map(duration_ms)
    };
    let kind = match r.fault.get_ref().as_str() {
        "kill" => FaultKind::Kill {
            signal: r.signal.clone().unwrap_or_else(|| "SIGKILL".to_string()),
        },
        "stop" => FaultKind::Stop,
        "restart" => FaultKind::Restart,
        "pause" => FaultKind::Pause,
        "partition" => FaultKind::Partition {
            from: r
                .from
                .as_ref()
                .map(|f| targets(cx, f.list(), c.span()))
                .unwrap_or_default(),
            reset: match &r.reset {
                None => PartitionReset::Keep,
                Some(v) => PartitionReset::parse(v.get_ref()).unwrap_or_else(|e| {
                    cx.err(v.span(), e);
                    PartitionReset::Keep
                }),
            },
        },
        "latency" => FaultKind::Latency {
            delay_ms: ms(cx, &r.delay, "delay").unwrap_or(0),
            jitter_ms: ms(cx, &r.jitter, "jitter").unwrap_or(0),
        },
        "loss" => FaultKind::Loss {
            percent: r.percent.unwrap_or(0.0),
        },
        "http-fault" => FaultKind::HttpFault(HttpFault {
            error_rate: r.error_rate,
            status: r.status,
            delay_ms: ms(cx, &r.delay, "delay"),
            path_prefix: r.path.clone(),
            duration: None,
            first_n: r.first,
            after: r.after_handler.as_ref().is_some_and(|a| *a.get_ref()),
        }),
        other => {
            cx.err(
                r.fault.span(),
                format!(
                    "unknown fault {other:?}; use kill, stop, restart, pause, partition, latency, loss or http-fault"
                ),
            );
            FaultKind::Stop
        }
    };
    if let Some(v) = &r.reset {
        if !matches!(kind, FaultKind::Partition { .. }) {
            cx.err(v.span(), "reset applies to partition only");
        }
    }
    if let Some(a) = &r.after_handler {
        if !matches!(kind, FaultKind::HttpFault(_)) {
            cx.err(
                a.span(),
                "after_handler applies to http-fault only (the service answers for the request after its handler ran)",
            );
        }
    }
    let duration = r.duration.as_ref().and_then(|d| cx.duration(d, "duration"));
    let mut kind = kind;
    if let (FaultKind::HttpFault(h), Some(d)) = (&mut kind, duration) {
        // The service expires the fault on its own too, so it ends even if msctl dies.
        h.duration = Some(humantime::format_duration(d).to_string());
    }
    let spec = FaultSpec {
        kind,
        targets: target_list,
        duration,
        seed: r.seed,
    };
    if let Err(e) = spec.validate() {
        // The chaos crate words its messages for the command line (`--delay`); in a file
        // the keys have no dashes, and `--after` is `after_handler` (`after` is the start
        // delay).
        cx.err(
            c.span(),
            e.to_string()
                .replace("--after", "after_handler")
                .replace("--", ""),
        );
    }
    spec
}

fn load_step(cx: &mut Ctx<'_>, l: &Spanned<RawLoad>, refs: &mut Vec<String>) -> LoadStep {
    let r = l.get_ref();
    let model = match (r.vus, r.rate) {
        (Some(v), None) if (1..=MAX_VUS).contains(&v) => LoadModel::Vus(v),
        (None, Some(rate)) if rate > 0.0 && rate <= MAX_RATE => LoadModel::Rate(rate),
        (Some(_), Some(_)) | (None, None) => {
            cx.err(
                l.span(),
                "a load step needs exactly one of `vus` (virtual users) or `rate` (requests per second)",
            );
            LoadModel::Vus(1)
        }
        _ => {
            cx.err(
                l.span(),
                format!("vus must be 1–{MAX_VUS} and rate more than 0 and at most {MAX_RATE}"),
            );
            LoadModel::Vus(1)
        }
    };
    let duration = cx.phase_duration(&r.duration);
    let max_requests = r.max_requests.unwrap_or(MAX_LOAD_REQUESTS);
    if max_requests == 0 || max_requests > MAX_LOAD_REQUESTS {
        cx.err(
            l.span(),
            format!("max_requests must be 1–{MAX_LOAD_REQUESTS}"),
        );
    }
    if r.requests.is_empty() {
        cx.err(
            l.span(),
            "a load step needs at least one [[steps.load.requests]] entry",
        );
    }
    let requests = r
        .requests
        .iter()
        .map(|q| {
            let qr = q.get_ref();
            if qr.weight == 0 {
                cx.err(q.span(), "weight must be at least 1");
            }
            let request = cx.request(
                &qr.method,
                &qr.url,
                &qr.headers,
                qr.json.as_ref(),
                qr.body.as_ref(),
                DEFAULT_REQUEST_TIMEOUT,
                q.span(),
            );
            request_refs(&request, refs);
            LoadRequest {
                weight: qr.weight,
                request,
                ok_status: qr.status.as_ref().and_then(|s| cx.statuses(s)),
            }
        })
        .collect();
    let t = &r.thresholds;
    let thresholds = Thresholds {
        p50: t.p50.as_ref().and_then(|d| cx.duration(d, "p50")),
        p95: t.p95.as_ref().and_then(|d| cx.duration(d, "p95")),
        p99: t.p99.as_ref().and_then(|d| cx.duration(d, "p99")),
        error_rate: t.error_rate,
        min_rps: t.min_rps,
    };
    if thresholds
        .error_rate
        .is_some_and(|e| !(0.0..=1.0).contains(&e))
    {
        cx.err(l.span(), "thresholds.error_rate must be between 0 and 1");
    }
    LoadStep {
        model,
        duration,
        max_requests,
        max_in_flight: r.max_in_flight.unwrap_or(1000).max(1),
        requests,
        thresholds,
    }
}

fn workload_step(cx: &mut Ctx<'_>, w: &Spanned<RawWorkload>) -> crate::workload::WorkloadSpec {
    let r = w.get_ref();
    let d = crate::workload::WorkloadSpec::default();
    let clients = r.clients.unwrap_or(d.clients);
    if clients == 0 || clients > crate::workload::MAX_CLIENTS {
        cx.err(
            w.span(),
            format!("clients must be 1–{}", crate::workload::MAX_CLIENTS),
        );
    }
    let duration = cx.phase_duration(&r.duration);
    let order_share = r.order_share.unwrap_or(d.order_share);
    if !(0.0..=1.0).contains(&order_share) {
        cx.err(w.span(), "order_share must be between 0 and 1");
    }
    let products = r.products.unwrap_or(d.products);
    let scarce = r.scarce.unwrap_or(d.scarce);
    if products + scarce == 0 || products + scarce > 100 {
        cx.err(w.span(), "products + scarce must be 1–100");
    }
    let jwt = match (&r.jwt_secret, &r.jwt_issuer) {
        (Some(s), i) => Some((s.clone(), i.clone().unwrap_or_else(|| "msctl".into()))),
        (None, Some(_)) => {
            cx.err(w.span(), "jwt_issuer needs jwt_secret");
            None
        }
        (None, None) => None,
    };
    crate::workload::WorkloadSpec {
        clients,
        duration,
        seed: r.seed.unwrap_or(d.seed),
        think: r
            .think
            .as_ref()
            .and_then(|t| cx.duration(t, "think"))
            .unwrap_or(d.think),
        products,
        scarce,
        scarce_stock: r.scarce_stock.unwrap_or(d.scarce_stock).max(1),
        order_share,
        admin_token: r.admin_token.clone().unwrap_or(d.admin_token),
        jwt,
        timeout: r
            .timeout
            .as_ref()
            .and_then(|t| cx.duration(t, "timeout"))
            .unwrap_or(d.timeout),
    }
}

fn check_step(cx: &mut Ctx<'_>, c: &Spanned<RawCheck>) -> crate::checks::CheckSpec {
    let r = c.get_ref();
    let d = crate::checks::CheckSpec::default();
    let mut only = Vec::new();
    for id in &r.only {
        if crate::checks::is_checker(id.get_ref()) {
            only.push(id.get_ref().clone());
        } else {
            cx.err(
                id.span(),
                format!(
                    "unknown checker {:?}; known: {}",
                    id.get_ref(),
                    crate::checks::CHECKERS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    let share = r.replica_error_share.unwrap_or(d.replica_error_share);
    if !(0.0..=1.0).contains(&share) {
        cx.err(c.span(), "replica_error_share must be between 0 and 1");
    }
    let mut budgets: Vec<(String, f64, f64)> = r
        .budgets
        .iter()
        .map(|(k, b)| (k.clone(), b.ratio, b.per_sec))
        .collect();
    if !budgets.iter().any(|(k, _, _)| k == "*") {
        budgets.extend(d.budgets);
    }
    crate::checks::CheckSpec {
        only,
        settle: r
            .settle
            .as_ref()
            .and_then(|s| cx.duration(s, "settle"))
            .unwrap_or(d.settle),
        replica_error_share: share,
        replica_error_allowance: r
            .replica_error_allowance
            .unwrap_or(d.replica_error_allowance),
        revocation_paths: r.revocation_paths.clone().unwrap_or(d.revocation_paths),
        budgets,
        admin_token: r.admin_token.clone().unwrap_or(d.admin_token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos_steps(text: &str) -> Vec<ChaosStep> {
        let s = parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{text}\n→ {e}"));
        s.steps
            .into_iter()
            .filter_map(|st| match st.action {
                Action::Chaos(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn http_fault_steps_take_every_key_and_after_handler() {
        let steps = chaos_steps(
            "name = \"x\"\n\
             [[steps]]\n\
             chaos = { name = \"lost\", fault = \"http-fault\", target = \"payment-service\", status = 503, delay = \"8s\", first = 2, error_rate = 0.5, path = \"/internal/payments\", after_handler = true, after = \"12s\", duration = \"6s\" }\n\
             [[steps]]\n\
             chaos = { name = \"plain\", fault = \"http-fault\", target = \"product-service#1\", status = 502 }\n",
        );
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].after, Some(Duration::from_secs(12)), "start delay");
        assert_eq!(
            steps[0].spec.kind,
            FaultKind::HttpFault(HttpFault {
                error_rate: Some(0.5),
                status: Some(503),
                delay_ms: Some(8000),
                path_prefix: Some("/internal/payments".into()),
                duration: Some("6s".into()),
                first_n: Some(2),
                after: true,
            })
        );
        let FaultKind::HttpFault(plain) = &steps[1].spec.kind else {
            panic!("not an http fault")
        };
        assert!(!plain.after);
        assert_eq!(steps[1].after, None);
    }

    #[test]
    fn after_handler_mistakes_name_file_line_and_column() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            // `after` is the start delay: a boolean there points to after_handler.
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"http-fault\", target = \"a\", status = 503, after = true }\n",
                (3, 69),
                "after_handler = true",
            ),
            // after_handler alone means nothing.
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"http-fault\", target = \"a\", after_handler = true }\n",
                (3, 9),
                "after_handler needs at least one of",
            ),
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"kill\", target = \"a\", after_handler = true }\n",
                (3, 57),
                "http-fault only",
            ),
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"http-fault\", target = \"a\", status = 503, after_handler = \"yes\" }\n",
                (3, 77),
                "invalid type",
            ),
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"http-fault\", target = \"a\", status = 503, lost = true }\n",
                (3, 61),
                "unknown field",
            ),
        ];
        for (text, (line, col), what) in cases {
            let err = parse(Path::new("bad.toml"), text).expect_err(text);
            let first = &err.0[0];
            let shown = first.to_string();
            assert!(shown.starts_with("bad.toml:"), "{shown}");
            assert_eq!(
                (first.line, first.column),
                (*line, *col),
                "{text}\n→ {shown}"
            );
            assert!(shown.contains(what), "{text}\n→ {shown}");
        }
    }

    #[test]
    fn partition_steps_take_a_reset_and_refuse_a_bad_one_at_its_place() {
        let steps = chaos_steps(
            "name = \"x\"\n\
             [[steps]]\n\
             chaos = { fault = \"partition\", target = \"notification-service\", from = \"postgres\", reset = \"start\", duration = \"5s\" }\n\
             [[steps]]\n\
             chaos = { fault = \"partition\", target = \"order-service\", from = \"rabbitmq\" }\n",
        );
        assert!(matches!(
            steps[0].spec.kind,
            FaultKind::Partition {
                reset: PartitionReset::Start,
                ..
            }
        ));
        assert!(matches!(
            steps[1].spec.kind,
            FaultKind::Partition {
                reset: PartitionReset::Keep,
                ..
            }
        ));
        for (text, (line, col), what) in [
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"partition\", target = \"a\", from = \"b\", reset = \"later\" }\n",
                (3, 66),
                "not one of keep, start, heal",
            ),
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"kill\", target = \"a\", reset = \"heal\" }\n",
                (3, 49),
                "partition only",
            ),
            (
                "name = \"x\"\n[[steps]]\nchaos = { fault = \"partition\", target = \"a\", reset = \"heal\" }\n",
                (3, 9),
                "reset heal needs from",
            ),
        ] {
            let err = parse(Path::new("bad.toml"), text).expect_err(text);
            let first = &err.0[0];
            let shown = first.to_string();
            assert_eq!((first.line, first.column), (line, col), "{text}\n→ {shown}");
            assert!(shown.contains(what), "{text}\n→ {shown}");
        }
    }
}
