//! Generated malformed input against a running service: random bodies, near-valid bodies
//! with wrong types and bounds, hostile path segments, query strings and identity headers.
//! Whatever comes in, the answer is never a 5xx, every 4xx carries a JSON `code`, and the
//! service is still ready afterwards.
//!
//! A service's test names its routes and the shape of its near-valid bodies in a
//! [`Surface`]; [`json_value`] and [`field`] build those bodies.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

/// Any JSON value, edge-case numbers and UUID-looking strings included.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MAX),
            Just(i64::MIN),
            Just(1_000_001)
        ]
        .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One field of a near-valid body: any JSON value or a long string.
pub fn field() -> impl Strategy<Value = Value> {
    prop_oneof![json_value(), ".{0,300}".prop_map(Value::from)]
}

/// What a service exposes to the generator.
pub struct Surface {
    /// Route templates; `{}` is replaced by a generated path segment.
    pub routes: &'static [&'static str],
    /// Bodies close to the service's real ones (built from [`field`]).
    pub near_valid: BoxedStrategy<Value>,
    /// The `X-User-Id` to send, if any; see [`any_identity`].
    pub identity: BoxedStrategy<Option<String>>,
    /// Also send the identity as `Authorization: Bearer <identity>` (services that read
    /// the token themselves, e.g. for logout).
    pub identity_as_bearer: bool,
    /// The admin token, sent as `X-Admin-Token` on about half the requests.
    pub admin_token: &'static str,
    /// How many requests to generate.
    pub cases: u32,
}

/// No identity, or printable ASCII of up to 40 characters.
pub fn any_identity() -> BoxedStrategy<Option<String>> {
    prop::option::of("[ -~]{0,40}").boxed()
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    query: String,
    identity: Option<String>,
    admin: bool,
    body: Body,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{0,40}",
        "(%[0-9A-Fa-f]{2}){1,8}",
        Just("..".to_owned()),
        Just("%00".to_owned()),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
    ]
}

fn case(surface: &Surface) -> impl Strategy<Value = Case> {
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
        json_value().prop_map(Body::Json),
        surface.near_valid.clone().prop_map(Body::Json),
    ];
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        prop::sample::select(surface.routes.to_vec()),
        segment(),
        prop::collection::vec(("[a-z_]{1,8}", segment()), 0..3),
        surface.identity.clone(),
        any::<bool>(),
        body,
    )
        .prop_map(|(method, route, seg, q, identity, admin, body)| Case {
            method,
            path: route.replace("{}", &seg),
            query: q
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
            identity,
            admin,
            body,
        })
}

async fn send(client: &reqwest::Client, base: &str, surface: &Surface, c: &Case) -> (u16, String) {
    let url = if c.query.is_empty() {
        format!("{base}{}", c.path)
    } else {
        format!("{base}{}?{}", c.path, c.query)
    };
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
    let mut r = client.request(method, &url);
    if let Some(id) = &c.identity {
        r = r.header("x-user-id", id.as_str());
        if surface.identity_as_bearer {
            r = r.header("authorization", format!("Bearer {id}"));
        }
    }
    if c.admin {
        r = r.header("x-admin-token", surface.admin_token);
    }
    r = match &c.body {
        Body::Bytes(b) => r.header("content-type", "application/json").body(b.clone()),
        Body::Json(v) => r.json(v),
    };
    match r.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        // reqwest refuses some generated URLs or headers before sending: nothing to check.
        Err(e) if e.is_builder() => (0, String::new()),
        Err(e) => panic!("transport error for {c:?}: {e}"),
    }
}

/// A runtime for [`never_a_5xx`]: the property runner is synchronous and blocks on it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Send `surface.cases` generated requests to the service at `base` (`http://127.0.0.1:N`)
/// and panic on the first 5xx or 4xx without a JSON `code`; then check `/ready` is 200.
pub fn never_a_5xx(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    surface: &Surface,
) {
    let mut runner = TestRunner::new(Config {
        cases: surface.cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(surface), |c| {
            let (status, text) = rt.block_on(send(client, base, surface, &c));
            prop_assert!(status < 500, "{c:?} -> {status} {text}");
            if status >= 400 {
                let v: Value = serde_json::from_str(&text).map_err(|e| {
                    TestCaseError::fail(format!("{c:?} -> {status} non-JSON {text:?}: {e}"))
                })?;
                prop_assert!(v["code"].is_string(), "{c:?} -> {status} {text}");
            }
            Ok(())
        })
        .expect("no 5xx and JSON errors");
    // The service is still healthy afterwards.
    let ready = rt.block_on(async { client.get(format!("{base}/ready")).send().await });
    assert_eq!(ready.expect("request").status(), 200);
}
