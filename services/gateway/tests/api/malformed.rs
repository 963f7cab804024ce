//! No request — malformed JSON, huge headers, bad paths, odd methods — gets a 5xx from the
//! gateway's own code or kills it. Requests are written on raw TCP so that byte sequences
//! no HTTP client would produce reach the server.

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

struct World {
    rt: tokio::runtime::Runtime,
    gateway: std::net::SocketAddr,
    _servers: Vec<Running>,
    _upstreams: Vec<Upstream>,
}

/// One registry, one always-200 upstream per route, one gateway — shared by all cases.
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (gateway, servers, upstreams) = rt.block_on(async {
            let reg = spawn_registry(0).await;
            let mut ups = Vec::new();
            for (_, service) in gateway::routes::ROUTES {
                ups.push(spawn_upstream(service, &reg.url(), "a").await);
            }
            for (_, service) in gateway::routes::ROUTES {
                wait_registered(&reg.url(), service, 1).await;
            }
            let mut cfg = gateway_config();
            cfg.max_body_bytes = 64 * 1024;
            let gw = spawn_gateway(&reg.url(), cfg).await;
            (gw.addr, vec![reg, gw], ups)
        });
        World {
            rt,
            gateway,
            _servers: servers,
            _upstreams: upstreams,
        }
    })
}

/// Send raw bytes, return the status code of the answer (None if the server closed the
/// connection without answering, which hyper does for some unparseable input).
async fn raw(addr: std::net::SocketAddr, request: Vec<u8>) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything (e.g. 431); ignore write
    // errors. No half-close: hyper treats a read EOF as the client going away and may drop
    // the answer. `Connection: close` makes the server close after answering; a request
    // whose own headers promise more body than is sent just times out (no answer).
    let _ = tokio::time::timeout(Duration::from_secs(3), s.write_all(&request)).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("DELETE".to_owned()),
        Just("PATCH".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("HEAD".to_owned()),
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        "[A-Z]{1,12}",
        "[ -~]{0,8}",
    ]
}

/// Mostly well-formed routed paths (to get deep into the proxy), some hostile ones.
fn path() -> impl Strategy<Value = String> {
    let clean = (
        prop_oneof![
            Just("users"),
            Just("products"),
            Just("orders"),
            Just("payments"),
            Just("notifications"),
            Just("widgets"),
        ],
        proptest::collection::vec("[a-zA-Z0-9_~.-]{1,12}", 0..4),
        proptest::option::of("[a-zA-Z0-9=&%+_.-]{0,30}"),
    )
        .prop_map(|(route, segs, query)| {
            let mut p = format!("/api/v1/{route}");
            for seg in segs {
                p.push('/');
                p.push_str(&seg);
            }
            if let Some(q) = query {
                p.push('?');
                p.push_str(&q);
            }
            p
        });
    let segment = prop_oneof![
        Just("api".to_owned()),
        Just("v1".to_owned()),
        Just("products".to_owned()),
        Just("orders".to_owned()),
        Just("users".to_owned()),
        Just("login".to_owned()),
        Just("internal".to_owned()),
        Just("admin".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("%".to_owned()),
        Just("%zz".to_owned()),
        Just(String::new()),
        "[a-zA-Z0-9_~!$&'()*+,;=:@-]{1,10}",
        "[ -~]{0,12}",
        "\\PC{0,6}",
    ];
    let hostile = (
        prop_oneof![
            Just("/api/v1/".to_owned()),
            Just("/".to_owned()),
            Just(String::new()),
            Just("http://x/".to_owned()),
        ],
        proptest::collection::vec(segment, 0..6),
        proptest::option::of("[ -~]{0,20}"),
    )
        .prop_map(|(prefix, segs, query)| {
            let mut p = format!("{prefix}{}", segs.join("/"));
            if let Some(q) = query {
                p.push('?');
                p.push_str(&q);
            }
            p
        });
    prop_oneof![3 => clean, 2 => hostile]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("Authorization".to_owned()),
        Just("Authorization".to_owned()),
        Just("Accept".to_owned()),
        Just("Content-Type".to_owned()),
        Just("X-User-Id".to_owned()),
        Just("X-Request-Id".to_owned()),
        Just("traceparent".to_owned()),
        Just("X-Forwarded-For".to_owned()),
        Just("Transfer-Encoding".to_owned()),
        Just("Content-Length".to_owned()),
        Just("Connection".to_owned()),
        Just("Expect".to_owned()),
        "[A-Za-z-]{1,20}",
        "[A-Za-z-]{1,20}",
        "[ -~]{0,10}",
    ];
    let value = prop_oneof![
        Just(format!("Bearer {}", token("prop-user"))),
        Just(format!("Bearer {}", token("prop-user"))),
        Just("Bearer ".to_owned()),
        Just("Bearer a.b.c".to_owned()),
        Just("application/json".to_owned()),
        Just("chunked".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("00-zz-zz-zz".to_owned()),
        "[ -~]{0,40}",
        "\\PC{0,10}",
        (1usize..80).prop_map(|kb| "a".repeat(kb * 1024)),
    ];
    proptest::collection::vec((name, value), 0..5)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"{\"a\":".to_vec()),
        Just(b"{\"email\":\"a@b.c\",\"password\":\"x\"}".to_vec()),
        Just(vec![0xff, 0xfe, 0x00]),
        proptest::collection::vec(any::<u8>(), 0..256),
        (60usize..80).prop_map(|kb| vec![b'x'; kb * 1024]),
    ]
}

/// A plausible request: valid method, routed path, sane headers (maybe a valid token),
/// an arbitrary body — malformed JSON and bytes included — with a correct length.
fn plausible() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("DELETE"),
        Just("PATCH"),
        Just("HEAD"),
        Just("OPTIONS")
    ];
    let clean_path = (
        prop_oneof![
            Just("users"),
            Just("products"),
            Just("orders"),
            Just("payments"),
            Just("notifications")
        ],
        proptest::collection::vec("[a-zA-Z0-9_~-]{1,12}", 0..4),
        proptest::option::of("[a-zA-Z0-9=&+_.-]{0,30}"),
    )
        .prop_map(|(route, segs, query)| {
            let mut p = format!("/api/v1/{route}");
            for seg in segs {
                p.push('/');
                p.push_str(&seg);
            }
            if let Some(q) = query {
                p.push('?');
                p.push_str(&q);
            }
            p
        });
    let header = prop_oneof![
        Just(("Content-Type".to_owned(), "application/json".to_owned())),
        Just(("X-User-Id".to_owned(), "admin".to_owned())),
        Just(("X-Admin-Token".to_owned(), ADMIN.to_owned())),
        ("[A-Za-z][A-Za-z-]{0,20}", "[!-~][ -~]{0,40}"),
        (
            "X-[A-Za-z-]{1,20}",
            (1usize..40).prop_map(|kb| "v".repeat(kb * 1024))
        ),
    ];
    (
        method,
        clean_path,
        proptest::option::weighted(0.7, Just(format!("Bearer {}", token("prop-user")))),
        proptest::collection::vec(header, 0..4),
        body(),
    )
        .prop_map(|(method, path, auth, headers, body)| {
            let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
            if let Some(a) = auth {
                req.extend_from_slice(format!("Authorization: {a}\r\n").as_bytes());
            }
            for (k, v) in headers {
                req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            req.extend_from_slice(
                format!(
                    "Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            req.extend_from_slice(&body);
            req
        })
}

/// A hostile request: odd methods, traversal tricks, conflicting framing headers, huge or
/// non-ASCII values, bodies with or without a declared length.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    (method(), path(), headers(), body(), any::<bool>()).prop_map(
        |(method, path, headers, body, declare_length)| {
            let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
            for (k, v) in &headers {
                req.extend_from_slice(k.as_bytes());
                req.extend_from_slice(b": ");
                req.extend_from_slice(v.as_bytes());
                req.extend_from_slice(b"\r\n");
            }
            if declare_length {
                req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            req.extend_from_slice(b"Connection: close\r\n\r\n");
            req.extend_from_slice(&body);
            req
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn gateway_never_answers_5xx_to_malformed_requests(req in prop_oneof![plausible(), hostile()]) {
        let w = world();
        let head = String::from_utf8_lossy(&req[..req.len().min(200)]).into_owned();
        let status = w.rt.block_on(raw(w.gateway, req));
        if std::env::var_os("MALFORMED_DEBUG").is_some() {
            eprintln!("STATUS {status:?}");
        }
        if let Some(s) = status {
            prop_assert!(s < 500, "{head:?} -> {s}");
        }
        // The gateway is still alive and well.
        let health = w.rt.block_on(raw(w.gateway, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()));
        prop_assert_eq!(health, Some(200));
    }
}
