use super::*;

const IH: [u8; 20] = [7; 20];

fn lookup(key: &[u8; 20]) -> Option<[u8; 20]> {
    (*key == req2(&IH)).then_some(IH)
}

/// A xorshift stream, for private keys and pads.
fn stream(mut x: u64) -> impl FnMut() -> u8 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }
}

fn bytes(next: &mut impl FnMut() -> u8, n: usize) -> Vec<u8> {
    (0..n).map(|_| next()).collect()
}

fn key(next: &mut impl FnMut() -> u8) -> [u8; PRIVATE_LEN] {
    bytes(next, PRIVATE_LEN).try_into().unwrap()
}

/// Runs a handshake between the two sides, delivering bytes in pieces of `chunk`; returns
/// both ends.
fn run(a: &mut Initiator, b: &mut Responder, chunk: usize) -> (Established, Established) {
    let (mut ea, mut eb) = (None, None);
    for _ in 0..100 {
        for piece in a.take_output().chunks(chunk) {
            if let Some(e) = b.handle(piece, lookup).unwrap() {
                eb = Some(e);
            }
        }
        for piece in b.take_output().chunks(chunk) {
            if let Some(e) = a.handle(piece).unwrap() {
                ea = Some(e);
            }
        }
        match (ea.take(), eb.take()) {
            (Some(x), Some(y)) => return (x, y),
            (x, y) => (ea, eb) = (x, y),
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn both_sides_agree_on_rc4_and_the_stream_then_flows_both_ways() {
    let mut r = stream(1);
    for round in 0..40 {
        let pads: Vec<usize> = (0..4).map(|_| usize::from(r()) * 2 % 513).collect();
        let ia = if round % 2 == 0 {
            b"hello, I am the handshake".to_vec()
        } else {
            vec![]
        };
        let mut a = Initiator::new(
            IH,
            RC4 | PLAINTEXT,
            &ia,
            key(&mut r),
            &bytes(&mut r, pads[0]),
            &bytes(&mut r, pads[1]),
        );
        // RC4 is chosen when the answering side requires it.
        let mut b = Responder::new(
            RC4,
            key(&mut r),
            &bytes(&mut r, pads[2]),
            &bytes(&mut r, pads[3]),
        );
        let (mut ea, mut eb) = run(&mut a, &mut b, 1 + round * 37);
        assert_eq!(eb.info_hash, IH);
        assert_eq!(eb.initial, ia);
        assert!(ea.rest.is_empty() && eb.rest.is_empty());
        let (ca, cb) = (ea.cipher.as_mut().unwrap(), eb.cipher.as_mut().unwrap());
        let mut msg = b"piece data".to_vec();
        ca.encrypt(&mut msg);
        assert_ne!(&msg, b"piece data");
        cb.decrypt(&mut msg);
        assert_eq!(&msg, b"piece data");
        cb.encrypt(&mut msg);
        ca.decrypt(&mut msg);
        assert_eq!(&msg, b"piece data");
    }
}

#[test]
fn an_offer_of_both_is_answered_with_plaintext_and_rc4_only_when_one_side_requires_it() {
    let mut r = stream(2);
    let mut a = Initiator::new(IH, PLAINTEXT, b"", key(&mut r), b"", b"");
    let mut b = Responder::new(RC4 | PLAINTEXT, key(&mut r), b"", b"");
    let (ea, eb) = run(&mut a, &mut b, 1000);
    assert!(ea.cipher.is_none() && eb.cipher.is_none());
    // Both offered, both allowed (`prefer` on both sides, libtorrent's default offer):
    // plaintext after the handshake, as libtorrent answers.
    let mut a = Initiator::new(IH, RC4 | PLAINTEXT, b"", key(&mut r), b"", b"");
    let mut b = Responder::new(RC4 | PLAINTEXT, key(&mut r), b"", b"");
    let (ea, eb) = run(&mut a, &mut b, 1000);
    assert!(ea.cipher.is_none() && eb.cipher.is_none());
    // A peer that offers RC4 alone gets it.
    let mut a = Initiator::new(IH, RC4, b"", key(&mut r), b"", b"");
    let mut b = Responder::new(RC4 | PLAINTEXT, key(&mut r), b"", b"");
    let (ea, eb) = run(&mut a, &mut b, 1000);
    assert!(ea.cipher.is_some() && eb.cipher.is_some());
    // A peer that requires RC4 refuses an offer of plaintext alone.
    let mut a = Initiator::new(IH, PLAINTEXT, b"", key(&mut r), b"", b"");
    let mut b = Responder::new(RC4, key(&mut r), b"", b"");
    let out = a.take_output();
    b.handle(&out, lookup).unwrap();
    a.handle(&b.take_output()).unwrap();
    assert_eq!(
        b.handle(&a.take_output(), lookup).unwrap_err(),
        MseError::NoCommonMethod(PLAINTEXT, RC4)
    );
}

#[test]
fn public_keys_and_secrets_are_96_bytes_even_with_leading_zeros() {
    // Search for a private key whose public key starts with a zero byte: about 1 in 256.
    let mut r = stream(3);
    let mut found = 0;
    for _ in 0..2000 {
        let x = key(&mut r);
        let y = public_key(&x);
        assert_eq!(y.len(), KEY_LEN);
        if y[0] == 0 {
            found += 1;
            // The other side gets the same secret from it.
            let x2 = key(&mut r);
            let s1 = shared_secret(&y, &x2).unwrap();
            let s2 = shared_secret(&public_key(&x2), &x).unwrap();
            assert_eq!(s1, s2);
        }
    }
    assert!(found > 0, "no public key with a leading zero in 2,000");
}

#[test]
fn bad_input_is_refused_with_its_reason() {
    let mut r = stream(4);
    // Public keys that are not keys.
    let p = U768::from_be_hex(PRIME_HEX).to_be_bytes();
    let mut p_minus_1 = p.to_vec();
    p_minus_1[KEY_LEN - 1] -= 1;
    for y in [
        vec![0u8; KEY_LEN],
        {
            let mut v = vec![0u8; KEY_LEN];
            v[KEY_LEN - 1] = 1;
            v
        },
        p.to_vec(),
        p_minus_1,
        vec![0xff; KEY_LEN],
    ] {
        let mut b = Responder::new(RC4, key(&mut r), b"", b"");
        assert_eq!(b.handle(&y, lookup).unwrap_err(), MseError::BadKey);
    }
    // Garbage instead of req1: dropped once the 512-byte window is spent, whatever the
    // pieces it comes in.
    let mut a = Initiator::new(IH, RC4, b"", key(&mut r), b"", b"");
    let mut b = Responder::new(RC4, key(&mut r), b"", b"");
    b.handle(&a.take_output()[..KEY_LEN], lookup).unwrap();
    let mut err = None;
    for _ in 0..100 {
        if let Err(e) = b.handle(&[0x55; 7], lookup) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(MseError::NoSync));
    // Another torrent.
    let mut a = Initiator::new([9; 20], RC4, b"", key(&mut r), b"", b"");
    let mut b = Responder::new(RC4, key(&mut r), b"", b"");
    b.handle(&a.take_output(), lookup).unwrap();
    a.handle(&b.take_output()).unwrap();
    assert_eq!(
        b.handle(&a.take_output(), lookup).unwrap_err(),
        MseError::UnknownTorrent
    );
    // A responder that never sends the marker: the initiator gives up after 512 bytes.
    let mut a = Initiator::new(IH, RC4, b"", key(&mut r), b"", b"");
    let _ = a.take_output();
    let y = public_key(&key(&mut r));
    assert!(a.handle(&y).unwrap().is_none());
    assert_eq!(a.handle(&[0xaa; 600]).unwrap_err(), MseError::NoSync);
}

#[test]
fn a_pad_over_512_bytes_is_refused() {
    // An initiator whose PadC length field says 513: built by hand from a real exchange.
    let mut r = stream(5);
    let x = key(&mut r);
    let mut b = Responder::new(RC4, key(&mut r), b"", b"");
    let mut first = public_key(&x).to_vec();
    b.handle(&first.split_off(0), lookup).unwrap();
    let yb: Vec<u8> = b.take_output();
    let s = shared_secret(&yb[..KEY_LEN], &x).unwrap();
    let mut msg = hash(&[b"req1", &s]).to_vec();
    let req3 = hash(&[b"req3", &s]);
    msg.extend(req2(&IH).iter().zip(req3).map(|(a, b)| a ^ b));
    let mut tail = VC.to_vec();
    tail.extend_from_slice(&RC4.to_be_bytes());
    tail.extend_from_slice(&513u16.to_be_bytes());
    rc4(b"keyA", &s, &IH).apply_keystream(&mut tail);
    msg.extend_from_slice(&tail);
    assert_eq!(
        b.handle(&msg, lookup).unwrap_err(),
        MseError::PadTooLong(513)
    );
}

/// Known answers from an independent computation (Python's `pow` and a textbook RC4):
/// Ya for the private key 1..=20, the secret with the private key 101..=120, and the first
/// 16 bytes of 'keyA''s keystream after the 1,024 thrown away, for info-hash [7; 20].
#[test]
fn known_answers_from_another_implementation() {
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let xa: [u8; 20] = std::array::from_fn(|i| i as u8 + 1);
    let xb: [u8; 20] = std::array::from_fn(|i| i as u8 + 101);
    assert_eq!(
        public_key(&xa).to_vec(),
        hex(
            "96e112dab29e8c5272accb9b17b26887ce54a144a4e3b697c7d159b7a817e556b0918db2b4c658e02a87f7e5fb14b18a553e084cbf3dad2d30f16596ccb982d406258c61b30c5c1dae2ddc60bdbd48d79896312aad63238c39e1a633821eb693"
        )
    );
    let s = shared_secret(&public_key(&xb), &xa).unwrap();
    assert_eq!(
        s.to_vec(),
        hex(
            "d05ed96a95215a89b44073afe5d0b1626289ac01cff7849392948b2470b346547e944d7562a897ae86976bc389999083ec09572dbdc8ed7f6a0a86a1aa42a3ca04209b72d8239890360435640643b76479ed7836f1857963fcc7cb72084c3ab4"
        )
    );
    let mut ks = [0u8; 16];
    rc4(b"keyA", &s, &IH).apply_keystream(&mut ks);
    assert_eq!(ks.to_vec(), hex("6001a24df82bedd60d89ed941f5de1f9"));
}
