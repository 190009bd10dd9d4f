//! The Transmission RPC (transmission's `docs/rpc-spec.md`, rpc-version 16 as Transmission
//! 3.00 speaks it), sans-IO: [`http`] reads requests and writes responses, [`server`] does
//! what Transmission does before a request reaches a method (the `Host` check against DNS
//! rebinding, HTTP basic auth, the `X-Transmission-Session-Id` handshake) and frames the
//! JSON replies, and [`call`] turns a request's JSON into a typed [`call::Call`]. The
//! daemon (`crate::daemon`) carries calls out on its torrents.

pub mod call;
pub mod http;
pub mod server;

/// The rpc-version we speak (Transmission 3.00's).
pub const RPC_VERSION: i64 = 16;
/// The oldest rpc-version whose clients we serve.
pub const RPC_VERSION_MIN: i64 = 1;
