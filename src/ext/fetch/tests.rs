use super::*;

/// Metadata of 40,000 bytes: three pieces, the last 7,232 bytes.
fn metadata() -> (Vec<u8>, [u8; 20]) {
    let m: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let h = crate::hash::sha1(&m);
    (m, h)
}

fn piece(m: &[u8], i: u32) -> &[u8] {
    crate::ext::metadata::piece_of(m, i).unwrap()
}

#[test]
fn three_peers_fetch_three_pieces_one_request_each_and_the_hash_checks() {
    let (m, h) = metadata();
    let now = Instant::now();
    let mut f = MetadataFetch::new(h);
    for k in 0..3 {
        f.add_peer(k, m.len() as u64).unwrap();
    }
    assert_eq!(f.progress(), (0, 3));
    let asked: Vec<u32> = (0..3).map(|k| f.next_request(k, now).unwrap()).collect();
    assert_eq!(asked, [0, 1, 2], "each piece of one peer");
    assert_eq!(
        f.next_request(0, now),
        None,
        "one request in flight per peer"
    );
    let len = m.len() as u64;
    assert_eq!(f.on_data(1, 1, len, piece(&m, 1)), Ok(Progress::More));
    assert_eq!(f.on_data(2, 2, len, piece(&m, 2)), Ok(Progress::More));
    assert_eq!(
        f.on_data(0, 0, len, piece(&m, 0)),
        Ok(Progress::Done(m.clone()))
    );
}

#[test]
fn a_wrong_hash_from_several_senders_bans_nobody_and_the_whole_then_comes_from_one_peer() {
    let (m, h) = metadata();
    let now = Instant::now();
    let mut f = MetadataFetch::new(h);
    f.add_peer(7, m.len() as u64).unwrap();
    f.add_peer(8, m.len() as u64).unwrap();
    let len = m.len() as u64;
    let mut bad = piece(&m, 1).to_vec();
    bad[0] ^= 1;
    let i = f.next_request(7, now).unwrap();
    assert_eq!(f.on_data(7, i, len, piece(&m, i)), Ok(Progress::More));
    let i = f.next_request(8, now).unwrap();
    assert_eq!(f.on_data(8, i, len, &bad), Ok(Progress::More));
    let i = f.next_request(7, now).unwrap();
    assert_eq!(
        f.on_data(7, i, len, piece(&m, i)),
        Ok(Progress::WrongHash(None)),
        "one of two lied: banning both would let a liar get good peers banned"
    );
    assert_eq!(f.progress(), (0, 3), "started over");
    // Solo: peer 8 takes the fetch, and 7 is not asked until 8 gives it up.
    assert_eq!(f.next_request(8, now), Some(0));
    assert_eq!(f.next_request(7, now), None, "one peer at a time");
    assert_eq!(f.on_data(8, 0, len, piece(&m, 0)), Ok(Progress::More));
    assert_eq!(f.next_request(8, now), Some(1));
    assert_eq!(f.on_data(8, 1, len, &bad), Ok(Progress::More));
    assert_eq!(f.next_request(8, now), Some(2));
    assert_eq!(
        f.on_data(8, 2, len, piece(&m, 2)),
        Ok(Progress::WrongHash(Some(8))),
        "all of it from 8: 8 lied"
    );
    assert_eq!(f.next_request(8, now), None, "8 is out");
    for i in 0..3 {
        assert_eq!(f.next_request(7, now), Some(i));
        let want = if i == 2 {
            Progress::Done(m.clone())
        } else {
            Progress::More
        };
        assert_eq!(f.on_data(7, i, len, piece(&m, i)), Ok(want));
    }
}

#[test]
fn in_solo_mode_a_peer_that_rejects_gives_the_fetch_to_another_and_its_pieces_are_dropped() {
    let (m, h) = metadata();
    let now = Instant::now();
    let mut f = MetadataFetch::new(h);
    let len = m.len() as u64;
    f.add_peer(1, len).unwrap();
    f.add_peer(2, len).unwrap();
    let mut bad = piece(&m, 0).to_vec();
    bad[0] ^= 1;
    assert_eq!(f.next_request(1, now), Some(0));
    assert_eq!(f.next_request(2, now), Some(1));
    assert_eq!(f.on_data(1, 0, len, &bad), Ok(Progress::More));
    assert_eq!(f.on_data(2, 1, len, piece(&m, 1)), Ok(Progress::More));
    assert_eq!(f.next_request(2, now), Some(2));
    assert_eq!(
        f.on_data(2, 2, len, piece(&m, 2)),
        Ok(Progress::WrongHash(None))
    );
    assert_eq!(f.next_request(1, now), Some(0));
    assert_eq!(f.on_data(1, 0, len, piece(&m, 0)), Ok(Progress::More));
    assert_eq!(f.next_request(1, now), Some(1));
    f.on_reject(1, 1, now);
    assert_eq!(f.progress(), (0, 3), "what 1 sent is dropped with it");
    assert_eq!(f.next_request(2, now), Some(0), "2 owns the fetch now");
}

#[test]
fn rejects_and_silence_move_the_piece_to_another_peer() {
    let (m, h) = metadata();
    let now = Instant::now();
    let mut f = MetadataFetch::new(h);
    f.add_peer(1, m.len() as u64).unwrap();
    f.add_peer(2, m.len() as u64).unwrap();
    assert_eq!(f.next_request(1, now), Some(0));
    f.on_reject(1, 0, now);
    assert_eq!(f.next_request(1, now), None, "a rejecting peer rests");
    assert_eq!(f.next_request(2, now), Some(0), "its piece goes to another");
    // Peer 2 never answers: after the time limit the piece is free again.
    assert_eq!(f.poll_timeout(), Some(now + REQUEST_TIMEOUT));
    assert!(!f.handle_timeout(now + REQUEST_TIMEOUT - Duration::from_millis(1)));
    assert!(f.handle_timeout(now + REQUEST_TIMEOUT));
    let later = now + REST;
    assert_eq!(f.next_request(1, later), Some(0), "rested long enough");
    // A late answer from the silent peer is for a piece not asked of it any more.
    assert_eq!(
        f.on_data(2, 0, m.len() as u64, piece(&m, 0)),
        Err(FetchError::Unasked(0))
    );
}

#[test]
fn hostile_sizes_and_pieces_are_errors() {
    let (m, h) = metadata();
    let now = Instant::now();
    let mut f = MetadataFetch::new(h);
    assert_eq!(f.add_peer(1, 0), Err(FetchError::BadSize(0)));
    assert_eq!(
        f.add_peer(1, MAX_SIZE + 1),
        Err(FetchError::BadSize(MAX_SIZE + 1))
    );
    f.add_peer(1, m.len() as u64).unwrap();
    // A peer stating another size is not asked.
    f.add_peer(2, 99).unwrap();
    assert_eq!(f.next_request(2, now), None);
    assert_eq!(f.size(), Some(m.len() as u64));
    let i = f.next_request(1, now).unwrap();
    assert_eq!(
        f.on_data(1, i, m.len() as u64, &piece(&m, i)[..100]),
        Err(FetchError::BadPiece(i)),
        "short"
    );
    let i = f.next_request(1, now).unwrap();
    assert_eq!(
        f.on_data(1, i, 5, piece(&m, i)),
        Err(FetchError::BadPiece(i)),
        "another total_size"
    );
    assert_eq!(
        f.on_data(1, 2, m.len() as u64, piece(&m, 2)),
        Err(FetchError::Unasked(2))
    );
    assert_eq!(
        f.on_data(5, 0, m.len() as u64, piece(&m, 0)),
        Err(FetchError::Unasked(0)),
        "from a peer never added"
    );
}
