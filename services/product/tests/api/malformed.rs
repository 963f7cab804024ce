//! Generated malformed input against the running service (the shared harness in
//! `service_testkit::malformed`): never a 5xx, every 4xx carries a JSON `code`.

use proptest::prelude::*;
use serde_json::{json, Value};
use service_testkit::malformed::{self, field, Surface};

use crate::helpers::{spawn_app, ADMIN, ADMIN_TOKEN};

/// Bodies close to the real ones, with each field drawn from anything.
fn near_valid() -> impl Strategy<Value = Value> {
    prop_oneof![
        (field(), prop::collection::vec((field(), field()), 0..4)).prop_map(|(o, items)| {
            let items: Vec<Value> = items
                .into_iter()
                .map(|(p, q)| json!({"product_id": p, "quantity": q}))
                .collect();
            json!({"order_id": o, "items": items})
        }),
        (field(), field(), field(), field()).prop_map(
            |(n, d, p, s)| json!({"name": n, "description": d, "price_cents": p, "stock": s})
        ),
        prop::collection::vec((field(), field(), field(), field()), 0..3).prop_map(|ps| {
            let products: Vec<Value> = ps
                .into_iter()
                .map(|(i, n, p, s)| json!({"id": i, "name": n, "price_cents": p, "stock": s}))
                .collect();
            json!({"products": products})
        }),
    ]
}

#[test]
fn malformed_requests_never_get_a_5xx() {
    let rt = malformed::runtime();
    let app = rt.block_on(spawn_app());
    let surface = Surface {
        routes: &[
            "/api/v1/products",
            "/api/v1/products/{}",
            "/internal/reservations",
            "/internal/reservations/{}/release",
            "/internal/reservations/{}/commit",
            "/admin/seed",
        ],
        near_valid: near_valid().boxed(),
        // The catalog admin too, so that writes get past authorisation.
        identity: prop::option::of(prop_oneof![Just(ADMIN.to_string()), "[ -~]{0,40}",]).boxed(),
        identity_as_bearer: false,
        admin_token: ADMIN_TOKEN,
        cases: 400,
    };
    malformed::never_a_5xx(&rt, &app.client, &app.address, &surface);
    drop(app);
}
