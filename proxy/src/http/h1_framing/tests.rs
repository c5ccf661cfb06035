use super::*;

/// Feeds `parts` one after another, returning (started, complete) after each.
fn run(parts: &[&[u8]]) -> Vec<(u64, u64, Option<u64>)> {
    let mut framing = H1Framing::default();
    parts
        .iter()
        .map(|p| {
            let read = framing.feed(p);
            (framing.started, framing.complete, read.body_of)
        })
        .collect()
}

#[test]
fn a_request_without_a_body_is_complete_at_the_end_of_its_head() {
    assert_eq!(
        run(&[b"GET / HTTP/1.1\r\nHo", b"st: a\r\n\r\n"]),
        [(1, 0, None), (1, 1, None)]
    );
}

#[test]
fn a_content_length_body_completes_with_its_last_byte() {
    assert_eq!(
        run(&[
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
            b"defg",
            b"hij",
        ]),
        [(1, 0, Some(1)), (1, 0, Some(1)), (1, 1, Some(1))]
    );
}

#[test]
fn chunked_bodies_and_trailers_are_followed_byte_by_byte() {
    let message = b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, Chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    let mut framing = H1Framing::default();
    let mut completions = Vec::new();
    for byte in message.iter() {
        framing.feed(std::slice::from_ref(byte));
        completions.push(framing.complete);
    }
    assert_eq!(framing.started, 2);
    assert_eq!(framing.complete, 2);
    // The first request completed exactly at the blank line after its trailers.
    let first = completions.iter().position(|c| *c == 1).unwrap();
    assert_eq!(&message[first - 3..=first], b"\r\n\r\n");
    assert!(message[first + 1..].starts_with(b"GET /next"));
}

#[test]
fn pipelined_requests_in_one_read_are_counted_apart() {
    let read = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\ncontent-length: 2\r\n\r\nxyGET /c HTTP/1.1\n\n";
    assert_eq!(run(&[read]), [(3, 3, Some(2))]);
}

#[test]
fn h2_upgrades_and_connect_stop_the_tracking() {
    let mut h2 = H1Framing::default();
    h2.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(!h2.following() && h2.h2);
    let mut upgrade = H1Framing::default();
    upgrade.feed(
        b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
    );
    assert_eq!((upgrade.started, upgrade.complete), (1, 1));
    assert!(!upgrade.following());
    let mut connect = H1Framing::default();
    connect.feed(b"CONNECT a:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    assert_eq!((connect.started, connect.complete), (1, 1));
}

#[test]
fn blank_lines_between_requests_start_nothing() {
    assert_eq!(
        run(&[b"\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n\r\n"]),
        [(0, 0, None), (1, 1, None)]
    );
}
