//! Sockets bound to a chosen local address (`--bind`): std and mio connect from whatever
//! address the kernel picks, so a socket2 socket is bound first, then connected without
//! blocking and handed to mio.

use mio::net::{TcpStream, UdpSocket};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Starts a nonblocking TCP connect to `addr`, from `bind` when given (port chosen by the
/// kernel). Finished when the stream is writable and `take_error` is clean.
pub fn connect(addr: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = bind else {
        return TcpStream::connect(addr);
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// A UDP socket on `bind` (or the unspecified address of `peer`'s family), port chosen by
/// the kernel.
pub fn udp(peer: SocketAddr, bind: Option<IpAddr>) -> io::Result<UdpSocket> {
    let ip = bind.unwrap_or(if peer.is_ipv6() {
        IpAddr::from([0u16; 8])
    } else {
        IpAddr::from([0u8; 4])
    });
    UdpSocket::bind(SocketAddr::new(ip, 0))
}
