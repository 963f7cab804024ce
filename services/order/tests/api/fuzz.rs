//! Generated malformed input against the real running service: never a 5xx.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::helpers::*;

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::from),
        Just(json!(uuid::Uuid::new_v4())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("items".to_owned()),
                    Just("card".to_owned()),
                    Just("product_id".to_owned()),
                    Just("quantity".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies close to valid ones, with one part replaced by something odd.
fn order_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (json_value(), json_value(), json_value()).prop_map(|(pid, qty, card)| {
            json!({"items": [{"product_id": pid, "quantity": qty}], "card": card})
                .to_string()
                .into_bytes()
        }),
        (any::<i64>(), ".{0,80}").prop_map(|(qty, card)| {
            json!({"items": [{"product_id": uuid::Uuid::new_v4(), "quantity": qty}], "card": card})
                .to_string()
                .into_bytes()
        }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    user: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    admin: bool,
    body: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    let path = prop_oneof![
        Just("/api/v1/orders".to_owned()),
        ".{0,40}".prop_map(|s| format!("/api/v1/orders/{}", encode(&s))),
        (".{0,12}", ".{0,12}", ".{0,12}").prop_map(|(a, b, c)| format!(
            "/api/v1/orders?status={}&limit={}&{}=1",
            encode(&a),
            encode(&b),
            encode(&c)
        )),
        ".{0,20}".prop_map(|s| format!("/admin/sagas?limit={}", encode(&s))),
        ".{0,40}".prop_map(|s| format!("/admin/sagas/{}", encode(&s))),
        Just("/api/v1/orders/00000000-0000-0000-0000-000000000000".to_owned()),
    ];
    let header = proptest::option::of(prop_oneof![
        "[ -~]{0,140}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]);
    (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("PUT"),
            Just("DELETE"),
            Just("PATCH")
        ],
        path,
        header.clone(),
        header,
        prop_oneof![
            Just(None),
            Just(Some("application/json")),
            Just(Some("text/plain"))
        ],
        any::<bool>(),
        order_body(),
    )
        .prop_map(
            |(method, path, user, key, content_type, admin, body)| Case {
                method,
                path,
                user,
                key,
                content_type,
                admin,
                body,
            },
        )
}

/// Every generated request is answered below 500 (and the service keeps running).
#[test]
fn generated_malformed_requests_never_get_a_5xx() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = rt.block_on(World::new());
    let order = rt.block_on(spawn_order(OrderSpec::new(&world)));
    let http = http();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |c| {
        let status = rt.block_on(async {
            let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
            let mut req = http
                .request(method, order.url(&c.path))
                .body(c.body.clone());
            if let Some(u) = c
                .user
                .as_ref()
                .and_then(|u| reqwest::header::HeaderValue::from_bytes(u).ok())
            {
                req = req.header("x-user-id", u);
            }
            if let Some(k) = c
                .key
                .as_ref()
                .and_then(|k| reqwest::header::HeaderValue::from_bytes(k).ok())
            {
                req = req.header("idempotency-key", k);
            }
            if let Some(ct) = c.content_type {
                req = req.header("content-type", ct);
            }
            if c.admin {
                req = req.header("x-admin-token", ADMIN);
            }
            match req.send().await {
                Ok(r) => Some(r.status().as_u16()),
                // A URL reqwest itself refuses never reached the service.
                Err(e) if e.is_builder() => None,
                Err(e) => panic!("request failed: {e}"),
            }
        });
        if let Some(s) = status {
            prop_assert!(s < 500, "{c:?} answered {s}");
        }
        Ok(())
    });
    rt.block_on(async {
        let health = http.get(order.url("/health")).send().await.expect("alive");
        assert_eq!(health.status(), 200);
        order.stop().await;
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
