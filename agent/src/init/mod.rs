//! banger-init: a static PID 1 for images that have no init of their own.
//!
//! It needs no tool from the image (no shell, kmod or iproute2) and never
//! calls NSS. As PID 1 it, in order, logging each step as `banger-init: ...`
//! on the console:
//!
//! 1. mounts `/proc`, `/sys`, `/dev`, `/dev/pts`, `/dev/shm`, `/run` and, if
//!    it is missing or not writable, `/tmp` ([`mounts`]);
//! 2. sets the host name from `ip=` or `/etc/hostname` ([`hostname`]);
//! 3. loads the modules of `modules-load.d` with `finit_module` ([`modules`]);
//! 4. applies the static `ip=` over rtnetlink and writes `/etc/resolv.conf`
//!    ([`network`], [`netlink`], [`cmdline`]);
//! 5. starts and restarts `banger-vsock-agent --port N` ([`services`]);
//! 6. runs the first-boot script while its marker exists (with `BANGER_INIT=1`);
//! 7. then starts and restarts `sshd -D -e` if it and host keys exist;
//! 8. runs the image's workload from `/etc/banger/init.json` ([`config`],
//!    [`workload`], [`accounts`], [`spawn`]) on the console;
//! 9. reaps every orphan;
//! 10. shuts down on SIGTERM, SIGINT (ctrl-alt-del), SIGUSR2 or SIGPWR
//!     ([`shutdown`], [`signals`], [`supervisor`]).
//!
//! Not as PID 1, `banger-init network` and `banger-init modules` run steps 4
//! and 3 alone ([`cli`]).

pub mod accounts;
pub mod cli;
pub mod cmdline;
pub mod config;
pub mod hostname;
pub mod log;
pub mod modules;
pub mod mounts;
pub mod netlink;
pub mod network;
pub mod pid1;
pub mod services;
pub mod shutdown;
pub mod signals;
pub mod spawn;
pub mod supervisor;
pub mod workload;
