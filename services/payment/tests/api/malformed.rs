//! Generated malformed input against the running service (the shared harness in
//! `service_testkit::malformed`): never a 5xx, every 4xx carries a JSON `code`.

use proptest::prelude::*;
use serde_json::{json, Value};
use service_testkit::malformed::{self, any_identity, field, Surface};

use crate::helpers::{spawn_app, CARD};

/// Bodies close to the real ones, with each field drawn from anything.
fn near_valid() -> impl Strategy<Value = Value> {
    prop_oneof![
        (field(), field(), field())
            .prop_map(|(o, a, c)| json!({"order_id": o, "amount_cents": a, "card": c})),
        (field(), any::<i64>())
            .prop_map(|(o, a)| json!({"order_id": o, "amount_cents": a, "card": CARD})),
        (
            "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
            any::<i64>(),
            "[0-9 -]{0,24}"
        )
            .prop_map(|(o, a, c)| json!({"order_id": o, "amount_cents": a, "card": c})),
    ]
}

#[test]
fn malformed_requests_never_get_a_5xx() {
    let rt = malformed::runtime();
    let app = rt.block_on(spawn_app());
    let surface = Surface {
        routes: &[
            "/internal/payments/charge",
            "/internal/payments/{}/refund",
            "/internal/ledger/totals",
            "/api/v1/payments/{}",
        ],
        near_valid: near_valid().boxed(),
        identity: any_identity(),
        identity_as_bearer: false,
        admin_token: "test-admin-token",
        cases: 400,
    };
    malformed::never_a_5xx(&rt, &app.client, &app.address, &surface);
    drop(app);
}
