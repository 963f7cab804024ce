//! HTTP fault injection, driven by `POST /admin/faults` and `DELETE /admin/faults`.
//!
//! This is the primitive behind `msctl chaos http-fault`. A fault applies to requests whose
//! path starts with `path_prefix` (default: all), except the kit's own `/health`, `/ready`,
//! `/metrics` and `/admin` endpoints so a faulty instance can still be observed and healed.
//! For a matching request it first waits `delay_ms`, then fails it with `status` when
//! either the first-`first_n` allowance is not used up or a coin with `error_rate` says so.
//! `status` alone (no rate, no `first_n`) fails every matching request.
//!
//! With `after: true` the fault is a *lost response* (Toxiproxy's downstream toxics,
//! Jepsen's indeterminate results): the handler runs first and its effects are committed,
//! then its answer is held for `delay_ms` and, when the request is failed, discarded and
//! replaced by the injected error. The caller sees a timeout or an error for work that was
//! done — what makes a non-idempotent retry or a "timed out = did not happen" assumption
//! observable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::ApiError;

/// A fault as posted to `/admin/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Probability (0–1) of failing a matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Status of injected failures (400–599, default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Delay added before every matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Only requests whose path starts with this are affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// How long the fault lasts (`30s`, `2m`); unset = until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Alternative to `duration`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Fail the first N matching requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_n: Option<u64>,
    /// Apply the fault after the handler ran: the handler's answer is held for `delay_ms`
    /// and, when the request is failed (`status` / `error_rate` / `first_n`), discarded and
    /// replaced by the injected error (a lost response: the work was done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<bool>,
}

#[derive(Debug, Clone)]
struct ActiveFault {
    spec: FaultSpec,
    status: StatusCode,
    error_rate: f64,
    delay: Duration,
    until: Option<Instant>,
    remaining_first: u64,
}

impl FaultSpec {
    fn activate(self, now: Instant) -> Result<ActiveFault, ApiError> {
        let bad = |m: String| ApiError::bad_request("invalid_fault", m);
        if let Some(r) = self.error_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(bad(format!("error_rate {r} must be between 0 and 1")));
            }
        }
        let code = self.status.unwrap_or(503);
        let status = StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| bad(format!("status {code} must be between 400 and 599")))?;
        let delay = Duration::from_millis(self.delay_ms.unwrap_or(0));
        if delay > Duration::from_secs(300) {
            return Err(bad("delay_ms must be at most 300000".into()));
        }
        let until = match (&self.duration, self.duration_ms) {
            (Some(_), Some(_)) => {
                return Err(bad("give duration or duration_ms, not both".into()));
            }
            (None, Some(ms)) => Some(now + Duration::from_millis(ms)),
            (None, None) => None,
            (Some(d), None) => Some(
                now + humantime::parse_duration(d)
                    .map_err(|e| bad(format!("duration {d:?} is not a duration like 30s ({e})")))?,
            ),
        };
        if let Some(p) = &self.path_prefix {
            if !p.starts_with('/') {
                return Err(bad(format!("path_prefix {p:?} must start with '/'")));
            }
        }
        let error_rate = match (self.error_rate, self.first_n, self.status) {
            (Some(r), _, _) => r,
            (None, None, Some(_)) => 1.0,
            _ => 0.0,
        };
        Ok(ActiveFault {
            status,
            error_rate,
            delay,
            until,
            remaining_first: self.first_n.unwrap_or(0),
            spec: self,
        })
    }
}

/// The fault currently injected into this service, if any; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector(Arc<Mutex<Option<ActiveFault>>>);

/// What to do with one request.
enum Decision {
    Pass,
    Act {
        delay: Duration,
        fail: Option<StatusCode>,
        /// Run the handler first (see [`FaultSpec::after`]).
        after: bool,
    },
}

fn exempt(path: &str) -> bool {
    ["/health", "/ready", "/metrics", "/admin"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

impl FaultInjector {
    /// No fault.
    pub fn new() -> Self {
        Self::default()
    }

    /// Activate `spec`, replacing any previous fault.
    pub fn set(&self, spec: FaultSpec) -> Result<(), ApiError> {
        let active = spec.activate(Instant::now())?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(active);
        Ok(())
    }

    /// Remove the fault.
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The active fault's spec, if any (an expired fault is cleared here).
    pub fn current(&self) -> Option<FaultSpec> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref()
            .and_then(|f| f.until)
            .is_some_and(|u| Instant::now() >= u)
        {
            *g = None;
        }
        g.as_ref().map(|f| f.spec.clone())
    }

    fn decide(&self, path: &str) -> Decision {
        if exempt(path) {
            return Decision::Pass;
        }
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = g.as_mut() else {
            return Decision::Pass;
        };
        if f.until.is_some_and(|u| Instant::now() >= u) {
            *g = None;
            return Decision::Pass;
        }
        if f.spec
            .path_prefix
            .as_deref()
            .is_some_and(|p| !path.starts_with(p))
        {
            return Decision::Pass;
        }
        let fail = if f.remaining_first > 0 {
            f.remaining_first -= 1;
            true
        } else {
            f.error_rate > 0.0 && rand::thread_rng().gen::<f64>() < f.error_rate
        };
        Decision::Act {
            delay: f.delay,
            fail: fail.then_some(f.status),
            after: f.spec.after == Some(true),
        }
    }

    /// Routes `POST/GET/DELETE /admin/faults`; mount behind the admin-token middleware.
    pub fn routes(&self) -> Router {
        Router::new()
            .route(
                "/admin/faults",
                post(set_fault).get(get_fault).delete(clear_fault),
            )
            .with_state(self.clone())
    }
}

async fn set_fault(
    State(f): State<FaultInjector>,
    body: Result<Json<FaultSpec>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<FaultSpec>, ApiError> {
    let Json(spec) = body.map_err(|e| ApiError::bad_request("invalid_fault", e.body_text()))?;
    f.set(spec.clone())?;
    tracing::warn!(fault = ?spec, "fault injection enabled");
    Ok(Json(spec))
}

async fn get_fault(State(f): State<FaultInjector>) -> Json<Option<FaultSpec>> {
    Json(f.current())
}

async fn clear_fault(State(f): State<FaultInjector>) -> StatusCode {
    f.clear();
    tracing::warn!("fault injection cleared");
    StatusCode::NO_CONTENT
}

/// Middleware applying the active fault to matching requests.
pub async fn inject(State(f): State<FaultInjector>, req: Request, next: Next) -> Response {
    f.apply(req, next).await
}

impl FaultInjector {
    /// Apply the active fault to `req`: pass it to `next`, delay it, or answer for it —
    /// before the handler, or (with `after`) once the handler has answered.
    /// What [`inject`] does; the kit's own middleware calls it directly.
    pub async fn apply(&self, req: Request, next: Next) -> Response {
        match self.decide(req.uri().path()) {
            Decision::Pass => next.run(req).await,
            Decision::Act {
                delay,
                fail,
                after: true,
            } => {
                // The handler runs to completion (its effects are committed); only its
                // answer is lost.
                let served = next.run(req).await;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match fail {
                    None => served,
                    Some(status) => injected(status),
                }
            }
            Decision::Act {
                delay,
                fail,
                after: false,
            } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match fail {
                    None => next.run(req).await,
                    Some(status) => injected(status),
                }
            }
        }
    }
}

/// The answer to a failed request: the error body plus `x-fault-injected: true`.
fn injected(status: StatusCode) -> Response {
    let mut resp =
        ApiError::new(status, "injected_fault", "fault injected by msctl chaos").into_response();
    resp.headers_mut().insert(
        "x-fault-injected",
        axum::http::HeaderValue::from_static("true"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    /// A router whose one handler counts its runs and notes when it last ran, behind
    /// [`inject`] with `spec` active.
    fn counted(spec: FaultSpec) -> (Router, Arc<AtomicUsize>, Arc<Mutex<Option<Instant>>>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let ran_at = Arc::new(Mutex::new(None));
        let f = FaultInjector::new();
        f.set(spec).expect("valid");
        let (r, t) = (runs.clone(), ran_at.clone());
        let app = Router::new()
            .route(
                "/api/v1/payments",
                post(move || {
                    let (r, t) = (r.clone(), t.clone());
                    async move {
                        r.fetch_add(1, Ordering::SeqCst);
                        *t.lock().expect("lock") = Some(Instant::now());
                        StatusCode::CREATED
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(f, inject));
        (app, runs, ran_at)
    }

    fn post_payment() -> Request {
        Request::builder()
            .method("POST")
            .uri("/api/v1/payments")
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_handler_the_work_is_done_and_the_answer_replaced() {
        let (app, runs, _) = counted(FaultSpec {
            status: Some(503),
            after: Some(true),
            ..FaultSpec::default()
        });
        let resp = app.oneshot(post_payment()).await.expect("infallible");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers().get("x-fault-injected").map(|v| v.as_bytes()),
            Some(&b"true"[..])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn before_the_handler_a_failed_request_is_never_served() {
        for after in [None, Some(false)] {
            let (app, runs, _) = counted(FaultSpec {
                status: Some(503),
                after,
                ..FaultSpec::default()
            });
            let resp = app.oneshot(post_payment()).await.expect("infallible");
            assert_eq!(runs.load(Ordering::SeqCst), 0, "after = {after:?}");
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_handler_a_delay_holds_the_answer_not_the_work() {
        let (app, runs, ran_at) = counted(FaultSpec {
            delay_ms: Some(5_000),
            after: Some(true),
            ..FaultSpec::default()
        });
        let start = Instant::now();
        let resp = app.oneshot(post_payment()).await.expect("infallible");
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "the handler's own answer"
        );
        assert!(start.elapsed() >= Duration::from_secs(5), "answer held");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let ran = ran_at.lock().expect("lock").expect("ran");
        assert!(
            ran.duration_since(start) < Duration::from_secs(5),
            "the handler ran before the delay"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_handler_first_n_loses_only_the_first_answers() {
        let (app, runs, _) = counted(FaultSpec {
            first_n: Some(1),
            status: Some(504),
            delay_ms: Some(2_000),
            after: Some(true),
            ..FaultSpec::default()
        });
        let start = Instant::now();
        let first = app
            .clone()
            .oneshot(post_payment())
            .await
            .expect("infallible");
        assert_eq!(first.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(start.elapsed() >= Duration::from_secs(2));
        let second = app.oneshot(post_payment()).await.expect("infallible");
        assert_eq!(second.status(), StatusCode::CREATED);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "both were served");
    }

    #[test]
    fn after_is_on_the_wire_only_when_given() {
        let spec: FaultSpec =
            serde_json::from_str(r#"{"status":503,"after":true}"#).expect("known field");
        assert_eq!(spec.after, Some(true));
        assert_eq!(
            serde_json::to_string(&FaultSpec {
                status: Some(503),
                ..FaultSpec::default()
            })
            .expect("json"),
            r#"{"status":503}"#
        );
    }

    #[tokio::test(start_paused = true)]
    async fn first_n_then_pass_and_expiry_follow_the_clock() {
        let f = FaultInjector::new();
        f.set(FaultSpec {
            first_n: Some(2),
            status: Some(500),
            duration: Some("10s".into()),
            ..FaultSpec::default()
        })
        .expect("valid");
        let fails = |d: Decision| matches!(d, Decision::Act { fail: Some(_), .. });
        assert!(fails(f.decide("/api/x")));
        assert!(fails(f.decide("/api/x")));
        assert!(!fails(f.decide("/api/x")));
        assert!(matches!(f.decide("/health"), Decision::Pass));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(f.current().is_none());
    }

    #[test]
    fn status_alone_fails_everything_under_the_prefix() {
        let f = FaultInjector::new();
        f.set(FaultSpec {
            status: Some(503),
            path_prefix: Some("/api/v1/products".into()),
            ..FaultSpec::default()
        })
        .expect("valid");
        assert!(
            matches!(f.decide("/api/v1/products/1"), Decision::Act { fail: Some(s), .. } if s == StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(matches!(f.decide("/api/v1/orders"), Decision::Pass));
    }

    #[test]
    fn invalid_specs_are_refused() {
        let f = FaultInjector::new();
        for spec in [
            FaultSpec {
                error_rate: Some(1.5),
                ..FaultSpec::default()
            },
            FaultSpec {
                status: Some(200),
                ..FaultSpec::default()
            },
            FaultSpec {
                duration: Some("forever".into()),
                ..FaultSpec::default()
            },
            FaultSpec {
                path_prefix: Some("api".into()),
                ..FaultSpec::default()
            },
        ] {
            assert_eq!(
                f.set(spec).map_err(|e| e.status),
                Err(StatusCode::BAD_REQUEST)
            );
        }
    }
}
