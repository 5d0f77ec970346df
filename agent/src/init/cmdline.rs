//! The kernel command line: parameters split as the kernel splits them,
//! `ip=` in its static form, and banger's own `banger.*` parameters.

use std::fmt;
use std::net::Ipv4Addr;

/// The parameters of a kernel command line, in order. Words after `--` are
/// the init's arguments, not parameters, and are left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cmdline {
    params: Vec<(String, Option<String>)>,
}

impl Cmdline {
    /// Splits `text` (the contents of `/proc/cmdline`) like the kernel's
    /// `next_arg()`: whitespace separates parameters except inside double
    /// quotes; a quoted value (`a="b c"`) or a wholly quoted parameter
    /// (`"a=b c"`) loses its quotes.
    pub fn parse(text: &str) -> Self {
        let mut params = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let (word, tail) = split_word(rest);
            rest = tail.trim_start();
            if word == "--" {
                break;
            }
            params.push(unquote(word));
        }
        Self { params }
    }

    /// The value of the last `key=value` (the kernel's and systemd's rule
    /// for repeated parameters). A parameter without `=` has the value
    /// `""`. Dashes and underscores in names are equivalent, as in the
    /// kernel's `parameq()`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(name, _)| same_name(name, key))
            .map(|(_, value)| value.as_deref().unwrap_or(""))
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(name, _)| same_name(name, key))
            .map(|(_, value)| value.as_deref().unwrap_or(""))
    }

    /// `banger.NAME`, e.g. `banger("workload_exit")`.
    pub fn banger(&self, name: &str) -> Option<&str> {
        self.get(&format!("banger.{name}"))
    }

    /// What to do when the workload exits (`banger.workload_exit=`).
    pub fn workload_exit(&self) -> WorkloadExit {
        match self.banger("workload_exit") {
            Some("poweroff") => WorkloadExit::PowerOff,
            _ => WorkloadExit::StayUp,
        }
    }

    /// Module names from systemd's `modules_load=` (also spelled
    /// `modules-load=`), comma-separated, every occurrence.
    pub fn modules_load(&self) -> Vec<String> {
        self.all("modules_load")
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The parsed `ip=` (the last one wins, as in the kernel), or `None`
    /// without one.
    pub fn ip(&self) -> Option<Result<IpSpec, IpError>> {
        self.get("ip").map(parse_ip)
    }
}

/// What banger-init does when the workload exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadExit {
    /// Log the status and keep the guest running (the default).
    StayUp,
    /// Shut the guest down (`banger.workload_exit=poweroff`).
    PowerOff,
}

fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_')))
}

/// The first word of `text` (which starts with a non-space) and the rest.
fn split_word(text: &str) -> (&str, &str) {
    let bytes = text.as_bytes();
    let mut in_quote = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() && !in_quote {
            break;
        }
        if b == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    (&text[..i], &text[i..])
}

/// `name=value` with the kernel's quote stripping: a leading quote of the
/// whole word or of the value, and the matching trailing quote.
fn unquote(word: &str) -> (String, Option<String>) {
    let (word, quoted) = match word.strip_prefix('"') {
        Some(rest) => (rest, true),
        None => (word, false),
    };
    let strip_end = |s: &str| s.strip_suffix('"').unwrap_or(s).to_owned();
    match word.split_once('=') {
        None if quoted => (strip_end(word), None),
        None => (word.to_owned(), None),
        Some((name, value)) => match value.strip_prefix('"') {
            Some(value) => (name.to_owned(), Some(strip_end(value))),
            None if quoted => (name.to_owned(), Some(strip_end(value))),
            None => (name.to_owned(), Some(value.to_owned())),
        },
    }
}

/// What an `ip=` parameter asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum IpSpec {
    /// No colon: `dhcp`, `on`, `off`, ... Not a static configuration; left
    /// to the kernel or a DHCP client.
    NotStatic(String),
    /// The autoconf field is neither `off`, `none` nor empty: left to a
    /// DHCP client.
    Autoconf(String),
    /// A static configuration.
    Static(StaticIp),
}

/// The static form
/// `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticIp {
    /// The guest's address.
    pub client: Ipv4Addr,
    /// Prefix length from the netmask, or the classful default.
    pub prefix: u8,
    /// The default gateway; `None` adds no default route.
    pub gateway: Option<Ipv4Addr>,
    /// The host name; `None` when empty.
    pub hostname: Option<String>,
    /// The interface; `None` means the first one other than `lo`.
    pub device: Option<String>,
    /// dns0 and dns1, those given.
    pub dns: Vec<Ipv4Addr>,
}

/// Why an `ip=` cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpError {
    /// The client field is not an IPv4 address.
    BadClient(String),
    /// The netmask field is not a contiguous dotted netmask.
    BadNetmask(String),
    /// A non-empty gateway field that is not an IPv4 address.
    BadGateway(String),
    /// A non-empty dns field that is not an IPv4 address.
    BadDns(String),
}

impl fmt::Display for IpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadClient(s) => write!(f, "ip= has no valid client address: {s:?}"),
            Self::BadNetmask(s) => write!(f, "ip= has an invalid netmask {s:?}"),
            Self::BadGateway(s) => write!(f, "ip= has an invalid gateway {s:?}"),
            Self::BadDns(s) => write!(f, "ip= has an invalid dns server {s:?}"),
        }
    }
}

impl std::error::Error for IpError {}

/// Parses the value of `ip=` with the semantics of
/// `assets/banger-network.sh`: the server field is ignored; an empty or
/// `0.0.0.0` gateway or dns server means none; an empty netmask gets the
/// classful default; fields past the ninth are ignored.
pub fn parse_ip(spec: &str) -> Result<IpSpec, IpError> {
    if !spec.contains(':') {
        return Ok(IpSpec::NotStatic(spec.to_owned()));
    }
    let fields: Vec<&str> = spec.split(':').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let autoconf = field(6);
    if !matches!(autoconf, "" | "off" | "none") {
        return Ok(IpSpec::Autoconf(autoconf.to_owned()));
    }
    let client = match field(0).parse::<Ipv4Addr>() {
        Ok(addr) if !addr.is_unspecified() => addr,
        _ => return Err(IpError::BadClient(field(0).to_owned())),
    };
    let prefix = match field(3) {
        "" => classful_prefix(client),
        mask => netmask_prefix(mask).ok_or_else(|| IpError::BadNetmask(mask.to_owned()))?,
    };
    let gateway = optional_address(field(2)).map_err(IpError::BadGateway)?;
    let mut dns = Vec::new();
    for i in [7, 8] {
        if let Some(addr) = optional_address(field(i)).map_err(IpError::BadDns)? {
            dns.push(addr);
        }
    }
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(IpSpec::Static(StaticIp {
        client,
        prefix,
        gateway,
        hostname: non_empty(field(4)),
        device: non_empty(field(5)),
        dns,
    }))
}

/// `""` and `0.0.0.0` are no address; anything else must parse.
fn optional_address(field: &str) -> Result<Option<Ipv4Addr>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    match field.parse::<Ipv4Addr>() {
        Ok(addr) if addr.is_unspecified() => Ok(None),
        Ok(addr) => Ok(Some(addr)),
        Err(_) => Err(field.to_owned()),
    }
}

/// The prefix length of a dotted netmask such as `255.255.240.0`, or
/// `None` if it is not one (ones after a zero bit, not four octets).
pub fn netmask_prefix(mask: &str) -> Option<u8> {
    let bits = u32::from(mask.parse::<Ipv4Addr>().ok()?);
    let prefix = bits.leading_ones();
    // All ones must come first: the rest must be zero.
    (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
}

/// The kernel's default for an empty netmask: by address class.
pub fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn static_ip(spec: &str) -> StaticIp {
        match parse_ip(spec) {
            Ok(IpSpec::Static(ip)) => ip,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn every_field_of_the_static_form() {
        let ip = static_ip(
            "172.16.0.2:172.16.0.9:172.16.0.1:255.255.255.0:vm1:eth0:off:1.1.1.1:8.8.8.8",
        );
        assert_eq!(
            ip,
            StaticIp {
                client: addr("172.16.0.2"),
                prefix: 24,
                gateway: Some(addr("172.16.0.1")),
                hostname: Some("vm1".into()),
                device: Some("eth0".into()),
                dns: vec![addr("1.1.1.1"), addr("8.8.8.8")],
            }
        );
    }

    #[test]
    fn empty_fields_mean_none_or_defaults() {
        let ip = static_ip("10.0.0.5::::::");
        assert_eq!(
            ip,
            StaticIp {
                client: addr("10.0.0.5"),
                prefix: 8,
                gateway: None,
                hostname: None,
                device: None,
                dns: vec![],
            }
        );
        // Short forms, a 0.0.0.0 gateway, only dns1, autoconf none.
        let ip = static_ip("192.168.1.7::0.0.0.0:255.255.255.128::ens3:none::9.9.9.9");
        assert_eq!(ip.prefix, 25);
        assert_eq!(ip.gateway, None);
        assert_eq!(ip.device.as_deref(), Some("ens3"));
        assert_eq!(ip.dns, vec![addr("9.9.9.9")]);
        assert_eq!(static_ip("192.168.1.7:").prefix, 24);
        // A tenth field (the kernel's ntp server) is ignored.
        assert_eq!(
            static_ip("10.1.1.1:::::::::1.2.3.4").dns,
            Vec::<Ipv4Addr>::new()
        );
    }

    #[test]
    fn classful_masks() {
        for (client, prefix) in [
            ("1.2.3.4", 8),
            ("127.0.0.2", 8),
            ("128.0.0.1", 16),
            ("172.16.0.2", 16),
            ("191.255.0.1", 16),
            ("192.168.0.1", 24),
            ("223.1.1.1", 24),
        ] {
            assert_eq!(
                static_ip(&format!("{client}::::")).prefix,
                prefix,
                "{client}"
            );
        }
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.255.255"), Some(32));
        assert_eq!(netmask_prefix("255.255.255.254"), Some(31));
        assert_eq!(netmask_prefix("255.255.240.0"), Some(20));
        assert_eq!(netmask_prefix("128.0.0.0"), Some(1));
        assert_eq!(netmask_prefix("0.0.0.0"), Some(0));
        for bad in [
            "255.0.255.0",
            "255.255.255.1",
            "255.255.255",
            "255.255.255.0.0",
            "ff",
            "256.0.0.0",
            "0.255.255.255",
        ] {
            assert_eq!(netmask_prefix(bad), None, "{bad}");
        }
        assert_eq!(
            parse_ip("10.0.0.2::10.0.0.1:255.0.255.0:::off"),
            Err(IpError::BadNetmask("255.0.255.0".into()))
        );
    }

    #[test]
    fn bad_addresses_are_errors() {
        assert_eq!(parse_ip(":::"), Err(IpError::BadClient("".into())));
        assert_eq!(
            parse_ip("0.0.0.0::"),
            Err(IpError::BadClient("0.0.0.0".into()))
        );
        assert_eq!(
            parse_ip("10.0.0.256::"),
            Err(IpError::BadClient("10.0.0.256".into()))
        );
        assert_eq!(
            parse_ip("10.0.0.2::10.0.0:::"),
            Err(IpError::BadGateway("10.0.0".into()))
        );
        assert_eq!(
            parse_ip("10.0.0.2:::::::dns.example"),
            Err(IpError::BadDns("dns.example".into()))
        );
    }

    #[test]
    fn dhcp_and_autoconf_are_left_alone() {
        for spec in ["dhcp", "on", "off", "none", "any", ""] {
            assert_eq!(parse_ip(spec), Ok(IpSpec::NotStatic(spec.into())));
        }
        assert_eq!(
            parse_ip("10.0.0.2::10.0.0.1:255.0.0.0:vm:eth0:dhcp"),
            Ok(IpSpec::Autoconf("dhcp".into()))
        );
        assert_eq!(
            parse_ip(":::::eth0:both"),
            Ok(IpSpec::Autoconf("both".into()))
        );
    }

    #[test]
    fn the_last_ip_wins() {
        let cmdline = Cmdline::parse(
            "console=ttyS0 ip=10.0.0.2:::::: root=/dev/vda ip=192.168.0.9::192.168.0.1:255.255.255.0::: quiet\n",
        );
        let Some(Ok(IpSpec::Static(ip))) = cmdline.ip() else {
            panic!("{cmdline:?}")
        };
        assert_eq!(ip.client, addr("192.168.0.9"));
        assert_eq!(ip.gateway, Some(addr("192.168.0.1")));
        assert_eq!(Cmdline::parse("root=/dev/vda rw").ip(), None);
    }

    #[test]
    fn banger_params_and_name_equivalence() {
        let cmdline = Cmdline::parse("banger.workload_exit=poweroff banger.flag quiet");
        assert_eq!(cmdline.workload_exit(), WorkloadExit::PowerOff);
        assert_eq!(cmdline.banger("flag"), Some(""));
        assert_eq!(cmdline.banger("missing"), None);
        assert_eq!(cmdline.get("quiet"), Some(""));
        let cmdline = Cmdline::parse("banger.workload-exit=poweroff banger.workload_exit=stay");
        assert_eq!(cmdline.workload_exit(), WorkloadExit::StayUp);
        let cmdline = Cmdline::parse("banger.workload-exit=poweroff");
        assert_eq!(cmdline.workload_exit(), WorkloadExit::PowerOff);
        assert_eq!(Cmdline::parse("").workload_exit(), WorkloadExit::StayUp);
        let cmdline = Cmdline::parse("modules_load=a,b modules-load=c,, x=1");
        assert_eq!(cmdline.modules_load(), ["a", "b", "c"]);
    }

    #[test]
    fn quoting_and_the_init_arguments() {
        let cmdline = Cmdline::parse(
            "a=\"b c\"  \"d=e f\" g=h\"i j\"k \"lone word\" banger.x=\"\" -- banger.workload_exit=poweroff",
        );
        assert_eq!(cmdline.get("a"), Some("b c"));
        assert_eq!(cmdline.get("d"), Some("e f"));
        // A quote inside a value only keeps spaces together.
        assert_eq!(cmdline.get("g"), Some("h\"i j\"k"));
        assert_eq!(cmdline.get("lone word"), Some(""));
        assert_eq!(cmdline.banger("x"), Some(""));
        // After `--` come the init's arguments, not parameters.
        assert_eq!(cmdline.workload_exit(), WorkloadExit::StayUp);
        // An unterminated quote runs to the end.
        assert_eq!(Cmdline::parse("a=\"b c").get("a"), Some("b c"));
        assert_eq!(Cmdline::parse("\t\n").params, vec![]);
    }
}
