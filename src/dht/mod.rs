//! The mainline DHT (BEP 5): find peers of a torrent with no tracker, and be a good node
//! for others. Sans-IO throughout: [`krpc`] is the message codec, [`table`] the routing
//! table, [`store`] the peers announced to us and the tokens that guard announces, and
//! [`node`] the node that ties them together and runs lookups; the host moves its
//! datagrams over the process's one UDP socket. [`bep42`] ties node ids to addresses.

pub mod bep42;
pub mod krpc;
pub mod node;
pub mod store;
pub mod table;

pub use krpc::Id;
pub use node::{Event, Node};
