//! BEP 42 node ids: the first 21 bits of a node's id are tied to its IP address (a CRC-32C
//! of the masked address and 3 random bits, which the id's last byte carries), so that one
//! host cannot pick ids near a target at will. libtorrent prefers such ids when its buckets
//! are full, so a node on a public address takes one. Loopback and private addresses are
//! exempt: nobody can check them.

use super::krpc::Id;
use std::net::IpAddr;

/// CRC-32C (Castagnoli), bit by bit: a few bytes per id, so no table.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The CRC that the first 21 bits of an id at `ip` must match, for the 3 bits `r`.
fn prefix(ip: IpAddr, r: u8) -> u32 {
    let mut b = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
    };
    let mask: &[u8] = if b.len() == 4 {
        &[0x03, 0x0f, 0x3f, 0xff]
    } else {
        &[0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff]
    };
    for (o, m) in b.iter_mut().zip(mask) {
        *o &= m;
    }
    b[0] |= (r & 7) << 5;
    crc32c(&b)
}

/// Addresses BEP 42 leaves out: loopback, private, link-local (and unspecified).
pub fn exempt(ip: IpAddr) -> bool {
    crate::util::on_local_network(ip) || ip.is_unspecified()
}

/// An id for a node at `ip`, from 20 random bytes.
pub fn id_for(ip: IpAddr, random: [u8; 20]) -> Id {
    let mut id = random;
    let crc = prefix(ip, random[19]);
    id[0] = (crc >> 24) as u8;
    id[1] = (crc >> 16) as u8;
    id[2] = ((crc >> 8) as u8 & 0xf8) | (random[2] & 7);
    Id(id)
}

/// Whether `id` is a BEP 42 id for `ip` (an exempt address takes any id).
pub fn valid(id: &Id, ip: IpAddr) -> bool {
    if exempt(ip) {
        return true;
    }
    let crc = prefix(ip, id.0[19]);
    id.0[0] == (crc >> 24) as u8
        && id.0[1] == (crc >> 16) as u8
        && id.0[2] & 0xf8 == (crc >> 8) as u8 & 0xf8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> Id {
        Id(crate::util::hash_from_hex(hex).unwrap())
    }

    #[test]
    fn the_bep_s_test_vectors_hold() {
        // BEP 42's table: IP, the id (its last byte carries r).
        let vectors = [
            ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
            ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
            ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
            ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
            ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
        ];
        for (ip, hex) in vectors {
            let ip: IpAddr = ip.parse().unwrap();
            let want = id(hex);
            assert!(valid(&want, ip), "{ip}");
            // Made from the same random bytes, the id is the BEP's.
            assert_eq!(id_for(ip, want.0), want, "{ip}");
            // Another address does not fit it.
            assert!(!valid(&want, "1.2.3.4".parse().unwrap()));
        }
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn ipv6_ids_check_and_local_addresses_are_exempt() {
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let made = id_for(ip, [0x33; 20]);
        assert!(valid(&made, ip));
        assert!(!valid(&Id([0x33; 20]), ip));
        for local in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fd00::1"] {
            assert!(valid(&Id([0x33; 20]), local.parse().unwrap()), "{local}");
        }
    }
}
