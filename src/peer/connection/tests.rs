use super::*;

#[test]
fn allowed_fast_set_matches_the_bep_6_vectors() {
    let ih = [0xAA; 20];
    assert_eq!(
        allowed_fast_set([80, 4, 4, 200], &ih, 1313, 7),
        [1059, 431, 808, 1217, 287, 376, 1188]
    );
    assert_eq!(
        allowed_fast_set([80, 4, 4, 200], &ih, 1313, 9),
        [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
    );
    // The last byte of the address does not matter; fewer pieces than k: all of them.
    assert_eq!(
        allowed_fast_set([80, 4, 4, 1], &ih, 1313, 7),
        allowed_fast_set([80, 4, 4, 200], &ih, 1313, 7)
    );
    let mut small = allowed_fast_set([1, 2, 3, 4], &ih, 3, 10);
    small.sort();
    assert_eq!(small, [0, 1, 2]);
}

#[test]
fn the_deadline_is_the_earliest_timer() {
    let t = Timers {
        handshake: Duration::from_secs(10),
        keepalive: Duration::from_secs(90),
        request: Duration::from_secs(30),
        dead_after: Duration::from_secs(120),
    };
    let now = Instant::now();
    let mut c = Connection::new("10.0.0.1:1".parse().unwrap(), true, now);
    assert_eq!(c.deadline(&t, None), Some(now + t.handshake), "connecting");
    let hs = Handshake {
        reserved: OUR_RESERVED,
        info_hash: [1; 20],
        peer_id: [2; 20],
    };
    c.connected(&hs.encode(), now);
    c.established(&hs);
    assert!(c.fast && c.ltep);
    assert_eq!(
        c.deadline(&t, None),
        Some(now + t.keepalive),
        "idle: the keep-alive"
    );
    let r = BlockRef {
        index: 0,
        begin: 0,
        len: 16384,
    };
    c.request(r, now + Duration::from_secs(5));
    assert_eq!(
        c.deadline(&t, None),
        Some(now + Duration::from_secs(35)),
        "the request's limit"
    );
    c.pex_due = Some(now + Duration::from_secs(1));
    assert_eq!(
        c.deadline(&t, None),
        Some(now + Duration::from_secs(1)),
        "PEX"
    );
    // Once the PEX moment was handled (and, say, nothing could be sent), the request's
    // limit is next: a moment already handled is never due again.
    assert_eq!(
        c.deadline(&t, Some(now + Duration::from_secs(1))),
        Some(now + Duration::from_secs(35)),
    );
    assert_eq!(c.expire(now + Duration::from_secs(35), t.request), [r]);
}

#[test]
fn partial_writes_keep_the_rest_in_order_and_the_buffer_compacts() {
    let now = Instant::now();
    let mut c = Connection::new("10.0.0.1:1".parse().unwrap(), false, now);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    c.send_raw(&data);
    let mut sent = Vec::new();
    while !c.pending().is_empty() {
        let n = c.pending().len().min(7_000);
        sent.extend_from_slice(&c.pending()[..n]);
        c.consume(n);
        // Never more than the unsent bytes plus what may wait for compaction.
        assert!(c.tx.len() <= 2 * c.pending().len() + 64 * 1024 + 7_000);
    }
    assert_eq!(sent, data);
    assert!(c.tx.is_empty() && c.tx_at == 0, "emptied, not kept");
}
