//! Accounts and sessions: register, login, profile, logout and revocation, seeding.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use service_kit::config::JwtConfig;
use service_kit::jwt::JwtKeys;

use crate::helpers::{spawn_app, spawn_app_with_ttl, ADMIN_TOKEN, JWT_SECRET};

fn keys() -> JwtKeys {
    JwtKeys::new(&JwtConfig {
        secret: JWT_SECRET.into(),
        issuer: "msctl".into(),
    })
}

#[tokio::test]
async fn register_then_login_issues_a_token_the_gateway_accepts() {
    let app = spawn_app().await;

    let (status, user) = app
        .register("Ann@Example.com", "password-123", " Ann ")
        .await;
    let (login_status, login) = app.login("ann@example.com", "password-123").await;

    assert_eq!(status, 201);
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["name"], "Ann");
    assert_eq!(user["role"], "customer");
    assert!(user.get("password_hash").is_none());
    assert_eq!(login_status, 200);
    assert_eq!(login["token_type"], "Bearer");
    let claims = keys()
        .validate(login["token"].as_str().expect("token"))
        .expect("a kit-valid token");
    assert_eq!(json!(claims.sub), user["id"]);
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[tokio::test]
async fn duplicate_emails_and_bad_credentials_are_refused() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("bo@example.com", "password-123", "Bo").await.0,
        201
    );
    let (status, v) = app.register("BO@example.com", "password-456", "Bo 2").await;
    assert_eq!((status, v["code"].as_str()), (409, Some("email_taken")));
    for (email, password) in [
        ("bo@example.com", "wrong-password"),
        ("nobody@example.com", "password-123"),
        ("not an email", "password-123"),
    ] {
        let (status, v) = app.login(email, password).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{email}"
        );
    }
    for (body, code) in [
        (
            json!({"email": "x", "password": "password-123", "name": "X"}),
            "invalid_email",
        ),
        (
            json!({"email": "x@y.io", "password": "short", "name": "X"}),
            "weak_password",
        ),
        (
            json!({"email": "x@y.io", "password": "password-123", "name": ""}),
            "invalid_name",
        ),
        (
            json!({"email": "x@y.io", "password": "password-123"}),
            "invalid_json",
        ),
    ] {
        let (status, v) = app.post_json("/api/v1/users/register", &body).await;
        assert!((400..500).contains(&status), "{body}");
        assert_eq!(v["code"], code, "{body}");
    }
}

#[tokio::test]
async fn me_needs_an_identity_and_can_be_changed() {
    let app = spawn_app().await;
    let (id, token) = app.signed_in("cy@example.com").await;

    let anon = app
        .client
        .get(app.url("/api/v1/users/me"))
        .send()
        .await
        .expect("request");
    assert_eq!(anon.status(), 401);
    let me: Value = app
        .as_user(Method::GET, "/api/v1/users/me", &id, &token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(me["email"], "cy@example.com");

    let patched = app
        .as_user(Method::PATCH, "/api/v1/users/me", &id, &token)
        .json(&json!({"name": "Cy", "email": "cy2@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(patched.status(), 200);
    let v: Value = patched.json().await.expect("json");
    assert_eq!(
        (v["name"].as_str(), v["email"].as_str()),
        (Some("Cy"), Some("cy2@example.com"))
    );

    let wrong = app
        .as_user(Method::PATCH, "/api/v1/users/me", &id, &token)
        .json(&json!({"password": "new-password-1", "current_password": "nope"}))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 403);
    let right = app
        .as_user(Method::PATCH, "/api/v1/users/me", &id, &token)
        .json(&json!({"password": "new-password-1", "current_password": "password-123"}))
        .send()
        .await
        .expect("request");
    assert_eq!(right.status(), 200);
    assert_eq!(app.login("cy2@example.com", "new-password-1").await.0, 200);
    assert_eq!(app.login("cy2@example.com", "password-123").await.0, 401);
}

#[tokio::test]
async fn logout_revokes_the_token_until_it_expires() {
    let app = spawn_app_with_ttl(Duration::from_secs(120)).await;
    let (id, token) = app.signed_in("di@example.com").await;
    let jti = keys().validate(&token).expect("valid").jti;
    let revoked = || async {
        let v: Value = app
            .client
            .get(app.url(&format!("/internal/tokens/{jti}/revoked")))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        v["revoked"].clone()
    };
    assert_eq!(revoked().await, json!(false));

    let out = app
        .as_user(Method::POST, "/api/v1/users/logout", &id, &token)
        .send()
        .await
        .expect("request");
    assert_eq!(out.status(), 200);

    assert_eq!(revoked().await, json!(true));
    let me = app
        .as_user(Method::GET, "/api/v1/users/me", &id, &token)
        .send()
        .await
        .expect("request");
    assert_eq!(me.status(), 401);
    let v: Value = me.json().await.expect("json");
    assert_eq!(v["code"], "token_revoked");
    // The revocation lives as long as the token could: 120 s + leeway, not forever.
    let infra = crate::helpers::infra().await;
    let client = redis::Client::open(infra.redis_url().expect("redis")).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*revoked:{jti}"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!((100..=126).contains(&ttl), "ttl {ttl}");
    // A new login is unaffected.
    let (_, fresh) = app.login("di@example.com", "password-123").await;
    let fresh = fresh["token"].as_str().expect("token");
    let me = app
        .as_user(Method::GET, "/api/v1/users/me", &id, fresh)
        .send()
        .await
        .expect("request");
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn logout_without_a_valid_token_or_with_someone_elses_is_refused() {
    let app = spawn_app().await;
    let (id, token) = app.signed_in("ed@example.com").await;
    let none = app
        .client
        .post(app.url("/api/v1/users/logout"))
        .header("x-user-id", &id)
        .send()
        .await
        .expect("request");
    assert_eq!(none.status(), 401);
    let forged = app
        .as_user(Method::POST, "/api/v1/users/logout", &id, "a.b.c")
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 401);
    let other = app
        .as_user(
            Method::POST,
            "/api/v1/users/logout",
            "00000000-0000-4000-8000-00000000abcd",
            &token,
        )
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 403);
}

#[tokio::test]
async fn seeding_the_fixture_twice_creates_each_user_once_and_they_can_log_in() {
    let app = spawn_app().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/seed/users.json"
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let n = file["users"].as_array().map(Vec::len).expect("users");
    let seed = || {
        app.client
            .post(app.url("/admin/seed"))
            .header("x-admin-token", ADMIN_TOKEN)
            .json(&file)
            .send()
    };
    let first: Value = seed().await.expect("request").json().await.expect("json");
    assert_eq!(first, json!({"created": n, "existing": 0}));
    let second: Value = seed().await.expect("request").json().await.expect("json");
    assert_eq!(second, json!({"created": 0, "existing": n}));
    let (status, v) = app.login("test@msctl.local", "test-password").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["user_id"], "00000000-0000-4000-8000-000000000002");
    let role: String =
        sqlx::query_scalar("SELECT role FROM users WHERE email = 'admin@msctl.local'")
            .fetch_one(&app.pool)
            .await
            .expect("admin");
    assert_eq!(role, "admin");
}

#[tokio::test]
async fn health_ready_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    for path in ["/health", "/ready", "/openapi.json", "/metrics"] {
        let r = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{path}");
    }
    app.login("x@example.com", "whatever-123").await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("user_logins_total{result=\"failed\"} 1"),
        "{text}"
    );
}
