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

/// [`connect`] for a peer connection: Nagle's algorithm off (`TCP_NODELAY`). The loop
/// already writes each peer's queued bytes in one call per pass, so Nagle would only hold
/// back the small messages (requests, haves) behind unacknowledged data.
pub fn connect_peer(addr: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let stream = connect(addr, bind)?;
    no_delay(&stream);
    Ok(stream)
}

/// Turns Nagle's algorithm off on a peer connection (best effort: a socket that refuses
/// still works, a little later).
pub fn no_delay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("TCP_NODELAY: {e}");
    }
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

/// Asks the kernel to queue ICMP errors of datagrams sent on `sock` (`IP_RECVERR`,
/// `IPV6_RECVERR`), so that a uTP SYN to a port where nothing listens fails at once, as a
/// refused TCP connect does, instead of after its resends. Best effort.
#[allow(unsafe_code)]
pub fn queue_icmp_errors(sock: &UdpSocket, v6: bool) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    // SAFETY: a valid descriptor, and an option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!("IP_RECVERR: {}", io::Error::last_os_error());
    }
}

/// Takes the ICMP errors queued on `sock` (see [`queue_icmp_errors`]): for each, the address
/// the failed datagram went to, when the error says nothing listens or nothing is reachable
/// there (other errors, such as a path MTU's, are taken and ignored).
#[allow(unsafe_code)]
pub fn icmp_unreachable(sock: &UdpSocket) -> Vec<SocketAddr> {
    use std::os::fd::AsRawFd;
    let mut found = Vec::new();
    // Bounded: the queue is the kernel's, and each entry is taken once.
    for _ in 0..256 {
        // SAFETY: zeroed plain C structs are valid values of these types.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut data = [0u8; 64];
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // usize with glibc, u32 with musl.
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: every pointer in `msg` points at a live buffer of the length given.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            break;
        }
        let mut errno = 0;
        // SAFETY: the kernel filled `control` up to `msg_controllen`; the CMSG macros walk
        // it within that length, and an IP_RECVERR message holds a sock_extended_err.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
                if (level == libc::IPPROTO_IP && ty == libc::IP_RECVERR)
                    || (level == libc::IPPROTO_IPV6 && ty == libc::IPV6_RECVERR)
                {
                    let e = libc::CMSG_DATA(c).cast::<libc::sock_extended_err>();
                    errno = std::ptr::read_unaligned(e).ee_errno as i32;
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let unreachable = [libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ENETUNREACH];
        if !unreachable.contains(&errno) {
            continue;
        }
        // SAFETY: the kernel wrote a socket address of the family it names into `name`,
        // which is large and aligned enough for either.
        let addr = unsafe {
            match i32::from(name.ss_family) {
                libc::AF_INET => {
                    let a = &*(&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                    let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
                }
                libc::AF_INET6 => {
                    let a = &*(&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                    let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                    Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
                }
                _ => None,
            }
        };
        found.extend(addr);
    }
    found
}

/// The IPv6 address this host would reach the IPv6 internet from, if it has a global one:
/// a UDP socket "connected" to a public address (no packet is sent) says which the routing
/// table picks.
pub fn global_ipv6() -> Option<std::net::Ipv6Addr> {
    let s = std::net::UdpSocket::bind("[::]:0").ok()?;
    // A well-known public resolver's address: only its route matters.
    s.connect("[2606:4700:4700::1111]:53").ok()?;
    match s.local_addr().ok()?.ip() {
        IpAddr::V6(ip) if is_global_v6(&ip) => Some(ip),
        _ => None,
    }
}

/// Not loopback, unspecified, link-local (fe80::/10), unique-local (fc00::/7) or an IPv4
/// mapping.
fn is_global_v6(ip: &std::net::Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || s[0] & 0xffc0 == 0xfe80
        || s[0] & 0xfe00 == 0xfc00
        || ip.to_ipv4_mapped().is_some())
}

/// Asks for larger buffers on the shared UDP socket (best effort; the system caps them):
/// uTP's datagrams arrive in bursts of a window, and one the buffer cannot hold is lost.
pub fn grow_udp_buffers(sock: &UdpSocket) {
    let s = socket2::SockRef::from(sock);
    for (what, r) in [
        ("receive", s.set_recv_buffer_size(4 << 20)),
        ("send", s.set_send_buffer_size(4 << 20)),
    ] {
        if let Err(e) = r {
            log::debug!("UDP {what} buffer: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_ipv6_addresses_are_told_to_trackers() {
        let g = |s: &str| is_global_v6(&s.parse().unwrap());
        assert!(g("2001:db8::1") && g("2a01:4f8::2"));
        assert!(!g("::1") && !g("::") && !g("fe80::1") && !g("fd00::5") && !g("::ffff:1.2.3.4"));
    }

    #[test]
    fn peer_connections_have_nagle_off_and_others_keep_it() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let peer = connect_peer(addr, Some("127.0.0.1".parse().unwrap())).unwrap();
        assert!(peer.nodelay().unwrap());
        let plain = connect(addr, None).unwrap();
        assert!(!plain.nodelay().unwrap());
    }
}
