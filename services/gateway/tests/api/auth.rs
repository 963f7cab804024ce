use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_public_routes_need_a_valid_token() {
    let reg = spawn_registry(0).await;
    let _orders = spawn_upstream("order-service", &reg.url(), "a").await;
    let _users = spawn_upstream("user-service", &reg.url(), "a").await;
    wait_registered(&reg.url(), "order-service", 1).await;
    wait_registered(&reg.url(), "user-service", 1).await;
    let gw = spawn_gateway(&reg.url(), gateway_config()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/orders", gw.url());

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("forged", Some(format!("Bearer {}", forged_token("u1")))),
        ("expired", Some(format!("Bearer {}", expired_token("u1")))),
        ("alg none", Some(format!("Bearer {}", none_token("u1")))),
        ("garbage", Some("Bearer not.a.token".into())),
        ("wrong scheme", Some(format!("Basic {}", token("u1")))),
    ];
    for (name, header) in cases {
        let mut req = http.get(&url);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let r = req.send().await.expect("answer");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            r.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{name}"
        );
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], "unauthorized", "{name}");
    }
    assert_eq!(
        _orders
            .behaviour
            .hits
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "refused requests reached the upstream"
    );

    let r = http
        .get(&url)
        .bearer_auth(token("u1"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::OK);

    // Public routes need no token.
    for path in ["/api/v1/users/login", "/api/v1/users/register"] {
        let r = http
            .post(format!("{}{path}", gw.url()))
            .json(&serde_json::json!({"email": "a@b.c"}))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // ...but other user routes do.
    let r = http
        .post(format!("{}/api/v1/users/logout", gw.url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
