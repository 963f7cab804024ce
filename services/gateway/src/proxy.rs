//! The proxy: every request that is not one of the gateway's own endpoints.
//!
//! Policies, in the order they apply (outermost first; the kit's middleware — request
//! context, metrics, admin token, fault injection — wraps all of this):
//!
//! 1. **rate limit** per client (token bucket; 429 `rate_limited` + `Retry-After`);
//! 2. **route match** and path hygiene ([`crate::routes`]; 400 / 404);
//! 3. **authentication**: JWT on non-public routes (401 `unauthorized`), identity headers
//!    stripped and `X-User-Id` set from the token;
//! 4. **body limit** (413 `payload_too_large`);
//! 5. the kit's resilient client: **retry** (idempotent methods only; budget + backoff) →
//!    **load balancing** → **circuit breaker** per instance (open = ejected) → **timeout**
//!    per attempt (per-route override). Failures map to 502 `upstream_error`,
//!    503 `no_instances` / `upstream_unavailable`, 504 `upstream_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use service_kit::client::{ClientError, OutboundRequest, ResilientClient, RetryMode};
use service_kit::jwt::{bearer_token, JwtError, JwtKeys};
use service_kit::metrics::{Counter, Metrics, RouteLabel};
use service_kit::resilience::rate_limit::RateLimiter;
use service_kit::ApiError;
use tokio::time::Instant;

use crate::config::GatewayConfig;
use crate::routes::match_route;

/// Shared state of the proxy.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) client: ResilientClient,
    pub(crate) jwt: Arc<JwtKeys>,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) metrics: Metrics,
    /// `gateway_forwarded_total`: one per client request sent on; with the client's
    /// `upstream_calls_total` it shows whether anything sends one request upstream twice.
    pub(crate) forwarded: Counter,
}

/// Request headers never forwarded: hop-by-hop ones, ones the client must not control
/// (identity, admin), and ones the gateway sets itself.
fn strip(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
            | "x-admin-token"
            | "x-request-id"
            | "traceparent"
            | "tracestate"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-real-ip"
    ) || n.starts_with("x-user")
        || n.starts_with("x-auth")
        || n.starts_with("x-forwarded-user")
}

/// Response headers not copied back to the client.
fn strip_response(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "trailer"
            | "upgrade"
    )
}

impl Gateway {
    fn client_key(&self, headers: &HeaderMap, peer: SocketAddr) -> String {
        if self.config.trust_forwarded_for {
            if let Some(first) = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
            {
                return first.to_owned();
            }
        }
        peer.ip().to_string()
    }

    fn count(&self, name: &str, help: &str, labels: &[(&str, &str)]) {
        self.metrics.counter(name, help, labels).inc();
    }
}

/// Label a response with its route template for the metrics middleware.
fn labelled(mut resp: Response, route: &str) -> Response {
    resp.extensions_mut().insert(RouteLabel(route.to_owned()));
    resp
}

/// The fallback handler of the gateway router.
pub async fn proxy(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    // 1. rate limit
    if let Some(limiter) = &gw.limiter {
        let key = gw.client_key(req.headers(), peer);
        if let Err(wait) = limiter.check(&key, Instant::now()) {
            gw.count(
                "gateway_rate_limited_total",
                "Requests refused by the rate limiter.",
                &[],
            );
            return labelled(
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; slow down",
                )
                .with_retry_after(wait)
                .into_response(),
                "rate_limited",
            );
        }
    }
    // 2. route
    let matched = match match_route(req.method(), req.uri().path()) {
        Ok(m) => m,
        Err(e) => return labelled(e.into_response(), "unmatched"),
    };
    let label = format!("/api/v1/{}", matched.route);
    // 3. authentication
    let user = if matched.public {
        None
    } else {
        let auth = authenticate(&gw.jwt, req.headers());
        #[cfg(feature = "bug-expired-token-reads")]
        let auth = expired_read_grace(&gw.config, req.method(), req.headers(), auth);
        match auth {
            Ok(sub) => Some(sub),
            Err(e) => {
                gw.count(
                    "gateway_auth_failures_total",
                    "Requests refused for a missing or invalid token.",
                    &[],
                );
                let mut resp = e.into_response();
                resp.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
                return labelled(resp, &label);
            }
        }
    };
    let (parts, body) = req.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 4);
    for (name, value) in &parts.headers {
        if !strip(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(sub) = &user {
        match HeaderValue::from_str(sub) {
            Ok(v) => {
                headers.insert("x-user-id", v);
            }
            Err(_) => {
                return labelled(
                    ApiError::unauthorized("token subject is not a valid header value")
                        .into_response(),
                    &label,
                );
            }
        }
    }
    // Behind a trusted proxy extend its chain; otherwise start a new one (a client could
    // put anything in it).
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .filter(|_| gw.config.trust_forwarded_for)
    {
        Some(chain) => format!("{chain}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(host) = parts.headers.get(axum::http::header::HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    // 4. body
    let body = match axum::body::to_bytes(body, gw.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return labelled(
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request body exceeds {} bytes", gw.config.max_body_bytes),
                )
                .into_response(),
                &label,
            );
        }
    };
    // 5. upstream
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let request = OutboundRequest {
        method: parts.method,
        path_and_query,
        headers,
        body,
        retry: if cfg!(feature = "bug-retry-post") {
            // seeded bug (fidelity suite): "the kit's client retries safely anyway" — every
            // method is retried on timeouts, transport errors and 502/503/504, POST included.
            RetryMode::Always
        } else {
            RetryMode::IdempotentOnly
        },
        timeout: gw.config.route_timeouts.get(matched.route).copied(),
    };
    gw.forwarded.inc();
    #[cfg(feature = "bug-edge-retry")]
    let sent = edge_retry(&gw, matched.service, request).await;
    #[cfg(not(feature = "bug-edge-retry"))]
    let sent = gw.client.send(matched.service, request).await;
    let resp = match sent {
        Ok(up) => {
            let mut resp = Response::new(Body::from(up.body));
            *resp.status_mut() = up.status;
            let h = resp.headers_mut();
            for (name, value) in &up.headers {
                if !strip_response(name) {
                    h.append(name.clone(), value.clone());
                }
            }
            resp
        }
        Err(e) => upstream_error(e).into_response(),
    };
    labelled(resp, &label)
}

fn authenticate(jwt: &JwtKeys, headers: &HeaderMap) -> Result<String, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let token =
        header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
            ApiError::unauthorized("authorization header must be 'Bearer <token>'")
        })?;
    match jwt.validate(token) {
        Ok(claims) => Ok(claims.sub),
        Err(JwtError::Expired) => Err(ApiError::unauthorized("token expired")),
        Err(e) => Err(ApiError::unauthorized(e.to_string())),
    }
}

/// seeded bug (fidelity suite): an "edge retry" layered on the kit's client, which has
/// already retried within its budget — a failing GET is sent up to three times, each send
/// with its own retries (3 × 3 attempts), and none of these re-sends is paid from the
/// retry budget.
#[cfg(feature = "bug-edge-retry")]
async fn edge_retry(
    gw: &Gateway,
    service: &str,
    request: OutboundRequest,
) -> Result<service_kit::client::UpstreamResponse, ClientError> {
    let safe = matches!(
        request.method,
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let mut left = 2u32;
    loop {
        let sent = gw.client.send(service, request.clone()).await;
        let failed = match &sent {
            Ok(up) => matches!(up.status.as_u16(), 502..=504),
            Err(e) => e.is_transient(),
        };
        if !safe || !failed || left == 0 {
            return sent;
        }
        left -= 1;
    }
}

/// seeded bug (fidelity suite): a "grace period for reads" — a GET or HEAD whose token
/// failed validation is decoded again with the `exp` check turned off (signature and
/// issuer still checked), with no bound on how long ago the token expired.
#[cfg(feature = "bug-expired-token-reads")]
fn expired_read_grace(
    config: &GatewayConfig,
    method: &axum::http::Method,
    headers: &HeaderMap,
    auth: Result<String, ApiError>,
) -> Result<String, ApiError> {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let read = *method == axum::http::Method::GET || *method == axum::http::Method::HEAD;
    if auth.is_ok() || !read {
        return auth;
    }
    let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
    else {
        return auth;
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[config.jwt.issuer.as_str()]);
    validation.set_required_spec_claims(&["iss", "sub"]);
    validation.validate_exp = false;
    let key = DecodingKey::from_secret(config.jwt.secret.as_bytes());
    match decode::<service_kit::jwt::Claims>(token, &key, &validation) {
        Ok(data) if !data.claims.sub.is_empty() => Ok(data.claims.sub),
        _ => auth,
    }
}

fn upstream_error(e: ClientError) -> ApiError {
    match e {
        ClientError::Discovery(d) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_instances",
            d.to_string(),
        )
        .with_retry_after(std::time::Duration::from_secs(1)),
        ClientError::NoInstances { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_instances",
            e.to_string(),
        )
        .with_retry_after(std::time::Duration::from_secs(1)),
        ClientError::Unavailable { retry_after, .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            e.to_string(),
        )
        .with_retry_after(retry_after),
        ClientError::Timeout { .. } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            e.to_string(),
        ),
        ClientError::Transport { .. }
        | ClientError::Decode(_)
        | ClientError::Encode(_)
        | ClientError::Status { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", e.to_string())
        }
    }
}
