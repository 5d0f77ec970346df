//! OpenRC (Alpine under busybox init, Debian's `openrc` under sysvinit):
//! openrc-run scripts in `/etc/init.d` and the runlevel links
//! `rc-update add NAME default` makes.
//!
//! `rc-update add` (librc's `rc_service_add`, OpenRC 0.45) links
//! `/etc/runlevels/RUNLEVEL/NAME` to the path `rc_service_resolve` gives,
//! which for a script in `/etc/init.d` is the absolute `/etc/init.d/NAME`,
//! and does nothing when the link exists already. All three services go
//! into `default`.
//!
//! Dependencies (`assets/openrc/`):
//!
//! * banger-network `provide net`: it is what configures the guest's
//!   network, so the services that `need net` (Alpine's sshd among them)
//!   wait for it even in images whose own `networking` has nothing to
//!   configure. It is `after modules` (OpenRC's service that loads
//!   `/etc/modules-load.d`).
//! * banger-vsock-agent runs under start-stop-daemon with a pidfile; not
//!   under supervise-daemon, which would restart it after exit 69.
//! * banger-first-boot: `after banger-network`, `before sshd ssh`,
//!   `keyword -timeout` (it may take minutes).
//!
//! On Debian, `update-rc.d` would also run insserv to keep `/etc/rc?.d` in
//! step; those links are unused while OpenRC boots the system (Debian's
//! openrc replaces `/etc/init.d/rc`), so banger leaves them alone.
//!
//! When no enabled OpenRC `modules` service loads `/etc/modules-load.d`
//! (Debian's openrc ships none), the network script and the agent's
//! `start_pre` run `banger-init modules` first.

use super::files::{list_sorted, read_file, resolve, ImageFiles};
use super::{fill, ServiceFile, MODE_EXEC, SERVICE_NAMES};

/// Where the scripts go.
pub const INIT_D: &str = "/etc/init.d";
/// The runlevel the services are added to.
pub const RUNLEVEL: &str = "default";

const NETWORK: &str = include_str!("../../assets/openrc/banger-network");
const AGENT: &str = include_str!("../../assets/openrc/banger-vsock-agent");
const FIRST_BOOT: &str = include_str!("../../assets/openrc/banger-first-boot");

/// The script templates, by name, in [`SERVICE_NAMES`] order.
pub(super) const TEMPLATES: [(&str, &str); 3] = [
    (SERVICE_NAMES[0], NETWORK),
    (SERVICE_NAMES[1], AGENT),
    (SERVICE_NAMES[2], FIRST_BOOT),
];

/// Scripts and runlevel links for an OpenRC image.
pub(super) fn service_files(files: &mut dyn ImageFiles, vsock_port: u32) -> Vec<ServiceFile> {
    let load_modules = !modules_service_enabled(files);
    let mut out = Vec::new();
    for (name, template) in TEMPLATES {
        let path = format!("{INIT_D}/{name}");
        out.push(ServiceFile::file(
            path,
            MODE_EXEC,
            fill(template, vsock_port, load_modules),
        ));
    }
    for name in SERVICE_NAMES {
        let link = format!("/etc/runlevels/{RUNLEVEL}/{name}");
        // rc-update leaves an existing entry alone ("already installed").
        if files.entry(&link).is_none() {
            out.push(ServiceFile::symlink(link, format!("{INIT_D}/{name}")));
        }
    }
    out
}

/// Whether OpenRC's `modules` service (which `provide modules-load` and
/// reads `/etc/modules-load.d`) exists and is in some runlevel.
pub(super) fn modules_service_enabled(files: &mut dyn ImageFiles) -> bool {
    let loads = read_file(files, "/etc/init.d/modules", 1 << 20)
        .is_some_and(|b| b.windows(14).any(|w| w == b"modules-load.d"));
    loads
        && list_sorted(files, "/etc/runlevels")
            .iter()
            .any(|level| resolve(files, &format!("/etc/runlevels/{level}/modules")).is_ok())
}

#[cfg(test)]
mod tests {
    use super::super::files::MemFiles;
    use super::super::ServiceContent;
    use super::*;

    #[test]
    fn scripts_and_absolute_runlevel_links() {
        let mut files = MemFiles::new();
        files.dir("/etc/runlevels/default");
        files.symlink(
            "/etc/runlevels/default/banger-vsock-agent",
            "/etc/init.d/banger-vsock-agent",
        );
        let out = service_files(&mut files, 52);
        let links: Vec<_> = out
            .iter()
            .filter_map(|f| match &f.content {
                ServiceContent::Symlink(t) => Some((f.path.clone(), t.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            links,
            [
                (
                    "/etc/runlevels/default/banger-network".to_owned(),
                    "/etc/init.d/banger-network".to_owned()
                ),
                (
                    "/etc/runlevels/default/banger-first-boot".to_owned(),
                    "/etc/init.d/banger-first-boot".to_owned()
                ),
            ]
        );
        let agent = out
            .iter()
            .find(|f| f.path == "/etc/init.d/banger-vsock-agent")
            .unwrap();
        let ServiceContent::File(b) = &agent.content else {
            panic!()
        };
        let text = String::from_utf8_lossy(b);
        assert!(text.starts_with("#!/sbin/openrc-run\n"));
        assert!(text.contains("command_args=\"--port 52\"\n"));
        assert!(text.contains("load_modules=yes\n"));
    }

    #[test]
    fn an_enabled_modules_service_loads_the_modules() {
        let mut files = MemFiles::new();
        files.exec(
            "/etc/init.d/modules",
            "local dirs=\"/usr/lib/modules-load.d /run/modules-load.d /etc/modules-load.d\"\n",
        );
        assert!(!modules_service_enabled(&mut files));
        files.symlink("/etc/runlevels/boot/modules", "/etc/init.d/modules");
        assert!(modules_service_enabled(&mut files));
    }
}
