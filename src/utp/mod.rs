//! uTP (BEP 29): BitTorrent over UDP with delay-based congestion control (LEDBAT), so that
//! it yields to other traffic. Sans-IO like the rest: [`packet`] is the codec, [`Stream`]
//! one connection's state machine; the host owns the UDP socket (shared with the DHT and
//! the UDP trackers) and hands each connection its datagrams by connection id.

pub mod packet;
mod stream;

pub use stream::{MAX_DATAGRAM, RECV_WINDOW, SEND_BUFFER, Stream, TARGET_DELAY, UtpError};
