//! Generated malformed input against the running service: random bodies, near-valid
//! bodies with wrong types and bounds, hostile paths, query strings and identity headers.
//! Whatever comes in, the answer is never a 5xx, and every 4xx carries a JSON `code`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

fn json_value() -> impl Strategy<Value = Value> {
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

fn field() -> impl Strategy<Value = Value> {
    prop_oneof![json_value(), ".{0,300}".prop_map(Value::from)]
}

/// Bodies close to the real ones, with each field drawn from anything.
fn near_valid() -> impl Strategy<Value = Value> {
    prop_oneof![
        (field(), field(), field())
            .prop_map(|(e, p, n)| json!({"email": e, "password": p, "name": n})),
        (".{0,30}@[a-z]{1,8}\\.io", ".{0,140}", ".{0,120}")
            .prop_map(|(e, p, n)| json!({"email": e, "password": p, "name": n})),
        (field(), field()).prop_map(|(e, p)| json!({"email": e, "password": p})),
        (field(), field(), field(), field()).prop_map(|(n, e, p, c)| {
            json!({"name": n, "email": e, "password": p, "current_password": c})
        }),
        prop::collection::vec((field(), field(), field(), field()), 0..2).prop_map(|us| {
            let users: Vec<Value> = us
                .into_iter()
                .map(|(i, e, n, p)| json!({"id": i, "email": e, "name": n, "password": p}))
                .collect();
            json!({"users": users})
        }),
    ]
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
        json_value().prop_map(Body::Json),
        near_valid().prop_map(Body::Json),
    ]
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

const ROUTES: &[&str] = &[
    "/api/v1/users/register",
    "/api/v1/users/login",
    "/api/v1/users/logout",
    "/api/v1/users/me",
    "/internal/tokens/{}/revoked",
    "/internal/users/{}",
    "/admin/seed",
];

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    query: String,
    identity: Option<String>,
    admin: bool,
    body: Body,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        prop::sample::select(ROUTES.to_vec()),
        segment(),
        prop::collection::vec(("[a-z_]{1,8}", segment()), 0..3),
        prop::option::of("[ -~]{0,40}"),
        any::<bool>(),
        body(),
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

async fn send(app: &TestApp, c: &Case) -> (u16, String) {
    let url = if c.query.is_empty() {
        app.url(&c.path)
    } else {
        format!("{}?{}", app.url(&c.path), c.query)
    };
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
    let mut r = app.client.request(method, &url);
    if let Some(id) = &c.identity {
        r = r
            .header("x-user-id", id.as_str())
            .header("authorization", format!("Bearer {id}"));
    }
    if c.admin {
        r = r.header("x-admin-token", ADMIN_TOKEN);
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

#[test]
fn malformed_requests_never_get_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = rt.block_on(spawn_app());
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |c| {
            let (status, text) = rt.block_on(send(&app, &c));
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
    let ready = rt.block_on(async { app.client.get(app.url("/ready")).send().await });
    assert_eq!(ready.expect("request").status(), 200);
    drop(app);
}
