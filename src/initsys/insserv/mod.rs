//! What `update-rc.d NAME defaults` does to a Debian image, computed
//! without running it.
//!
//! On Debian bookworm, `update-rc.d` (init-system-helpers 1.65) hands every
//! `defaults` call to `insserv -f NAME` when insserv is installed (its
//! `create_sequence` always passes `-f`: `my $force = (@_)` counts its
//! arguments). insserv 1.24 then recomputes the whole boot order from the
//! LSB headers of *every* script in `/etc/init.d`, enabled or not, and
//!
//! * creates the links of `NAME` in its `Default-Start` (`S<order>NAME`) and
//!   `Default-Stop` (`K<order>NAME`) runlevels, all `../init.d/NAME`;
//! * renames any other script's link whose number no longer matches (a
//!   `$all` script such as `rc.local` moves when a new script makes the
//!   chain longer), and deletes dangling `[SK]NN` links;
//! * rewrites `/etc/init.d/.depend.{boot,start,stop}`, the makefiles
//!   `startpar` uses for the concurrent boot that sysv-rc's `/etc/init.d/rc`
//!   runs by default (`CONCURRENCY=makefile` whenever the three files are
//!   non-empty). Without them a new script would never be started. Debian
//!   builds insserv with `MINIMAL_MAKE`, `MINIMAL_RULES` and
//!   `MINIMAL_DEPEND` (the files it writes show it: unlinked scripts are
//!   missing, and `$remote_fs` yields `mountnfs.sh` but not the
//!   `mountall.sh` that `mountnfs.sh` itself requires); see [`output`].
//!
//! Numbers are the depth in the dependency graph, counted only between
//! scripts sharing a runlevel (so rcS does not push rc2 numbers up). The
//! graph and ordering code is a port of insserv's (see [`order`]), so the
//! result is what insserv writes, renumbering included; `-f` means missing
//! required services and loops are not fatal, as in insserv.
//!
//! Without insserv, `update-rc.d` falls back to plain `S01NAME`/`K01NAME`
//! links when the script has none yet; see `crate::initsys::sysvinit`.
//!
//! Not ported, because Debian images do not need them: the requirements
//! insserv guesses for a script without `Provides` from its current link
//! numbers (such a script is ordered as if it required nothing), upstart
//! jobs (`/lib/init/upstart-job` links) and systemd's view of services
//! (insserv asks systemd over D-Bus, which is not running in an image).
//! Where insserv's result depends on `readdir` order, this follows the
//! order [`ImageFiles::list_dir`] gives.

mod graph;
mod load;
mod order;
mod output;

use super::files::{list_as_given, resolve, EntryKind, ImageFiles};
use super::lsb::{tokens, LsbHeader};
use super::InitSysError;
use graph::{serv, Graph, MAX_DEEP};
pub(crate) use load::NewScript;
use load::{add_requirements, file_filters, filtered_suffix, script_header, str2lvl};

/// The changes `update-rc.d NAME defaults` makes, for every new script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RcPlan {
    /// Links deleted: renumbered or dangling (absolute paths).
    pub remove: Vec<String>,
    /// Links created: path and target (`../init.d/NAME`).
    pub links: Vec<(String, String)>,
    /// `/etc/init.d/.depend.*` files and their new contents.
    pub depend: Vec<(String, Vec<u8>)>,
    /// What insserv would have printed (loops, missing facilities).
    pub warnings: Vec<String>,
}

/// Where the scripts live.
const INIT_D: &str = "/etc/init.d";

/// Scripts insserv never orders, by name or prefix.
fn ignored_name(name: &str) -> bool {
    ["README", "Makefile", "skeleton", "powerfail"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["core", "rx", "rcS", "rc"].contains(&name)
        || name.ends_with('~')
        || name.starts_with(|c: char| "$.#%_+-\\*[]^:()~".contains(c))
}

/// The changes `update-rc.d NAME defaults`, run for each of `ours` in
/// order, would make to the image once `ours` are in `/etc/init.d`.
pub(crate) fn update_rc_d(
    files: &mut dyn ImageFiles,
    ours: &[NewScript<'_>],
) -> Result<RcPlan, InitSysError> {
    let mut g = Graph::default();
    load::load_conf(&mut g, files);
    let (entries, dangling) = load::scan_links(&mut g, files);
    g.clear_all();
    let filters = file_filters(files);

    // The scripts on the command line are registered first.
    for new in ours {
        let path = format!("{INIT_D}/{}", new.name);
        let (h, _) = script_header(files, new.name, Some(new.text), &path);
        let provides = h.provides.clone().filter(|p| !p.is_empty());
        let provides = provides.unwrap_or_else(|| new.name.to_owned());
        let mut first = None;
        for token in tokens(&provides) {
            if token.starts_with('$') || token.starts_with('#') {
                continue;
            }
            let s = g.add_service(token);
            match first {
                Some(f) => g.nick_service(f, s),
                None => first = Some(s),
            }
            g.services[s].flags |= serv::CMDLINE;
        }
    }

    let init_d = resolve(files, INIT_D).map_or_else(|_| INIT_D.to_owned(), |r| r.path);
    let mut names: Vec<String> = ours.iter().map(|n| n.name.to_owned()).collect();
    for name in list_as_given(files, &init_d) {
        if !names.contains(&name) && script_file(files, &init_d, &name, &filters) {
            names.push(name);
        }
    }
    for name in &names {
        let own = ours.iter().find(|n| n.name == name);
        let path = format!("{init_d}/{name}");
        let (mut h, openrc) = script_header(files, name, own.map(|n| n.text), &path);
        if !openrc && h == LsbHeader::default() {
            g.warnings.push(format!("script '{name}' missing LSB tags"));
        } else if !openrc && h.incomplete() {
            g.warnings
                .push(format!("script {name} is broken: incomplete LSB comment"));
        }
        if openrc {
            // insserv's defaults for OpenRC scripts.
            h.required_start = Some("$remote_fs $syslog".into());
            h.required_stop = Some("$remote_fs $syslog".into());
            h.default_start = Some("2 3 4 5".into());
            h.default_stop = Some("0 1 6".into());
        }
        let provides = h.provides.clone().filter(|p| !p.is_empty());
        let provides = provides.unwrap_or_else(|| name.clone());
        let mut first = None;
        let mut last = None;
        for token in tokens(&provides) {
            if token.starts_with('$') || token.starts_with('#') {
                continue;
            }
            let s = g.add_service(token);
            last = Some(s);
            match first {
                Some(f) => g.nick_service(f, s),
                None => first = Some(s),
            }
            if !g.make_prov(s, name) {
                if own.is_some() {
                    let other = g.dirs[g.services[s].dir].script.clone();
                    return Err(InitSysError::AlreadyProvided {
                        service: token.to_owned(),
                        script: other.unwrap_or_default(),
                    });
                }
                g.warnings
                    .push(format!("script {name}: service {token} already provided!"));
                continue;
            }
            let known = g.services[s].flags & serv::KNOWN != 0;
            g.services[s].flags |= serv::KNOWN;
            if !known {
                add_requirements(&mut g, s, &h, false);
            }
            if let Some(v) = h.start_before.clone().filter(|v| !v.is_empty()) {
                g.reverse_req(s, graph::req::SHLD, &v);
            }
            if let Some(v) = h.stop_after.clone().filter(|v| !v.is_empty()) {
                g.reverse_req(s, graph::req::SHLD | graph::req::KILL, &v);
            }
        }
        // Enabled scripts keep the runlevels of their links; the others
        // get their defaults.
        if let Some(s) = last {
            let o = g.orig(s);
            if g.services[o].flags & serv::ENABLED == 0 {
                let d = g.services[o].dir;
                if let Some(v) = h.default_start.as_deref() {
                    g.dirs[d].start.lvl |= str2lvl(v);
                }
                if let Some(v) = h.default_stop.as_deref() {
                    g.dirs[d].stop.lvl |= str2lvl(v);
                }
            }
        }
    }
    g.clear_all();

    let mut max = order::MaxOrder::default();
    order::all_script(&mut g, &mut max);
    order::follow_all(&mut g, &mut max);
    order::active_script(&mut g, &mut max);
    if max.start > MAX_DEEP || max.stop > MAX_DEEP {
        return Err(InitSysError::TooDeep);
    }
    let ours: Vec<&str> = ours.iter().map(|n| n.name).collect();
    let mut plan = output::links(&g, &entries, &ours);
    let linked = output::linked_scripts(&entries, &plan);
    plan.remove.splice(0..0, dangling);
    plan.depend = output::depend_files(
        &g,
        &output::DependInput {
            linked: &linked,
            max,
        },
    );
    plan.warnings = std::mem::take(&mut g.warnings);
    Ok(plan)
}

/// insserv's checks on an `/etc/init.d` entry: an executable regular file,
/// or a symlink with a `/` in its target to one, whose name is not one of
/// the skipped ones.
fn script_file(files: &mut dyn ImageFiles, dir: &str, name: &str, filters: &[String]) -> bool {
    if name.starts_with('.') || ignored_name(name) || filtered_suffix(name, filters) {
        return false;
    }
    let path = format!("{dir}/{name}");
    match files.entry(&path) {
        Some(EntryKind::File { mode }) => mode & 0o100 != 0,
        Some(EntryKind::Symlink(target)) => {
            if name != "reboot" && !target.contains('/') {
                return false;
            }
            matches!(resolve(files, &path), Ok(r) if matches!(r.kind, EntryKind::File { mode } if mode & 0o100 != 0))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::files::MemFiles;
    use super::*;

    fn script(provides: &str, start: &str, req: &str, levels: &str) -> String {
        format!(
            "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: {provides}\n# Required-Start: {req}\n\
             # Required-Stop:\n# Should-Start: {start}\n# Default-Start: {levels}\n\
             # Default-Stop:\n### END INIT INFO\n"
        )
    }

    /// The rc2 part of Debian bookworm's sysvinit tree (rmnologin and
    /// bootlogs at S01, rc.local with `$all` at S02) and the numbers
    /// `update-rc.d` gave there for banger's scripts in
    /// `tests/init_systems.rs`: rc.local moves to S03.
    #[test]
    fn a_longer_chain_renumbers_the_all_script() {
        let mut files = MemFiles::new();
        files
            .exec("/sbin/insserv", "")
            .file("/etc/insserv.conf", "$local_fs +mountall\n");
        for (name, text) in [
            ("rmnologin", script("rmnologin", "", "$local_fs", "2 3 4 5")),
            ("bootlogs", script("bootlogs", "", "$local_fs", "2 3 4 5")),
            ("rc.local", script("rc.local", "", "$all", "2 3 4 5")),
        ] {
            files.exec(&format!("/etc/init.d/{name}"), text);
        }
        for level in 2..=5 {
            for link in ["S01rmnologin", "S01bootlogs", "S02rc.local"] {
                let target = format!("../init.d/{}", &link[3..]);
                files.symlink(&format!("/etc/rc{level}.d/{link}"), &target);
            }
        }
        let network = script("banger-network", "", "$local_fs", "2 3 4 5");
        let first = script("banger-first-boot", "", "banger-network", "2 3 4 5");
        let plan = update_rc_d(
            &mut files,
            &[
                NewScript {
                    name: "banger-network",
                    text: network.as_bytes(),
                },
                NewScript {
                    name: "banger-first-boot",
                    text: first.as_bytes(),
                },
            ],
        )
        .unwrap();
        assert!(plan.remove.contains(&"/etc/rc2.d/S02rc.local".to_owned()));
        for (path, target) in [
            ("/etc/rc2.d/S03rc.local", "../init.d/rc.local"),
            ("/etc/rc2.d/S01banger-network", "../init.d/banger-network"),
            (
                "/etc/rc2.d/S02banger-first-boot",
                "../init.d/banger-first-boot",
            ),
        ] {
            assert!(
                plan.links.contains(&(path.to_owned(), target.to_owned())),
                "{path}: {plan:?}"
            );
        }
        let start = String::from_utf8(plan.depend[1].1.clone()).unwrap();
        assert!(
            start.contains("banger-first-boot: banger-network\n"),
            "{start}"
        );
        assert!(start.starts_with("TARGETS ="), "{start}");
    }
}
