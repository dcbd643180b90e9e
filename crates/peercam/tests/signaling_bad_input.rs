//! Bad input over real sockets: every kind of refusal PROTOCOL.md names, each answered with
//! its exact error code, and each while a second pair of members runs a whole call on the
//! same server, which must go on undisturbed. Limits are set small in each test's config so
//! the cases are cheap to reach.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use support::device::{config, Server};
use support::ws::Client;
use support::WAIT;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, HOST, ORIGIN};
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a message the server wrongly sent to arrive on loopback.
const QUIET: Duration = Duration::from_millis(200);

/// Pause between the bystanders' rounds; keeps their message count well inside any rate
/// limit a test sets.
const ROUND: Duration = Duration::from_millis(100);

/// Two members in a call of their own: they negotiate (offer, held candidates, answer,
/// finalize) and then trade texts and candidates in rounds until told to stop. Every message
/// either receives is checked, so anything the bad input leaks into their conversation
/// (an error, a `left`, a stray `newJoined`) fails the test.
struct Bystanders {
    stop: oneshot::Sender<()>,
    call: JoinHandle<u32>,
    /// Id of one of them, a member of another conversation for the test's own clients.
    member: String,
}

impl Bystanders {
    /// Connects both and sets the call up; returns once both are in the conversation (so
    /// both hold a connection slot), leaving the rest of the call to run alongside the test.
    async fn start(server: &Server, conversation: &str) -> Bystanders {
        let mut a = server.connect("bystander a").await;
        let mut b = server.connect("bystander b").await;
        a.send("create", "", conversation, &[("type", "MESH")])
            .await;
        a.recv_signal("created").await;
        b.send("join", "", conversation, &[]).await;
        b.recv_signal("joined").await;
        let ib = a.recv_signal("newJoined").await.from;
        a.recv_from("offerRequest", &ib).await;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let member = ib.clone();
        let call = tokio::spawn(async move {
            a.send("offerResponse", &ib, "v=0 bystander offer", &[])
                .await;
            a.send("candidate", &ib, "{\"candidate\":\"a early\"}", &[])
                .await;
            let m = b.recv_signal("answerRequest").await;
            let ia = m.from;
            assert_eq!(m.content, "v=0 bystander offer");
            b.send("candidate", &ia, "{\"candidate\":\"b early\"}", &[])
                .await;
            b.send("answerResponse", &ia, "v=0 bystander answer", &[])
                .await;
            assert_eq!(
                a.recv_from("finalize", &ib).await.content,
                "v=0 bystander answer"
            );
            assert_eq!(
                a.recv_from("candidate", &ib).await.content,
                "{\"candidate\":\"b early\"}"
            );
            assert_eq!(
                b.recv_from("candidate", &ia).await.content,
                "{\"candidate\":\"a early\"}"
            );

            let mut rounds = 0;
            loop {
                // One more full round after the stop, so the call is shown to work after
                // whatever the test did, not just before it.
                let last = !matches!(stopped.try_recv(), Err(oneshot::error::TryRecvError::Empty));
                let text = format!("round {rounds}");
                a.send("text", &ib, &text, &[]).await;
                assert_eq!(b.recv_from("text", &ia).await.content, text);
                let cand = format!("{{\"candidate\":\"b late {rounds}\"}}");
                b.send("candidate", &ia, &cand, &[]).await;
                assert_eq!(a.recv_from("candidate", &ib).await.content, cand);
                b.send("text", "", &text, &[]).await;
                assert_eq!(a.recv_from("text", &ib).await.content, text);
                tokio::join!(a.expect_silence(ROUND), b.expect_silence(ROUND));
                rounds += 1;
                if last {
                    break;
                }
            }
            a.send("left", "", "", &[]).await;
            b.recv_from("left", &ia).await;
            tokio::join!(a.close(), b.close());
            rounds
        });
        Bystanders { stop, call, member }
    }

    /// Stops the rounds and fails the test if the call failed at any point.
    async fn finish(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(WAIT * 2, self.call).await {
            Ok(Ok(rounds)) => assert!(rounds >= 1),
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("the bystanders' call was cancelled: {e}"),
            Err(_) => panic!("the bystanders' call did not finish within {:?}", WAIT * 2),
        }
    }
}

/// Proves `client` is still served: it can create a conversation and leave it again.
async fn still_served(client: &mut Client, conversation: &str) {
    client.send("create", "", conversation, &[]).await;
    let m = client.recv_signal("created").await;
    assert_eq!(m.content, conversation);
    client.send("left", "", "", &[]).await;
    client.expect_silence(Duration::ZERO).await;
}

/// `x` creates `conversation` and `y` joins; returns their ids with `x` owing `y` an offer.
async fn pair_in(server: &Server, conversation: &str) -> (Client, Client, String, String) {
    let mut x = server.connect("x").await;
    let mut y = server.connect("y").await;
    let ix = x.learn_id().await;
    x.send("create", "", conversation, &[]).await;
    x.recv_signal("created").await;
    y.send("join", "", conversation, &[]).await;
    y.recv_signal("joined").await;
    let iy = x.recv_signal("newJoined").await.from;
    x.recv_from("offerRequest", &iy).await;
    (x, y, ix, iy)
}

fn json(v: serde_json::Value) -> Message {
    Message::text(v.to_string())
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_connection_stays_open() {
    use serde_json::json as j;
    let server = Server::start(&config(|_| {})).await;
    let cases: Vec<(&str, Message, &str)> = vec![
        (
            "non-JSON text",
            Message::text("hello, camera"),
            "BAD_MESSAGE",
        ),
        (
            "truncated JSON",
            Message::text(r#"{"signal": "join""#),
            "BAD_MESSAGE",
        ),
        (
            "a JSON array",
            Message::text(r#"["join", "room"]"#),
            "BAD_MESSAGE",
        ),
        ("a JSON string", Message::text(r#""join""#), "BAD_MESSAGE"),
        (
            "custom not a map",
            json(j!({"signal": "create", "custom": "MESH"})),
            "BAD_MESSAGE",
        ),
        (
            "content an object",
            json(j!({"signal": "join", "content": {"id": 1}})),
            "BAD_MESSAGE",
        ),
        (
            "a binary frame",
            Message::binary(&br#"{"signal":"ping"}"#[..]),
            "BAD_MESSAGE",
        ),
        (
            "join without a conversation",
            json(j!({"signal": "join"})),
            "BAD_MESSAGE",
        ),
        (
            "candidate without a recipient",
            json(j!({"signal": "candidate", "content": "{}"})),
            "BAD_MESSAGE",
        ),
        (
            "create of an unknown type",
            json(j!({"signal": "create", "custom": {"type": "STAR"}})),
            "BAD_MESSAGE",
        ),
        (
            "an unknown signal",
            json(j!({"signal": "teleport", "content": "x"})),
            "UNKNOWN_SIGNAL",
        ),
        (
            "no signal at all",
            json(j!({"content": "x"})),
            "UNKNOWN_SIGNAL",
        ),
        (
            "a server-only signal",
            json(j!({"signal": "finalize", "to": "someone"})),
            "UNKNOWN_SIGNAL",
        ),
    ];
    for (n, (what, frame, code)) in cases.into_iter().enumerate() {
        let call = Bystanders::start(&server, &format!("call {n}")).await;
        let mut client = server.connect(what).await;
        client.try_send(frame).await.expect("the frame is sent");
        client.expect_error(code).await;
        still_served(&mut client, &format!("after {n}")).await;
        call.finish().await;
        client.close().await;
    }
    let s = server.expect_counts(0, 0, 0).await;
    assert_eq!(s.connections, 0);
}

#[tokio::test]
async fn a_message_that_does_not_fit_the_pair_state_changes_nothing() {
    const HELD: usize = 4;
    let server = Server::start(&config(|c| c.limits.max_held_candidates = HELD)).await;
    let call = Bystanders::start(&server, "call").await;
    let (mut x, mut y, ix, iy) = pair_in(&server, "room").await;

    // y is the answerer: it may not offer, and x has nothing to answer yet.
    y.send("offerResponse", &ix, "v=0 wrong side", &[]).await;
    y.expect_error("INVALID_STATE").await;
    x.send("answerResponse", &iy, "v=0 too early", &[]).await;
    x.expect_error("INVALID_STATE").await;
    x.expect_silence(QUIET).await;

    // Candidates are held until the answer, but only so many: a member that never answers
    // cannot grow the server's memory.
    for n in 0..=HELD {
        x.send("candidate", &iy, &format!("held {n}"), &[]).await;
    }
    x.expect_error("INVALID_STATE").await;

    x.send("offerResponse", &iy, "v=0 offer", &[]).await;
    assert_eq!(y.recv_from("answerRequest", &ix).await.content, "v=0 offer");
    x.send("offerResponse", &iy, "v=0 offer twice", &[]).await;
    x.expect_error("INVALID_STATE").await;
    x.send("answerResponse", &iy, "v=0 answer from the offerer", &[])
        .await;
    x.expect_error("INVALID_STATE").await;
    y.expect_silence(QUIET).await;

    y.send("answerResponse", &ix, "v=0 answer", &[]).await;
    assert_eq!(x.recv_from("finalize", &iy).await.content, "v=0 answer");
    for n in 0..HELD {
        assert_eq!(
            y.recv_from("candidate", &ix).await.content,
            format!("held {n}")
        );
    }
    y.send("answerResponse", &ix, "v=0 answer twice", &[]).await;
    y.expect_error("INVALID_STATE").await;
    x.expect_silence(QUIET).await;
    server.expect_counts(4, 2, 2).await;
    call.finish().await;
}

#[tokio::test]
async fn a_message_to_an_unknown_member_is_refused() {
    let server = Server::start(&config(|_| {})).await;
    let call = Bystanders::start(&server, "call").await;
    let (mut x, y, _ix, iy) = pair_in(&server, "room").await;
    for signal in ["offerResponse", "answerResponse", "candidate", "text"] {
        x.send(signal, "no-such-member", "v=0", &[]).await;
        x.expect_error("MEMBER_NOT_FOUND").await;
    }
    // A member that has gone is as unknown as one that never was.
    y.close().await;
    x.recv_from("left", &iy).await;
    x.send("offerResponse", &iy, "v=0", &[]).await;
    x.expect_error("MEMBER_NOT_FOUND").await;
    server.expect_counts(3, 2, 1).await;
    call.finish().await;
}

#[tokio::test]
async fn a_message_to_a_member_of_another_conversation_is_refused() {
    let server = Server::start(&config(|_| {})).await;
    let call = Bystanders::start(&server, "call").await;
    let (mut x, mut y, _ix, iy) = pair_in(&server, "room").await;
    for signal in ["offerResponse", "answerResponse", "candidate", "text"] {
        x.send(signal, &call.member, "v=0", &[]).await;
        x.expect_error("INVALID_RECIPIENT").await;
    }
    // Nor may a member outside any conversation reach one inside.
    let mut z = server.connect("z").await;
    z.send("text", &iy, "hello?", &[]).await;
    z.expect_error("INVALID_RECIPIENT").await;
    y.expect_silence(QUIET).await;
    server.expect_counts(5, 2, 2).await;
    call.finish().await;
}

#[tokio::test]
async fn joining_a_second_conversation_is_refused() {
    let server = Server::start(&config(|_| {})).await;
    let call = Bystanders::start(&server, "call").await;
    let (mut x, mut y, _ix, _iy) = pair_in(&server, "room").await;
    x.send("join", "", "elsewhere", &[]).await;
    x.expect_error("MEMBER_IN_OTHER_CONVERSATION").await;
    x.send("create", "", "elsewhere", &[]).await;
    x.expect_error("MEMBER_IN_OTHER_CONVERSATION").await;
    // Into the bystanders' call: they must not hear of it.
    y.send("join", "", "call", &[]).await;
    y.expect_error("MEMBER_IN_OTHER_CONVERSATION").await;
    y.send("join", "", "room", &[]).await;
    y.expect_error("MEMBER_IN_OTHER_CONVERSATION").await;
    x.expect_silence(QUIET).await;
    server.expect_counts(4, 2, 2).await;
    // After leaving, the same join succeeds.
    y.send("left", "", "", &[]).await;
    x.recv_signal("left").await;
    y.send("join", "", "elsewhere", &[]).await;
    assert_eq!(y.recv_signal("created").await.content, "elsewhere");
    server.expect_counts(4, 3, 1).await;
    call.finish().await;
}

#[tokio::test]
async fn conversation_names_are_checked() {
    let server = Server::start(&config(|c| c.server.join_only = true)).await;
    let call = Bystanders::start(&server, "call").await;
    let mut x = server.connect("x").await;
    x.send("create", "", "call", &[]).await;
    x.expect_error("CONVERSATION_NAME_OCCUPIED").await;
    x.send("join", "", "nowhere", &[]).await;
    x.expect_error("CONVERSATION_NOT_FOUND").await;
    server.expect_counts(3, 1, 1).await;
    still_served(&mut x, "somewhere").await;
    call.finish().await;
}

#[tokio::test]
async fn an_oversized_frame_is_refused_and_the_connection_closed() {
    const MAX: usize = 4096;
    let server = Server::start(&config(|c| c.limits.max_message_bytes = MAX)).await;
    let call = Bystanders::start(&server, "call").await;
    let mut client = server.connect("big").await;

    // Just under the limit is read and judged on its content.
    client.send_text("x".repeat(MAX - 100)).await;
    client.expect_error("BAD_MESSAGE").await;
    still_served(&mut client, "under the limit").await;

    client.send_text("x".repeat(MAX + 1)).await;
    client.expect_error("MESSAGE_TOO_LARGE").await;
    assert_eq!(client.expect_closed().await, Some(1009));
    let s = server
        .wait_stats("the closed connection gone", |s| s.connections == 2)
        .await;
    assert_eq!((s.members, s.conversations), (2, 1));
    call.finish().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed() {
    const BURST: u32 = 60;
    // A token every 10 s: nothing refills while the test floods, however slow the machine.
    let cfg = config(|c| {
        c.limits.rate_per_sec = 0.1;
        c.limits.rate_burst = BURST;
    });
    let max_strikes = cfg.transport_limits().max_strikes;
    let server = Server::start(&cfg).await;
    let call = Bystanders::start(&server, "call").await;
    let mut flooder = server.connect("flooder").await;

    // The whole burst is served: its last message still gets its answer.
    for _ in 1..BURST {
        flooder.send("ping", "", "", &[]).await;
    }
    flooder.send("create", "", "last of the burst", &[]).await;
    flooder.recv_signal("created").await;
    flooder.send("ping", "", "", &[]).await;
    flooder.expect_error("RATE_LIMITED").await;

    // Refused messages are dropped unanswered, one warning per run of refusals; the
    // connection stays open until the run gets too long.
    for n in 1..max_strikes {
        flooder
            .send("create", "", &format!("dropped {n}"), &[])
            .await;
    }
    flooder.expect_silence(QUIET).await;
    flooder.send("ping", "", "", &[]).await;
    flooder.expect_error("RATE_LIMITED").await;
    assert_eq!(flooder.expect_closed().await, Some(1008));
    let s = server
        .wait_stats("the flooder gone", |s| s.connections == 2)
        .await;
    assert_eq!(
        (s.members, s.conversations),
        (2, 1),
        "nothing refused took effect, and the flooder's conversation went with it"
    );
    call.finish().await;
}

#[tokio::test]
async fn cross_origin_browsers_are_refused_others_accepted() {
    let server = Server::start(&config(|c| {
        c.server.allowed_origins = vec!["https://app.example".into()];
    }))
    .await;
    let call = Bystanders::start(&server, "call").await;
    let own = format!("http://{}", server.addr);
    let cases: &[(&str, Option<&str>, Option<&str>, bool)] = &[
        ("no Origin (not a browser)", None, None, true),
        ("same origin", Some(own.as_str()), None, true),
        (
            "same origin by Host",
            Some("http://cam.local:8080"),
            Some("cam.local:8080"),
            true,
        ),
        (
            "a configured origin",
            Some("https://app.example"),
            Some("cam.local:8080"),
            true,
        ),
        (
            "cross-origin",
            Some("http://evil.example"),
            Some("cam.local:8080"),
            false,
        ),
        (
            "cross-origin, other port",
            Some("http://cam.local:9090"),
            Some("cam.local:8080"),
            false,
        ),
        (
            "configured host, other scheme",
            Some("http://app.example"),
            Some("cam.local:8080"),
            false,
        ),
        ("opaque origin", Some("null"), Some("cam.local:8080"), false),
    ];
    let mut open = Vec::new();
    for (n, (what, origin, host, accepted)) in cases.iter().enumerate() {
        let mut request = server.ws_request();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        if let Some(host) = host {
            request
                .headers_mut()
                .insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        let mut client = server
            .connect_with(request, what)
            .await
            .unwrap_or_else(|e| panic!("{what}: handshake failed: {e}"));
        if *accepted {
            still_served(&mut client, &format!("origin {n}")).await;
            open.push(client);
        } else {
            client.expect_error("FORBIDDEN_ORIGIN").await;
            assert_eq!(client.expect_closed().await, Some(1008), "{what}");
        }
    }
    let s = server.stats().await;
    assert_eq!(
        (s.connections, s.members),
        (2 + open.len(), 2 + open.len()),
        "{s:?}"
    );
    call.finish().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_until_one_closes() {
    let server = Server::start(&config(|c| c.limits.max_connections = 4)).await;
    let call = Bystanders::start(&server, "call").await;
    let mut first = server.connect("first").await;
    still_served(&mut first, "first").await;
    let mut second = server.connect("second").await;
    still_served(&mut second, "second").await;

    let mut over = server.connect("over the cap").await;
    over.expect_error("SERVER_BUSY").await;
    assert_eq!(over.expect_closed().await, Some(1013));
    let s = server
        .wait_stats("the refused connection released", |s| s.connections == 4)
        .await;
    assert_eq!(s.members, 4, "a refused connection is never a member");

    first.close().await;
    server
        .wait_stats("a free slot", |s| s.connections == 3)
        .await;
    let mut next = server.connect("next").await;
    still_served(&mut next, "next").await;
    let mut over = server.connect("over the cap again").await;
    over.expect_error("SERVER_BUSY").await;
    assert_eq!(over.expect_closed().await, Some(1013));
    call.finish().await;
    second.close().await;
    next.close().await;
    let s = server.expect_counts(0, 0, 0).await;
    assert_eq!(s.connections, 0);
}

#[tokio::test]
async fn a_silently_dead_client_is_counted_as_left() {
    // The liveness check runs on the 3 s ping tick. 4 s is the shortest timeout that leaves
    // a quiet but live member time to answer the Ping of the tick before; at 3 s its Pong
    // races the next tick. It is also short enough to catch a server that probes only after
    // `idle_timeout / 3` and so drops the quiet `peer` below along with the dead client.
    const IDLE: u64 = 4;
    let server = Server::start(&config(|c| c.limits.idle_timeout_secs = IDLE)).await;
    let call = Bystanders::start(&server, "call").await;

    // The peer stays quiet too, but keeps reading, so it answers the server's Pings.
    let mut peer = server.connect("peer").await;
    peer.send("create", "", "room", &[]).await;
    peer.recv_signal("created").await;
    let mut dead = server.connect("dead").await;
    dead.send("join", "", "room", &[]).await;
    dead.recv_signal("joined").await;
    let silent_since = Instant::now();
    let id = peer.recv_signal("newJoined").await.from;
    peer.recv_from("offerRequest", &id).await;
    // From here on `dead` is never read again: no Pongs, no messages, but its TCP
    // connection stays open.

    let limit = Duration::from_secs(IDLE + 3) + WAIT;
    let m = peer
        .recv_within(limit)
        .await
        .unwrap_or_else(|| panic!("the dead client was not dropped within {limit:?}"));
    assert_eq!((m.signal.as_str(), m.from.as_str()), ("left", id.as_str()));
    let after = silent_since.elapsed();
    assert!(
        after >= Duration::from_secs(IDLE) - Duration::from_millis(500),
        "dropped after {after:?} of silence, before the {IDLE} s idle timeout"
    );
    let s = server.expect_counts(3, 2, 1).await;
    assert_eq!(
        s.connections, 3,
        "the dead connection is closed, the quiet one is not"
    );
    peer.send("left", "", "", &[]).await;
    still_served(&mut peer, "peer again").await;
    call.finish().await;
    drop(dead);
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_and_the_rest_carry_on() {
    const QUEUE: usize = 8;
    let server = Server::start(&config(|c| {
        c.limits.send_queue = QUEUE;
        // The flood itself must not be what is refused.
        c.limits.rate_per_sec = 100_000.0;
        c.limits.rate_burst = 100_000;
    }))
    .await;
    let call = Bystanders::start(&server, "call").await;
    let mut sender = server.connect("sender").await;
    let mut other = server.connect("other").await;
    let mut slow = server.connect("slow").await;
    sender.send("create", "", "room", &[]).await;
    sender.recv_signal("created").await;
    other.send("join", "", "room", &[]).await;
    other.recv_signal("joined").await;
    let io = sender.recv_signal("newJoined").await.from;
    sender.recv_from("offerRequest", &io).await;
    slow.send("join", "", "room", &[]).await;
    slow.recv_signal("joined").await;
    let is = sender.recv_signal("newJoined").await.from;
    sender.recv_from("offerRequest", &is).await;
    other.recv_from("newJoined", &is).await;
    other.recv_from("offerRequest", &is).await;
    // From here on `slow` is never read again.

    // Big texts fill the socket buffers first, then the bounded queue behind them.
    let chunk = "z".repeat(48 * 1024);
    let mut sent = 0;
    let dropped = loop {
        assert!(
            sent < 2000,
            "2000 unread 48 KiB messages and the slow member is still there"
        );
        sender.send("text", &is, &chunk, &[]).await;
        sent += 1;
        if let Some(m) = sender.recv_within(Duration::ZERO).await {
            break m;
        }
    };
    assert_eq!(
        (dropped.signal.as_str(), dropped.from.as_str()),
        ("left", is.as_str())
    );
    assert!(sent > QUEUE, "dropped after only {sent} messages");
    other.recv_from("left", &is).await;
    // Texts that were on their way when it was dropped find no one.
    while let Some(m) = sender.recv_within(QUIET).await {
        assert!(
            m.signal == "error" && m.content == "MEMBER_NOT_FOUND",
            "{m:?}"
        );
    }
    let s = server.expect_counts(4, 2, 2).await;
    assert!(s.connections >= 4, "{s:?}");

    other.send("text", "", "still here", &[]).await;
    assert_eq!(sender.recv_signal("text").await.content, "still here");
    sender.send("offerResponse", &io, "v=0 offer", &[]).await;
    assert_eq!(
        other.recv_signal("answerRequest").await.content,
        "v=0 offer"
    );
    call.finish().await;
    drop(slow);
}
