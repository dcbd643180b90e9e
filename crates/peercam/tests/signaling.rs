//! The signaling server against real WebSocket clients on loopback: the nextRTC call flows of
//! PROTOCOL.md (mesh, broadcast, text, leaving) with the exact order of every message, and
//! the server's counts returning to where they should once members go.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use support::device::{config, Server};
use support::ws::{Client, Msg};

/// Long enough for a message the server wrongly sent to arrive on loopback.
const QUIET: Duration = Duration::from_millis(200);

fn test_config() -> peercam::config::Config {
    config(|_| {})
}

/// A candidate as a browser would send it: `JSON.stringify(RTCIceCandidate)`.
fn candidate(from: &str, to: &str, n: u32) -> String {
    format!(
        r#"{{"candidate":"candidate:{n} 1 udp 2122260223 10.0.0.{n} 5000{n} typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"{from}->{to}"}}"#
    )
}

/// Runs the offer/answer exchange of one pair whose offerer has just been sent
/// `offerRequest`, with candidates sent from both sides before the answer: they must be held
/// back and arrive, in order, only after `finalize`. Candidates sent afterwards flow straight
/// through.
///
/// A `text` sent right after the early candidates is the proof that they were held: the
/// server handles one member's messages in order and relays text at once, so a candidate
/// that was not held would arrive before it.
async fn negotiate(
    offerer: &mut Client,
    answerer: &mut Client,
    offerer_id: &str,
    answerer_id: &str,
) {
    let offer = format!("v=0 offer {offerer_id}->{answerer_id}");
    let answer = format!("v=0 answer {answerer_id}->{offerer_id}");

    offerer
        .send("offerResponse", answerer_id, &offer, &[])
        .await;
    for n in 1..=2 {
        let c = candidate(offerer_id, answerer_id, n);
        offerer.send("candidate", answerer_id, &c, &[]).await;
    }
    offerer
        .send("text", answerer_id, "offerer: candidates sent", &[])
        .await;
    assert_eq!(
        answerer
            .recv_from("answerRequest", offerer_id)
            .await
            .content,
        offer
    );
    answerer.recv_from("text", offerer_id).await;

    let c = candidate(answerer_id, offerer_id, 1);
    answerer.send("candidate", offerer_id, &c, &[]).await;
    answerer
        .send("text", offerer_id, "answerer: candidate sent", &[])
        .await;
    offerer.recv_from("text", answerer_id).await;
    answerer
        .send("answerResponse", offerer_id, &answer, &[])
        .await;

    assert_eq!(
        offerer.recv_from("finalize", answerer_id).await.content,
        answer
    );
    assert_eq!(offerer.recv_from("candidate", answerer_id).await.content, c);
    for n in 1..=2 {
        let m = answerer.recv_from("candidate", offerer_id).await;
        assert_eq!(
            m.content,
            candidate(offerer_id, answerer_id, n),
            "held candidates out of order"
        );
    }

    let c = candidate(offerer_id, answerer_id, 3);
    offerer.send("candidate", answerer_id, &c, &[]).await;
    assert_eq!(answerer.recv_from("candidate", offerer_id).await.content, c);
    let c = candidate(answerer_id, offerer_id, 2);
    answerer.send("candidate", offerer_id, &c, &[]).await;
    assert_eq!(offerer.recv_from("candidate", answerer_id).await.content, c);
    offerer.expect_silence(Duration::ZERO).await;
    answerer.expect_silence(Duration::ZERO).await;
}

/// Reads one message per sender and signal, and checks that those from each sender are exactly
/// `per_sender`, in
/// that order: for messages from different members, whose interleaving the protocol leaves
/// open.
async fn recv_per_sender(client: &mut Client, senders: &[&str], per_sender: &[&str]) -> Vec<Msg> {
    let mut all = Vec::new();
    for _ in 0..senders.len() * per_sender.len() {
        all.push(client.recv().await);
    }
    for sender in senders {
        let signals: Vec<&str> = all
            .iter()
            .filter(|m| m.from == *sender)
            .map(|m| m.signal.as_str())
            .collect();
        assert_eq!(
            signals,
            per_sender,
            "{}: from {sender}: {all:?}",
            client.label()
        );
    }
    all
}

async fn create(client: &mut Client, conversation: &str, kind: &str) {
    client
        .send("create", "", conversation, &[("type", kind)])
        .await;
    let m = client.recv_signal("created").await;
    assert_eq!(m.content, conversation);
    assert_eq!(
        m.custom.get("type").map(String::as_str),
        Some(kind),
        "{m:?}"
    );
}

async fn join(client: &mut Client, conversation: &str) {
    client.send("join", "", conversation, &[]).await;
    let m = client.recv_signal("joined").await;
    assert_eq!(m.content, conversation);
}

/// The existing member `who` learns that `newcomer` arrived and must offer to it.
async fn expect_arrival(who: &mut Client, newcomer: &str) {
    let m = who.recv_from("newJoined", newcomer).await;
    assert_eq!(m.content, newcomer);
    who.recv_from("offerRequest", newcomer).await;
}

#[tokio::test]
async fn mesh_of_three_negotiates_every_pair_in_protocol_order() {
    let server = Server::start(&test_config()).await;
    assert_eq!(server.expect_counts(0, 0, 0).await.connections, 0);
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    let mut c = server.connect("c").await;
    let (ia, ib, ic) = tokio::join!(a.learn_id(), b.learn_id(), c.learn_id());
    for client in [&a, &b, &c] {
        let after = client.first_ping_after().expect("a ping came");
        assert!(
            after >= Duration::from_millis(800) && after <= Duration::from_secs(3),
            "{}: first ping after {after:?}, nextRTC sends it after about 1 s",
            client.label()
        );
    }
    assert!(
        ia != ib && ib != ic && ia != ic,
        "ids must be unique: {ia} {ib} {ic}"
    );

    create(&mut a, "mesh", "MESH").await;
    join(&mut b, "mesh").await;
    expect_arrival(&mut a, &ib).await;
    negotiate(&mut a, &mut b, &ia, &ib).await;
    c.expect_silence(Duration::ZERO).await;
    let s = server.expect_counts(3, 1, 1).await;
    assert_eq!(s.connections, 3);

    join(&mut c, "mesh").await;
    expect_arrival(&mut a, &ic).await;
    expect_arrival(&mut b, &ic).await;

    // Both existing members offer at once, each with an early candidate and a text after it.
    for (x, ix) in [(&mut a, &ia), (&mut b, &ib)] {
        x.send("offerResponse", &ic, &format!("v=0 offer {ix}"), &[])
            .await;
        x.send("candidate", &ic, &candidate(ix, &ic, 1), &[]).await;
        x.send("text", &ic, "candidates sent", &[]).await;
    }
    let got = recv_per_sender(&mut c, &[&ia, &ib], &["answerRequest", "text"]).await;
    for m in got.iter().filter(|m| m.signal == "answerRequest") {
        assert_eq!(m.content, format!("v=0 offer {}", m.from));
    }
    c.send("candidate", &ia, &candidate(&ic, &ia, 1), &[]).await;
    c.send("candidate", &ib, &candidate(&ic, &ib, 1), &[]).await;
    c.send("text", "", "candidates sent", &[]).await;
    a.recv_from("text", &ic).await;
    b.recv_from("text", &ic).await;

    c.send("answerResponse", &ia, "v=0 answer c->a", &[]).await;
    assert_eq!(
        a.recv_from("finalize", &ic).await.content,
        "v=0 answer c->a"
    );
    assert_eq!(
        a.recv_from("candidate", &ic).await.content,
        candidate(&ic, &ia, 1)
    );
    assert_eq!(
        c.recv_from("candidate", &ia).await.content,
        candidate(&ia, &ic, 1)
    );
    // The b–c pair is still waiting for its answer: its candidates stay held.
    c.send("text", &ib, "answered a", &[]).await;
    b.recv_from("text", &ic).await;
    c.expect_silence(Duration::ZERO).await;

    c.send("answerResponse", &ib, "v=0 answer c->b", &[]).await;
    assert_eq!(
        b.recv_from("finalize", &ic).await.content,
        "v=0 answer c->b"
    );
    assert_eq!(
        b.recv_from("candidate", &ic).await.content,
        candidate(&ic, &ib, 1)
    );
    assert_eq!(
        c.recv_from("candidate", &ib).await.content,
        candidate(&ib, &ic, 1)
    );

    server.expect_counts(3, 1, 3).await;
    for client in [&mut a, &mut b, &mut c] {
        client.expect_silence(QUIET).await;
    }
    for client in [a, b, c] {
        client.close().await;
    }
    let s = server.expect_counts(0, 0, 0).await;
    assert_eq!(s.connections, 0);
    server.stop().await.expect("the server stops cleanly");
}

#[tokio::test]
async fn broadcast_connects_each_viewer_to_the_broadcaster_only() {
    let server = Server::start(&test_config()).await;
    let mut caster = server.connect("broadcaster").await;
    let ic = caster.learn_id().await;
    create(&mut caster, "show", "BROADCAST").await;

    let mut viewers: Vec<Client> = Vec::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut v = server.connect(&format!("viewer{n}")).await;
        join(&mut v, "show").await;
        let m = caster.recv_signal("newJoined").await;
        let iv = m.from.clone();
        assert_eq!(m.content, iv);
        caster.recv_from("offerRequest", &iv).await;
        negotiate(&mut caster, &mut v, &ic, &iv).await;
        // Earlier viewers hear nothing about later ones.
        for earlier in &mut viewers {
            earlier.expect_silence(Duration::ZERO).await;
        }
        viewers.push(v);
        ids.push(iv);
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    server.expect_counts(4, 1, 3).await;

    // Viewers have no pair with each other.
    viewers[0].send("offerResponse", &ids[1], "v=0", &[]).await;
    viewers[0].expect_error("INVALID_STATE").await;
    viewers[0].send("candidate", &ids[2], "{}", &[]).await;
    viewers[0].expect_error("INVALID_STATE").await;
    server.expect_counts(4, 1, 3).await;

    // A viewer leaving is news to the broadcaster only.
    let v2 = viewers.pop().expect("three viewers");
    v2.close().await;
    caster.recv_from("left", &ids[2]).await;
    for v in &mut viewers {
        v.expect_silence(QUIET).await;
    }
    caster.expect_silence(Duration::ZERO).await;
    server.expect_counts(3, 1, 2).await;
}

#[tokio::test]
async fn text_reaches_one_member_or_all_the_others() {
    let server = Server::start(&test_config()).await;
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    let mut c = server.connect("c").await;
    let (ia, ib, ic) = tokio::join!(a.learn_id(), b.learn_id(), c.learn_id());
    create(&mut a, "chat", "MESH").await;
    join(&mut b, "chat").await;
    expect_arrival(&mut a, &ib).await;
    join(&mut c, "chat").await;
    expect_arrival(&mut a, &ic).await;
    expect_arrival(&mut b, &ic).await;

    let direct = "for b only: {\"json\": \"inside\"} ✓";
    a.send("text", &ib, direct, &[]).await;
    assert_eq!(b.recv_from("text", &ia).await.content, direct);
    c.expect_silence(QUIET).await;
    a.expect_silence(Duration::ZERO).await;

    a.send("text", "", "to everyone", &[]).await;
    assert_eq!(b.recv_from("text", &ia).await.content, "to everyone");
    assert_eq!(c.recv_from("text", &ia).await.content, "to everyone");
    a.expect_silence(QUIET).await;

    // Texts from one member arrive in the order sent.
    for n in 0..20 {
        c.send("text", &ib, &format!("#{n}"), &[]).await;
    }
    for n in 0..20 {
        assert_eq!(b.recv_from("text", &ic).await.content, format!("#{n}"));
    }

    // Signal names are case-insensitive on input.
    c.send("TEXT", "", "shouted", &[]).await;
    assert_eq!(a.recv_from("text", &ic).await.content, "shouted");
    assert_eq!(b.recv_from("text", &ic).await.content, "shouted");

    a.send("text", &ia, "to myself", &[]).await;
    a.expect_error("INVALID_RECIPIENT").await;
    for client in [&mut a, &mut b, &mut c] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn a_member_leaving_mid_negotiation_leaves_nothing_behind() {
    let server = Server::start(&test_config()).await;
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    let (ia, ib) = tokio::join!(a.learn_id(), b.learn_id());
    create(&mut a, "room", "MESH").await;
    join(&mut b, "room").await;
    expect_arrival(&mut a, &ib).await;
    negotiate(&mut a, &mut b, &ia, &ib).await;

    // c joins; a has offered and sent a candidate, b has not offered yet. c sends `left`.
    let mut c = server.connect("c").await;
    join(&mut c, "room").await;
    let ic = {
        let m = a.recv_signal("newJoined").await;
        a.recv_from("offerRequest", &m.from).await;
        m.from
    };
    expect_arrival(&mut b, &ic).await;
    a.send("offerResponse", &ic, "v=0 offer a->c", &[]).await;
    a.send("candidate", &ic, &candidate(&ia, &ic, 1), &[]).await;
    a.send("text", &ic, "candidate sent", &[]).await;
    c.recv_from("answerRequest", &ia).await;
    c.recv_from("text", &ia).await;
    server.expect_counts(3, 1, 3).await;
    c.send("left", "", "", &[]).await;
    a.recv_from("left", &ic).await;
    b.recv_from("left", &ic).await;
    server.expect_counts(3, 1, 1).await;
    // The abandoned pair's held candidate is gone, and c is no one's peer any more.
    c.expect_silence(QUIET).await;
    b.send("offerResponse", &ic, "v=0 offer b->c", &[]).await;
    b.expect_error("INVALID_RECIPIENT").await;
    c.send("answerResponse", &ia, "v=0 answer c->a", &[]).await;
    c.expect_error("INVALID_RECIPIENT").await;
    a.expect_silence(QUIET).await;

    // c comes back: negotiation starts over from offerRequest. Then its socket closes with
    // the close handshake while a's offer is pending.
    join(&mut c, "room").await;
    expect_arrival(&mut a, &ic).await;
    expect_arrival(&mut b, &ic).await;
    c.expect_silence(QUIET).await;
    a.send("offerResponse", &ic, "v=0 offer a->c again", &[])
        .await;
    assert_eq!(
        c.recv_from("answerRequest", &ia).await.content,
        "v=0 offer a->c again"
    );
    c.close().await;
    a.recv_from("left", &ic).await;
    b.recv_from("left", &ic).await;
    server.expect_counts(2, 1, 1).await;

    // d's TCP connection just drops, as a crashed browser's would, mid-negotiation.
    let mut d = server.connect("d").await;
    join(&mut d, "room").await;
    let id = {
        let m = a.recv_signal("newJoined").await;
        a.recv_from("offerRequest", &m.from).await;
        m.from
    };
    expect_arrival(&mut b, &id).await;
    b.send("offerResponse", &id, "v=0 offer b->d", &[]).await;
    d.recv_from("answerRequest", &ib).await;
    server.expect_counts(3, 1, 3).await;
    d.abort();
    a.recv_from("left", &id).await;
    b.recv_from("left", &id).await;
    let s = server.expect_counts(2, 1, 1).await;
    assert_eq!(s.connections, 2);

    // The a–b call is unaffected.
    b.send("candidate", &ia, "{\"candidate\":\"still here\"}", &[])
        .await;
    assert_eq!(
        a.recv_from("candidate", &ib).await.content,
        "{\"candidate\":\"still here\"}"
    );

    a.send("left", "", "", &[]).await;
    b.recv_from("left", &ia).await;
    server.expect_counts(2, 1, 0).await;
    b.close().await;
    server.expect_counts(1, 0, 0).await;
    a.close().await;
    let s = server.expect_counts(0, 0, 0).await;
    assert_eq!(s.connections, 0);
}

#[tokio::test]
async fn the_broadcaster_leaving_ends_the_broadcast() {
    let server = Server::start(&test_config()).await;

    // First the broadcaster sends `left`; viewers are at different stages of negotiation.
    let mut caster = server.connect("broadcaster").await;
    let ic = caster.learn_id().await;
    create(&mut caster, "show", "BROADCAST").await;
    let mut viewers = Vec::new();
    for n in 0..3 {
        let mut v = server.connect(&format!("viewer{n}")).await;
        join(&mut v, "show").await;
        let iv = caster.recv_signal("newJoined").await.from;
        caster.recv_from("offerRequest", &iv).await;
        viewers.push((v, iv));
    }
    {
        let (v, iv) = &mut viewers[0];
        negotiate(&mut caster, v, &ic, iv).await;
    }
    {
        let (v, iv) = &mut viewers[1];
        caster.send("offerResponse", iv, "v=0 offer", &[]).await;
        v.recv_from("answerRequest", &ic).await;
    }
    server.expect_counts(4, 1, 3).await;
    caster.send("left", "", "", &[]).await;
    for (v, _) in &mut viewers {
        v.recv_from("left", &ic).await;
        let m = v.recv_from("end", &ic).await;
        assert_eq!(m.content, "show");
    }
    server.expect_counts(4, 0, 0).await;
    caster.expect_silence(QUIET).await;

    // The viewers are free again: one starts a conversation of its own, the other two watch
    // a second broadcast whose broadcaster's socket then closes.
    let (mut v0, _) = viewers.remove(0);
    create(&mut v0, "elsewhere", "MESH").await;
    let mut caster2 = server.connect("broadcaster2").await;
    let ic2 = caster2.learn_id().await;
    create(&mut caster2, "show", "BROADCAST").await;
    for (v, iv) in &mut viewers {
        join(v, "show").await;
        expect_arrival(&mut caster2, iv).await;
    }
    server.expect_counts(5, 2, 2).await;
    caster2.close().await;
    for (v, _) in &mut viewers {
        v.recv_from("left", &ic2).await;
        assert_eq!(v.recv_from("end", &ic2).await.content, "show");
    }
    server.expect_counts(4, 1, 0).await;
    v0.expect_silence(QUIET).await;
    caster.expect_silence(Duration::ZERO).await;
}
