//! Request identity and W3C trace context, carried from the inbound request to every
//! outbound call made while serving it.
//!
//! The [`propagate`] middleware reads `X-Request-Id` and `traceparent` (or makes new ones),
//! opens a tracing span carrying them, echoes `X-Request-Id` on the response and stores a
//! [`RequestContext`] in a task-local, where [`crate::client`] finds it for outbound calls.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use tracing::Instrument;

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";
/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// Identity of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// Caller-supplied (if sane) or generated request id.
    pub request_id: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// This service's span for the request: 16 lowercase hex digits.
    pub span_id: String,
    /// Trace flags from the caller (`01` = sampled).
    pub flags: String,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// The context of the request being served by this task, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Run `fut` with `ctx` as the current request context.
pub async fn scope<F: std::future::Future>(ctx: RequestContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// A random, non-zero id of `N` bytes as `2N` lowercase hex digits (W3C trace and span ids).
///
/// One draw from the thread-local CSPRNG and one formatted write: this runs for every
/// request served and every outbound call, so it must not cost a syscall (the OS RNG) or an
/// allocation per byte, as the per-byte `format!` it replaced did (a visible share of the
/// gateway's CPU per request).
fn random_hex<const N: usize>() -> String {
    let mut rng = rand::thread_rng();
    loop {
        let mut bytes = [0u8; N];
        rng.fill(&mut bytes[..]);
        // All-zero ids are invalid in W3C trace context.
        if bytes.iter().any(|b| *b != 0) {
            let mut s = String::with_capacity(2 * N);
            for b in bytes {
                s.push(char::from(HEX[usize::from(b >> 4)]));
                s.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
            return s;
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A version-4 request id from the thread-local CSPRNG (not the OS RNG, which costs a
/// syscall per request).
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill(&mut bytes[..]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

impl RequestContext {
    /// A new root context.
    pub fn new_root() -> Self {
        Self {
            request_id: new_request_id(),
            trace_id: random_hex::<16>(),
            span_id: random_hex::<8>(),
            flags: "01".into(),
        }
    }

    /// The context for an inbound request with these headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut ctx = Self::new_root();
        if let Some(id) = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
            let id = id.trim();
            // Only echo ids that are safe to log and put back into a header.
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                ctx.request_id = id.to_owned();
            }
        }
        if let Some((trace_id, flags)) = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
        {
            ctx.trace_id = trace_id;
            ctx.flags = flags;
        }
        ctx
    }

    /// `traceparent` for an outbound call: same trace, a fresh child span id.
    pub fn outbound_traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, random_hex::<8>(), self.flags)
    }
}

/// Parse a version-00 `traceparent`, returning the trace id and flags.
pub fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || version != "00"
        || !is_hex(trace, 32)
        || !is_hex(parent, 16)
        || flags.len() != 2
        || !flags.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    Some((trace.to_owned(), flags.to_ascii_lowercase()))
}

/// Middleware: establish the request context, span and `X-Request-Id` response header.
pub async fn propagate(req: Request, next: Next) -> Response {
    traced(req, |req| next.run(req)).await
}

/// Serve `req` with `inner` inside its request context and span, as [`propagate`] does;
/// the kit's host calls this inside its single middleware.
pub(crate) async fn traced<F, Fut>(req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let ctx = RequestContext::from_headers(req.headers());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %ctx.request_id,
        trace_id = %ctx.trace_id,
    );
    let request_id = ctx.request_id.clone();
    // Probes and scrapes arrive every few seconds; keep them out of the info-level log.
    let quiet = matches!(req.uri().path(), "/health" | "/ready" | "/metrics");
    let start = std::time::Instant::now();
    let mut resp = scope(ctx, inner(req)).instrument(span.clone()).await;
    let (status, ms) = (resp.status().as_u16(), start.elapsed().as_secs_f64() * 1e3);
    span.in_scope(|| {
        if quiet {
            tracing::debug!(status, latency_ms = ms, "served");
        } else {
            tracing::info!(status, latency_ms = ms, "served");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// Install the JSON log subscriber, filtered by `RUST_LOG` (default `info`).
/// Safe to call more than once; later calls do nothing.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let ctx = RequestContext::new_root();
        let tp = ctx.outbound_traceparent();
        assert_eq!(parse_traceparent(&tp).map(|t| t.0), Some(ctx.trace_id));
        for bad in [
            "",
            "00-xyz",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-ff",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_well_formed() {
        for _ in 0..200 {
            let ctx = RequestContext::new_root();
            assert!(is_hex(&ctx.trace_id, 32), "{}", ctx.trace_id);
            assert!(is_hex(&ctx.span_id, 16), "{}", ctx.span_id);
            let id = uuid::Uuid::parse_str(&ctx.request_id).expect("a uuid");
            assert_eq!(id.get_version_num(), 4, "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        let a = RequestContext::new_root();
        let b = RequestContext::new_root();
        assert_ne!((a.trace_id, a.request_id), (b.trace_id, b.request_id));
    }

    #[test]
    fn hostile_request_ids_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc def<script>"));
        assert_ne!(
            RequestContext::from_headers(&h).request_id,
            "abc def<script>"
        );
        h.insert(REQUEST_ID, HeaderValue::from_static("req-42"));
        assert_eq!(RequestContext::from_headers(&h).request_id, "req-42");
    }
}
