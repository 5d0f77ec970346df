//! Just enough rtnetlink to configure one IPv4 interface: bring a link up,
//! add an address, replace the default route. Messages are built by hand
//! from the kernel's structures (`linux/netlink.h`, `linux/rtnetlink.h`,
//! `linux/if_link.h`, `linux/if_addr.h`), in host byte order except the
//! addresses, which are in network order.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_ERROR`: the kernel's answer to a request with `NLM_F_ACK`.
pub const NLMSG_ERROR: u16 = 2;
/// Message types from `linux/rtnetlink.h`.
pub const RTM_NEWLINK: u16 = 16;
/// Adds an address.
pub const RTM_NEWADDR: u16 = 20;
/// Adds a route.
pub const RTM_NEWROUTE: u16 = 24;
/// Flags from `linux/netlink.h`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// Ask for an acknowledgement (an `NLMSG_ERROR` with error 0).
pub const NLM_F_ACK: u16 = 0x4;
/// Replace an existing object.
pub const NLM_F_REPLACE: u16 = 0x100;
/// Fail with `EEXIST` if the object exists.
pub const NLM_F_EXCL: u16 = 0x200;
/// Create the object if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// `IFA_*` attributes of `linux/if_addr.h`.
pub const IFA_ADDRESS: u16 = 1;
/// The local address (the interface's own).
pub const IFA_LOCAL: u16 = 2;
/// The broadcast address.
pub const IFA_BROADCAST: u16 = 4;
/// `RTA_*` attributes of `linux/rtnetlink.h`.
pub const RTA_OIF: u16 = 4;
/// The gateway of a route.
pub const RTA_GATEWAY: u16 = 5;
/// `RT_TABLE_MAIN`.
pub const RT_TABLE_MAIN: u8 = 254;
/// `RTPROT_BOOT`: a route installed during boot (what `ip route` uses).
pub const RTPROT_BOOT: u8 = 3;
/// `RT_SCOPE_UNIVERSE`.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RTN_UNICAST`.
pub const RTN_UNICAST: u8 = 1;

/// How long to wait for the kernel's answer.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

fn push_header(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    out.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish()
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // pid: to the kernel
}

/// `struct rtattr` (len u16, type u16) and its payload, padded to 4 bytes.
fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_ne_bytes());
    out
}

/// `RTM_NEWLINK` setting `IFF_UP` on interface `index` (`ip link set up`).
pub fn link_up(seq: u32, index: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    push_header(&mut out, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
    out.push(libc::AF_UNSPEC as u8);
    out.push(0);
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(index as i32).to_ne_bytes());
    out.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    out.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    finish(out)
}

/// The broadcast address of `addr/prefix`, or `None` for /31 and /32,
/// which have none.
pub fn broadcast(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    (prefix <= 30).then(|| {
        let host_mask = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        Ipv4Addr::from(u32::from(addr) | host_mask)
    })
}

/// `RTM_NEWADDR` adding `addr/prefix` to interface `index`, with
/// `NLM_F_EXCL` so an address already there is reported as `EEXIST`.
pub fn new_address(seq: u32, index: u32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    push_header(&mut out, RTM_NEWADDR, flags, seq);
    // struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32.
    out.extend_from_slice(&[libc::AF_INET as u8, prefix, 0, RT_SCOPE_UNIVERSE]);
    out.extend_from_slice(&index.to_ne_bytes());
    push_attr(&mut out, IFA_LOCAL, &addr.octets());
    push_attr(&mut out, IFA_ADDRESS, &addr.octets());
    if let Some(brd) = broadcast(addr, prefix) {
        push_attr(&mut out, IFA_BROADCAST, &brd.octets());
    }
    finish(out)
}

/// `RTM_NEWROUTE` creating or replacing the default route via `gateway` on
/// interface `index` (`ip route replace default via GW dev DEV`).
pub fn default_route(seq: u32, index: u32, gateway: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(44);
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    push_header(&mut out, RTM_NEWROUTE, flags, seq);
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
    // type (u8 each), flags u32.
    out.extend_from_slice(&[
        libc::AF_INET as u8,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ]);
    out.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut out, RTA_GATEWAY, &gateway.octets());
    push_attr(&mut out, RTA_OIF, &index.to_ne_bytes());
    finish(out)
}

/// The kernel's verdict on request `seq` found in `buf` (one datagram):
/// `Some(Ok)` for an ACK, `Some(Err)` for an error, `None` if `buf` holds
/// no answer to `seq`.
pub fn parse_ack(buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let msg_seq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return None;
        }
        if kind == NLMSG_ERROR && msg_seq == seq && len >= NLMSG_HDRLEN + 4 {
            let error = i32::from_ne_bytes(rest[16..20].try_into().ok()?);
            return Some(match error {
                0 => Ok(()),
                e => Err(io::Error::from_raw_os_error(-e)),
            });
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    None
}

/// A `NETLINK_ROUTE` socket that sends one request at a time and waits for
/// its acknowledgement.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        crate::sockopt::set_receive_timeout(&fd, ACK_TIMEOUT)?;
        Ok(Self { fd, seq: 0 })
    }

    /// Sends the message `build(seq)` returns and waits for its ACK;
    /// a kernel error comes back as the matching `io::Error`.
    pub fn request(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msg = build(seq);
        // SAFETY: sends from a valid buffer; an unconnected netlink socket
        // sends to the kernel.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: receives into a valid buffer of the length given.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer from the kernel over netlink",
                        ))
                    }
                    _ => return Err(e),
                }
            }
            if let Some(verdict) = parse_ack(&buf[..n as usize], seq) {
                return verdict;
            }
        }
    }

    /// Brings interface `index` up.
    pub fn link_up(&mut self, index: u32) -> io::Result<()> {
        self.request(|seq| link_up(seq, index))
    }

    /// Adds `addr/prefix` to interface `index`. `Ok(false)`: it was there.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<bool> {
        match self.request(|seq| new_address(seq, index, addr, prefix)) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates or replaces the default route via `gateway` on `index`.
    pub fn replace_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        self.request(|seq| default_route(seq, index, gateway))
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn newlink_up_bytes() {
        #[rustfmt::skip]
        let expected: [u8; 32] = [
            // nlmsghdr: len 32, RTM_NEWLINK (16), REQUEST|ACK (0x5), seq 7, pid 0
            32, 0, 0, 0,  16, 0,  0x05, 0x00,  7, 0, 0, 0,  0, 0, 0, 0,
            // ifinfomsg: AF_UNSPEC, pad, type 0, index 3, flags IFF_UP, change IFF_UP
            0, 0, 0, 0,  3, 0, 0, 0,  1, 0, 0, 0,  1, 0, 0, 0,
        ];
        assert_eq!(link_up(7, 3), expected);
    }

    #[test]
    fn newaddr_bytes() {
        #[rustfmt::skip]
        let expected: [u8; 48] = [
            // nlmsghdr: len 48, RTM_NEWADDR (20), REQUEST|ACK|EXCL|CREATE (0x605), seq 1
            48, 0, 0, 0,  20, 0,  0x05, 0x06,  1, 0, 0, 0,  0, 0, 0, 0,
            // ifaddrmsg: AF_INET (2), prefixlen 24, flags 0, scope universe, index 2
            2, 24, 0, 0,  2, 0, 0, 0,
            // rtattr IFA_LOCAL (2), len 8: 172.16.0.2
            8, 0, 2, 0,  172, 16, 0, 2,
            // rtattr IFA_ADDRESS (1)
            8, 0, 1, 0,  172, 16, 0, 2,
            // rtattr IFA_BROADCAST (4): 172.16.0.255
            8, 0, 4, 0,  172, 16, 0, 255,
        ];
        assert_eq!(
            new_address(1, 2, "172.16.0.2".parse().unwrap(), 24),
            expected
        );
        // /32 and /31 have no broadcast address.
        let host = new_address(9, 2, "10.0.0.1".parse().unwrap(), 32);
        assert_eq!(host.len(), 40);
        assert_eq!(host[0], 40);
        assert_eq!(host[17], 32);
        assert_eq!(&host[32..], [8, 0, 1, 0, 10, 0, 0, 1]);
    }

    #[test]
    fn newroute_bytes() {
        #[rustfmt::skip]
        let expected: [u8; 44] = [
            // nlmsghdr: len 44, RTM_NEWROUTE (24), REQUEST|ACK|REPLACE|CREATE (0x505), seq 258
            44, 0, 0, 0,  24, 0,  0x05, 0x05,  2, 1, 0, 0,  0, 0, 0, 0,
            // rtmsg: AF_INET, dst_len 0, src_len 0, tos 0, table main (254),
            // proto boot (3), scope universe (0), type unicast (1), flags 0
            2, 0, 0, 0,  254, 3, 0, 1,  0, 0, 0, 0,
            // rtattr RTA_GATEWAY (5): 172.16.0.1
            8, 0, 5, 0,  172, 16, 0, 1,
            // rtattr RTA_OIF (4): index 2
            8, 0, 4, 0,  2, 0, 0, 0,
        ];
        assert_eq!(
            default_route(258, 2, "172.16.0.1".parse().unwrap()),
            expected
        );
    }

    #[test]
    fn broadcast_addresses() {
        let a: Ipv4Addr = "10.1.2.3".parse().unwrap();
        assert_eq!(broadcast(a, 8), Some("10.255.255.255".parse().unwrap()));
        assert_eq!(broadcast(a, 30), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(broadcast(a, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(broadcast(a, 31), None);
    }

    #[test]
    fn acks_and_errors() {
        // NLMSG_ERROR, len 36 (header + error + the original header), seq 5.
        let mut msg = vec![36, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&0i32.to_ne_bytes());
        msg.extend_from_slice(&[0; 16]);
        assert!(matches!(parse_ack(&msg, 5), Some(Ok(()))));
        assert!(parse_ack(&msg, 6).is_none());
        msg[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let err = parse_ack(&msg, 5).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        // A truncated or foreign message is no answer.
        assert!(parse_ack(&msg[..10], 5).is_none());
        let mut other = msg.clone();
        other[4] = 3; // NLMSG_DONE
        assert!(parse_ack(&other, 5).is_none());
        // The answer may follow another message in the same datagram.
        let mut both = other;
        both.extend_from_slice(&msg);
        assert_eq!(
            parse_ack(&both, 5).unwrap().unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
    }
}
