//! Generated malformed input against the running service (the shared harness in
//! `service_testkit::malformed`): never a 5xx, every 4xx carries a JSON `code`.

use proptest::prelude::*;
use serde_json::{json, Value};
use service_testkit::malformed::{self, any_identity, field, Surface};

use crate::helpers::{spawn_app, ADMIN_TOKEN};

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

#[test]
fn malformed_requests_never_get_a_5xx() {
    let rt = malformed::runtime();
    let app = rt.block_on(spawn_app());
    let surface = Surface {
        routes: &[
            "/api/v1/users/register",
            "/api/v1/users/login",
            "/api/v1/users/logout",
            "/api/v1/users/me",
            "/internal/tokens/{}/revoked",
            "/internal/users/{}",
            "/admin/seed",
        ],
        near_valid: near_valid().boxed(),
        identity: any_identity(),
        // Logout reads the bearer token itself.
        identity_as_bearer: true,
        admin_token: ADMIN_TOKEN,
        cases: 400,
    };
    malformed::never_a_5xx(&rt, &app.client, &app.address, &surface);
    drop(app);
}
