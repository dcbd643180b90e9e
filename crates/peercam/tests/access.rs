//! The access token against real HTTP and WebSocket clients on loopback: the page, the API
//! and the WebSocket refused without the token or with a wrong one, accepted with it in the
//! query (the nextRTC client's `ws://.../signaling?token=`), the `Authorization` header and
//! the cookie the page sets; an attacker trying tokens rate-limited while viewers keep
//! watching; `peercam token --rotate` ending the old sessions and refusing old cookies; the
//! token absent from the service's log apart from the owner's start-up link; and
//! `auth.mode = "none"` keeping the camera open.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;

use peercam::access::Access;
use peercam::config::{AuthMode, Config};
use peercam::service::Device;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use support::device::{config, token_in_log, with_token, Serve, Server, BIN, START_LIMIT};
use support::http::{self, request_over, Response};
use support::scratch::Scratch;
use support::ws::{Client, Msg};
use support::WAIT;

/// A token that is not the device's, of the right shape.
const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The second client address on loopback (Linux routes all of 127/8 to `lo`).
const OTHER_CLIENT: &str = "127.0.0.2";

/// `GET path` with `headers` from the device's own address family's loopback.
async fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    http::request(server.addr, path, headers).await
}

/// `GET path` with `headers` from `from`, a second loopback address.
async fn get_from(
    addr: SocketAddr,
    from: IpAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    request_over(stream, &addr.to_string(), path, headers).await
}

/// A WebSocket to `url` with extra `headers`; the handshake must succeed.
async fn ws(url: &str, headers: &[(&str, &str)], label: &str) -> Client {
    ws_from(url, headers, None, label).await
}

async fn ws_from(url: &str, headers: &[(&str, &str)], from: Option<IpAddr>, label: &str) -> Client {
    let mut request = url.into_client_request().expect("a ws:// URL");
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName =
            name.parse().expect("a header name");
        request
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    Client::connect_from(request, None, from, label)
        .await
        .unwrap_or_else(|e| panic!("{label}: WebSocket handshake failed: {e}"))
}

/// Expects `error code` and then close 1008 on `client`.
async fn expect_refused(client: &mut Client, code: &str) -> Msg {
    let error = client.expect_error(code).await;
    assert_eq!(
        client.expect_closed().await,
        Some(1008),
        "{}",
        client.label()
    );
    error
}

/// The session cookie a `/?token=` page load set: `name=value`.
fn session_cookie(r: &Response) -> String {
    let set = r.headers("set-cookie");
    assert_eq!(set.len(), 1, "one Set-Cookie: {set:?}\n{}", r.head);
    set[0].split(';').next().unwrap().trim().to_owned()
}

/// A member of a fresh conversation `conv`, proving the socket works.
async fn create(client: &mut Client, conv: &str) {
    client.send("create", "", conv, &[]).await;
    let m = client.recv_signal("created").await;
    assert_eq!(m.content, conv);
}

#[tokio::test]
async fn the_page_the_api_and_the_websocket_are_refused_without_the_token() {
    let server = Server::start(&config(|_| {})).await;
    let token = server.token().expect("private by default");
    assert!(token.len() >= 32);

    for path in ["/", "/api/info", "/api/stats", "/app.js", "/signaling"] {
        let bare = get(&server, path, &[]).await;
        assert_eq!(bare.status, 401, "{path}: {bare:?}");
        let wrong = get(&server, &format!("{path}?token={WRONG}"), &[]).await;
        assert_eq!(wrong.status, 401, "{path}: {wrong:?}");
        assert!(!wrong.body.contains(&token) && !bare.body.contains(&token));
    }
    // The page explains in words how to get the link.
    let page = get(&server, "/", &[]).await;
    assert!(
        page.headers("content-type")[0].starts_with("text/html"),
        "{page:?}"
    );
    for words in ["needs its access link", "peercam token", "journal"] {
        assert!(
            page.body.contains(words),
            "{words:?} missing: {}",
            page.body
        );
    }
    let api = get(
        &server,
        "/api/info",
        &[("Authorization", &format!("Bearer {WRONG}"))],
    )
    .await;
    assert_eq!(api.status, 401);
    assert!(api.body.contains("peercam token"), "{}", api.body);
    let cookie = get(&server, "/", &[("Cookie", "peercam_session=forged")]).await;
    assert_eq!(cookie.status, 401);

    // A WebSocket: `error UNAUTHORIZED`, then close 1008, and no member made.
    let mut bare = ws(&server.ws_url_bare(), &[], "bare").await;
    let error = expect_refused(&mut bare, "UNAUTHORIZED").await;
    assert!(
        error.custom["message"].contains("peercam token"),
        "{error:?}"
    );
    let wrong_url = format!("{}?token={WRONG}", server.ws_url_bare());
    let mut wrong = ws(&wrong_url, &[], "wrong").await;
    expect_refused(&mut wrong, "UNAUTHORIZED").await;
    server.expect_counts(0, 0, 0).await;
}

#[tokio::test]
async fn the_token_is_taken_from_the_query_the_header_and_the_cookie() {
    let server = Server::start(&config(|_| {})).await;
    let token = server.token().unwrap();

    // The link: the page, and the cookie that lets the plain address work afterwards.
    let page = get(&server, &format!("/?token={token}"), &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        !page.body.contains(&token),
        "the page must not carry the token"
    );
    let set = &page.headers("set-cookie")[0];
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert!(!set.contains(&token), "the cookie is not the token: {set}");
    let cookie = session_cookie(&page);

    let bearer = format!("Bearer {token}");
    for (what, path, headers) in [
        ("query", format!("/api/info?token={token}"), vec![]),
        (
            "header",
            "/api/info".to_owned(),
            vec![("Authorization", bearer.as_str())],
        ),
        (
            "cookie",
            "/api/info".to_owned(),
            vec![("Cookie", cookie.as_str())],
        ),
        (
            "cookie among others",
            "/".to_owned(),
            vec![("Cookie", "a=1; peercam_session=x")],
        ),
    ] {
        let r = get(&server, &path, &headers).await;
        if what == "cookie among others" {
            assert_eq!(r.status, 401, "a wrong session cookie: {r:?}");
            continue;
        }
        assert_eq!(r.status, 200, "{what}: {r:?}");
        let info: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(info["signaling"], "/signaling");
        assert!(
            !r.body.contains(&token),
            "/api/info must not show the token"
        );
    }
    // The plain address with the cookie: the page, and no new cookie.
    let again = get(
        &server,
        "/",
        &[("Cookie", &format!("theme=dark; {cookie}"))],
    )
    .await;
    assert_eq!(again.status, 200);
    assert!(again.headers("set-cookie").is_empty(), "{again:?}");

    // WebSockets: the nextrtc-js-client URL, the header, the cookie.
    let nextrtc_url = format!("ws://{}/signaling?token={token}", server.addr);
    let mut a = ws(&nextrtc_url, &[], "query").await;
    create(&mut a, "room").await;
    let mut b = ws(
        &server.ws_url_bare(),
        &[("Authorization", &bearer)],
        "header",
    )
    .await;
    b.send("join", "", "room", &[]).await;
    assert_eq!(b.recv_signal("joined").await.content, "room");
    let mut c = ws(&server.ws_url_bare(), &[("Cookie", &cookie)], "cookie").await;
    c.send("join", "", "room", &[]).await;
    assert_eq!(c.recv_signal("joined").await.content, "room");
    server.expect_counts(3, 1, 3).await;
}

#[tokio::test]
async fn over_https_the_cookie_is_secure() {
    let dir = Scratch::new("access-https");
    let mut device = Device::new(&Config::default());
    let identity = peercam::tls::Identity::load(&peercam::tls::Settings {
        files: None,
        state_dir: Some(dir.path().to_owned()),
        name: "peercam".into(),
    })
    .expect("an identity");
    device.enable_tls(&identity);
    let server = Server::serve(device).await;
    let token = server.token().unwrap();
    let connector = support::tls::trusting(&dir.join("cert.pem"));
    let tls = support::tls::connect(&connector, server.addr, "localhost")
        .await
        .unwrap();
    let page = request_over(tls, "localhost", &format!("/?token={token}"), &[]).await;
    assert_eq!(page.status, 200);
    let set = &page.headers("set-cookie")[0];
    assert!(set.contains("; Secure"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
}

#[tokio::test]
async fn an_attacker_is_rate_limited_while_viewers_keep_watching() {
    let server = Server::start(&config(|_| {})).await;
    let token = server.token().unwrap();
    // A viewer connected before the attack, in a conversation.
    let mut viewer = ws(&server.ws_url(), &[], "viewer").await;
    create(&mut viewer, "watch").await;

    // From 127.0.0.1: wrong tokens until refused with 429.
    let mut tries = 0;
    let limited = loop {
        let r = get(&server, &format!("/api/info?token=guess{tries:059}"), &[]).await;
        tries += 1;
        if r.status == 429 {
            break r;
        }
        assert_eq!(r.status, 401, "try {tries}: {r:?}");
        assert!(tries < 50, "never rate-limited");
    };
    assert!(tries > 3, "limited after only {tries} tries");
    let retry: u64 = limited.headers("retry-after")[0].parse().expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(
        limited.body.contains("too many wrong access tokens"),
        "{}",
        limited.body
    );
    // Refused before its token is looked at: the right one does not get through either.
    let right = get(&server, &format!("/api/info?token={token}"), &[]).await;
    assert_eq!(right.status, 429);
    // The same on a WebSocket, with a clear error.
    let mut attacker = ws(&server.ws_url(), &[], "attacker").await;
    let error = expect_refused(&mut attacker, "RATE_LIMITED").await;
    assert!(error.custom["message"].contains("try again"), "{error:?}");

    // The viewer admitted earlier still works, and a person on another address opens the
    // page and joins the viewer's conversation.
    let other: IpAddr = OTHER_CLIENT.parse().unwrap();
    let page = get_from(server.addr, other, &format!("/?token={token}"), &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    let mut friend = ws_from(&server.ws_url(), &[], Some(other), "friend").await;
    friend.send("join", "", "watch", &[]).await;
    assert_eq!(friend.recv_signal("joined").await.content, "watch");
    let arrived = viewer.recv_signal("newJoined").await;
    assert_eq!(arrived.content, friend.learn_id().await);
    viewer.send("text", "", "hello", &[]).await;
    assert_eq!(friend.recv_signal("text").await.content, "hello");
}

/// `peercam token ARGS --state-dir DIR`: its stdout (the link) and stderr.
fn token_command(dir: &std::path::Path, args: &[&str]) -> (String, String) {
    let out = Command::new(BIN)
        .arg("token")
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .arg("--no-tls")
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("peercam token runs");
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn rotation_ends_the_old_sessions_and_refuses_old_cookies() {
    let dir = Scratch::new("access-rotate");
    let config = Config::default();
    let access = Access::load(&config, Some(dir.path())).expect("a token in the state dir");
    let server = Server::serve(Device::with_access(&config, access)).await;
    let old = server.token().unwrap();
    // `peercam token` prints the link with the token the device uses.
    let (link, _) = token_command(dir.path(), &[]);
    assert_eq!(link, format!("http://peercam.local:8080/?token={old}"));

    let page = get(&server, &format!("/?token={old}"), &[]).await;
    let old_cookie = session_cookie(&page);
    let mut by_query = ws(&server.ws_url(), &[], "by query").await;
    create(&mut by_query, "before").await;
    let mut by_cookie = ws(
        &server.ws_url_bare(),
        &[("Cookie", &old_cookie)],
        "by cookie",
    )
    .await;
    by_cookie.send("join", "", "before", &[]).await;
    by_cookie.recv_signal("joined").await;
    by_query.recv_signal("newJoined").await;

    let (link, note) = token_command(dir.path(), &["--rotate"]);
    let new = link.rsplit("?token=").next().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(note.contains("no longer work"), "{note}");

    // Both sessions end on their own, without any request to the device, and say why.
    for client in [&mut by_query, &mut by_cookie] {
        let (messages, code) = client.until_closed(WAIT).await;
        assert_eq!(code, Some(1008), "{}: {messages:?}", client.label());
        let error = messages.last().expect("an error before the close");
        assert_eq!(
            (error.signal.as_str(), error.content.as_str()),
            ("error", "UNAUTHORIZED")
        );
        assert!(error.custom["message"].contains("new link"), "{error:?}");
    }
    server.expect_counts(0, 0, 0).await;

    // The old token and the old cookie are refused everywhere; the new ones work.
    assert_eq!(
        get(&server, "/", &[("Cookie", &old_cookie)]).await.status,
        401
    );
    assert_eq!(
        get(&server, &format!("/api/info?token={old}"), &[])
            .await
            .status,
        401
    );
    let mut stale = ws(&with_token(&server.ws_url_bare(), Some(&old)), &[], "stale").await;
    expect_refused(&mut stale, "UNAUTHORIZED").await;
    let mut stale = ws(
        &server.ws_url_bare(),
        &[("Cookie", &old_cookie)],
        "stale cookie",
    )
    .await;
    expect_refused(&mut stale, "UNAUTHORIZED").await;
    let fresh_page = get(&server, &format!("/?token={new}"), &[]).await;
    assert_eq!(fresh_page.status, 200);
    assert_ne!(session_cookie(&fresh_page), old_cookie);
    let mut fresh = ws(&with_token(&server.ws_url_bare(), Some(&new)), &[], "fresh").await;
    create(&mut fresh, "after").await;
    assert_eq!(server.token(), Some(new), "the device uses the new token");
}

#[tokio::test]
async fn auth_mode_none_keeps_the_camera_open() {
    let server = Server::start(&config(|c| c.auth.mode = AuthMode::None)).await;
    assert_eq!(server.token(), None);
    let page = get(&server, "/", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.headers("set-cookie").is_empty());
    assert_eq!(get(&server, "/api/stats", &[]).await.status, 200);
    let mut client = ws(&server.ws_url_bare(), &[], "open").await;
    create(&mut client, "open").await;
}

/// The whole log of a device run through right and wrong tokens, at debug level: the token
/// appears in exactly one line, the start-up link; wrong tokens appear nowhere.
#[test]
fn the_token_is_logged_only_in_the_start_up_link() {
    let dir = Scratch::new("access-log");
    let config = dir.join("peercam.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = {:?}\n",
            dir.join("state").to_str().unwrap()
        ),
    )
    .unwrap();
    let port = support::device::free_port();
    let mut command = support::device::serve_command(
        port,
        &[
            "--config",
            config.to_str().unwrap(),
            "--no-camera",
            "--no-tls",
        ],
    );
    command.env("RUST_LOG", "debug");
    let mut svc = Serve::spawn(command, port);
    svc.line(" ready: ", START_LIMIT);
    let token = svc.token().expect("the start-up link");
    let addr = svc.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bearer = format!("Bearer {token}");
        let wrong_bearer = format!("Bearer {WRONG}");
        for (path, headers) in [
            (format!("/?token={token}"), vec![]),
            (format!("/?room=a&token={WRONG}&stats=1"), vec![]),
            (
                "/api/info".to_owned(),
                vec![("Authorization", bearer.as_str())],
            ),
            (
                "/api/info".to_owned(),
                vec![("Authorization", wrong_bearer.as_str())],
            ),
            ("/api/stats".to_owned(), vec![]),
            (format!("/nowhere?token={token}"), vec![]),
        ] {
            http::request(addr, &path, &headers).await;
        }
        let url = format!("ws://{addr}/signaling");
        let mut good = ws(&with_token(&url, Some(&token)), &[], "good").await;
        create(&mut good, "logged").await;
        let mut bad = ws(&with_token(&url, Some(WRONG)), &[], "bad").await;
        expect_refused(&mut bad, "UNAUTHORIZED").await;
        good.close().await;
    });
    // Stopped, so the log is complete, shutdown included.
    svc.signal(libc::SIGTERM);
    let status = svc.exit_within(START_LIMIT);
    assert!(status.success(), "{status}");
    let logs = svc.logs();
    let with_token: Vec<&str> = logs.lines().filter(|l| l.contains(&token)).collect();
    assert_eq!(
        with_token.len(),
        1,
        "the token in more than one line:\n{logs}"
    );
    assert!(
        with_token[0].contains(&format!(
            "open http://127.0.0.1:{port}/?token={token} to watch"
        )),
        "{}",
        with_token[0]
    );
    assert_eq!(token_in_log(&logs).as_deref(), Some(token.as_str()));
    assert!(!logs.contains(WRONG), "a wrong token was logged:\n{logs}");
    // The refusals were logged, with the token taken out.
    assert!(logs.contains("token=[redacted]"), "{logs}");
    assert!(logs.contains("wrong access token"), "{logs}");
}

/// A device started with `auth.mode = "none"` warns at start and serves anyone.
#[test]
fn an_open_camera_says_so_at_start() {
    let dir = Scratch::new("access-open");
    let config = dir.join("peercam.toml");
    std::fs::write(&config, "[auth]\nmode = \"none\"\n").unwrap();
    let svc = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--no-camera",
        "--no-tls",
    ]);
    assert!(
        svc.logs().contains("anyone who can reach port"),
        "{}",
        svc.logs()
    );
    assert_eq!(svc.token(), None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, _) = rt.block_on(http::get(svc.addr(), "/api/info"));
    assert_eq!(status, 200);
    let mut client = rt.block_on(ws(&svc.ws_url(), &[], "open"));
    rt.block_on(create(&mut client, "open"));
    drop(client);
    svc.stop();
}

/// A configured token that is too short stops the start with a clear configuration error.
#[test]
fn a_short_configured_token_is_a_configuration_error() {
    let dir = Scratch::new("access-short");
    let config = dir.join("peercam.toml");
    std::fs::write(&config, "[auth]\ntoken = \"hunter2\"\n").unwrap();
    let port = support::device::free_port();
    let mut svc = Serve::spawn(
        support::device::serve_command(port, &["--config", config.to_str().unwrap()]),
        port,
    );
    let status = svc.exit_within(START_LIMIT);
    assert!(!status.success());
    let logs = svc.logs();
    assert!(
        logs.contains("auth.token") && logs.contains("at least 32"),
        "{logs}"
    );
    // The message must not echo the bad token either.
    assert!(!logs.contains("hunter2"), "{logs}");
}
