//! What insserv writes once the order is known: the `/etc/rc?.d` links and
//! the `/etc/init.d/.depend.*` makefiles for startpar.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use super::graph::{serv, Graph, Mode, Req, LVL_ALL, LVL_BOOT, LVL_NORM};
use super::load::{rc_dir, RcEntry, RUNLEVELS};
use super::order::MaxOrder;
use super::RcPlan;

/// The link changes, Debian scheme: in each runlevel a script gets a `K`
/// link if it stops there, else an `S` link if it starts there; never a
/// `K` link in rcS. Other scripts' links are renumbered when wrong; new
/// links are made for `ours` only.
pub(super) fn links(g: &Graph, entries: &[RcEntry], ours: &[&str]) -> RcPlan {
    let mut plan = RcPlan::default();
    for (level, &(key, bit)) in RUNLEVELS.iter().enumerate() {
        let dir = rc_dir(key);
        let seek = if bit == LVL_BOOT { LVL_BOOT } else { LVL_NORM };
        let mut present: Vec<&RcEntry> = entries.iter().filter(|e| e.level == level).collect();
        if bit == LVL_BOOT {
            // `notincluded`: rcS links of a script that no longer starts
            // (or stops) in rcS go.
            present.retain(|e| {
                let stale = g.order.iter().any(|&d| {
                    let h = if e.kind == 'K' {
                        &g.dirs[d].stop
                    } else {
                        &g.dirs[d].start
                    };
                    h.lvl & bit == 0 && g.dirs[d].script.as_deref() == Some(e.script.as_str())
                });
                if stale {
                    plan.remove.push(format!("{dir}/{}", e.file));
                }
                !stale
            });
        }
        let mut made = BTreeSet::new();
        for &d in &g.order {
            let Some(script) = g.dirs[d].script.as_deref() else {
                continue;
            };
            let (start, stop) = (&g.dirs[d].start, &g.dirs[d].stop);
            if (start.lvl | stop.lvl) & seek == 0 {
                continue;
            }
            let (kind, deep) = if stop.lvl & bit != 0 {
                if bit == LVL_BOOT {
                    continue;
                }
                ('K', stop.deep)
            } else if start.lvl & bit != 0 {
                ('S', start.deep)
            } else {
                continue;
            };
            let want = format!("{kind}{deep:02}{script}");
            let mut found = false;
            for e in present
                .iter()
                .filter(|e| e.kind == kind && e.script == script)
            {
                found = true;
                if e.file != want {
                    plan.remove.push(format!("{dir}/{}", e.file));
                    made.insert(want.clone());
                }
            }
            if !found && ours.contains(&script) {
                made.insert(want);
            }
            for file in std::mem::take(&mut made) {
                let path = format!("{dir}/{file}");
                if !plan.links.iter().any(|(p, _)| *p == path) {
                    plan.links.push((path, format!("../init.d/{script}")));
                }
            }
        }
    }
    plan
}

/// Scripts with at least one `[SK]NN` link once `plan` is applied
/// (insserv's `attr.ref > 0`).
pub(super) fn linked_scripts(entries: &[RcEntry], plan: &RcPlan) -> HashSet<String> {
    let mut linked: HashSet<String> = entries
        .iter()
        .filter(|e| {
            let path = format!("{}/{}", rc_dir(RUNLEVELS[e.level].0), e.file);
            !plan.remove.contains(&path)
        })
        .map(|e| e.script.clone())
        .collect();
    for (path, _) in &plan.links {
        let file = path.rsplit('/').next().unwrap_or_default();
        linked.insert(file.get(3..).unwrap_or_default().to_owned());
    }
    linked
}

/// What `.depend` files need besides the graph.
pub(super) struct DependInput<'a> {
    /// Scripts with links ([`linked_scripts`]).
    pub linked: &'a HashSet<String>,
    /// insserv's `maxstart` and `maxstop`.
    pub max: MaxOrder,
}

/// `lsort`'s directory order for `mode`: directories of depth 0 up to
/// `max` by depth (ties in list order), then the deeper ones as they were.
fn lsort_dirs(g: &Graph, mode: Mode, max: i32) -> Vec<usize> {
    let mut sorted = Vec::new();
    for order in 0..=max.max(0) {
        sorted.extend(
            g.order
                .iter()
                .copied()
                .filter(|&d| i32::from(g.handle(d, mode).deep) == order),
        );
    }
    sorted.extend(
        g.order
            .iter()
            .copied()
            .filter(|&d| i32::from(g.handle(d, mode).deep) > max),
    );
    sorted
}

/// `lsort`'s order of a service's requirements (`req`, or `rev` when
/// stopping): those of depth `max` down to 0 first, deepest first, one per
/// directory and depth; then the deeper ones in their original order.
fn lsort_reqs(g: &Graph, reqs: &[Req], mode: Mode, max: i32) -> Vec<Req> {
    let depth = |r: &Req| i32::from(g.handle(g.services[r.serv].dir, mode).deep);
    let mut sorted: Vec<Req> = Vec::new();
    for order in (0..=max.max(0)).rev() {
        for r in reqs.iter().filter(|r| depth(r) == order) {
            let orig = g.orig(r.serv);
            let dup = sorted
                .iter()
                .rev()
                .take_while(|s| depth(s) == order)
                .any(|s| g.services[s.serv].dir == g.services[orig].dir);
            if !dup {
                sorted.push(Req {
                    serv: orig,
                    flags: r.flags,
                });
            }
        }
    }
    sorted.extend(reqs.iter().filter(|r| depth(r) > max).cloned());
    sorted
}

/// `.depend.boot`, `.depend.start` and `.depend.stop` (`makedep`, as
/// Debian builds insserv: with `MINIMAL_MAKE`, `MINIMAL_RULES` and
/// `MINIMAL_DEPEND`, which the files insserv writes show). Only scripts
/// with links are targets; a rule lists a script's linked requirements,
/// deepest first, leaving out one that an already listed, deeper
/// requirement requires itself.
pub(super) fn depend_files(g: &Graph, input: &DependInput<'_>) -> Vec<(String, Vec<u8>)> {
    let script = |d: usize| g.dirs[d].script.as_deref();
    let has_ref = |s: usize| {
        g.dirs[g.services[s].dir]
            .script
            .as_deref()
            .is_some_and(|n| input.linked.contains(n))
    };
    let mut boot = String::from("TARGETS =");
    let mut run = String::from("TARGETS =");
    let start_order = lsort_dirs(g, Mode::Start, input.max.start);
    // `listscripts`: live directories with a script, in this order.
    let listed = |order: &[usize], mode: Mode, lvl: u16| -> Vec<usize> {
        order
            .iter()
            .copied()
            .filter(|&d| script(d).is_some() && g.handle(d, mode).lvl & lvl != 0)
            .filter(|&d| has_ref(g.dirs[d].serv))
            .collect()
    };
    for (out, lvl) in [(&mut boot, LVL_BOOT), (&mut run, LVL_ALL)] {
        for d in listed(&start_order, Mode::Start, lvl) {
            let _ = write!(out, " {}", script(d).unwrap_or_default());
        }
        out.push_str("\nINTERACTIVE =");
    }
    let both = listed(&start_order, Mode::Start, LVL_BOOT | LVL_ALL);
    for &d in &both {
        let s = g.dirs[d].serv;
        if g.services[s].req.is_empty() || g.services[s].flags & serv::INTRACT == 0 {
            continue;
        }
        let out = if g.dirs[d].start.lvl & LVL_BOOT != 0 {
            &mut boot
        } else {
            &mut run
        };
        let _ = write!(out, " {}", script(d).unwrap_or_default());
    }
    boot.push('\n');
    run.push('\n');
    for &d in &both {
        let s = g.dirs[d].serv;
        let out = if g.dirs[d].start.lvl & LVL_BOOT != 0 {
            &mut boot
        } else {
            &mut run
        };
        let reqs = lsort_reqs(g, &g.services[s].req, Mode::Start, input.max.start);
        let keep = |r: &Req| {
            let dep = &g.services[r.serv];
            dep.flags & serv::DUPLET == 0
                && has_ref(r.serv)
                && r.serv != s
                && dep.flags & serv::ALL == 0
                && g.dirs[d].start.lvl & g.dirs[dep.dir].start.lvl != 0
                && g.dirs[dep.dir].script.is_some()
        };
        let lvl = g.dirs[d].start.lvl;
        let deps = minimal(g, &reqs, keep, (Mode::Start, input.max.start), |o| {
            has_ref(o) && lvl & g.dirs[g.services[o].dir].start.lvl != 0
        });
        if !deps.is_empty() {
            let _ = writeln!(out, "{}: {}", script(d).unwrap_or_default(), deps.join(" "));
        }
    }

    let mut stop = String::from("TARGETS =");
    let stop_order = lsort_dirs(g, Mode::Stop, input.max.stop);
    for d in listed(&stop_order, Mode::Stop, LVL_NORM) {
        let _ = write!(stop, " {}", script(d).unwrap_or_default());
    }
    stop.push('\n');
    for d in listed(&stop_order, Mode::Stop, LVL_NORM | LVL_BOOT) {
        let s = g.dirs[d].serv;
        let lvl = g.dirs[d].stop.lvl;
        if g.services[s].rev.is_empty() || lvl & LVL_BOOT != 0 {
            continue;
        }
        let revs = lsort_reqs(g, &g.services[s].rev, Mode::Stop, input.max.stop);
        let keep = |r: &Req| {
            let dep = &g.services[r.serv];
            dep.flags & serv::DUPLET == 0
                && has_ref(r.serv)
                && lvl & g.dirs[dep.dir].stop.lvl != 0
                && g.dirs[dep.dir].script.is_some()
        };
        // insserv compares *start* runlevels here (sic).
        let start_lvl = g.dirs[d].start.lvl;
        let deps = minimal(g, &revs, keep, (Mode::Stop, input.max.stop), |o| {
            has_ref(o) && start_lvl & g.dirs[g.services[o].dir].start.lvl != 0
        });
        if !deps.is_empty() {
            let _ = writeln!(
                stop,
                "{}: {}",
                script(d).unwrap_or_default(),
                deps.join(" ")
            );
        }
    }
    [("boot", boot), ("start", run), ("stop", stop)]
        .into_iter()
        .map(|(n, text)| (format!("/etc/init.d/.depend.{n}"), text.into_bytes()))
        .collect()
}

/// The scripts of `reqs` that pass `keep`, without those `MINIMAL_DEPEND`
/// drops: a requirement another listed, deeper one already requires
/// (`counts` says which of that one's requirements are looked at).
fn minimal<'g>(
    g: &'g Graph,
    reqs: &[Req],
    keep: impl Fn(&Req) -> bool,
    (mode, max): (Mode, i32),
    counts: impl Fn(usize) -> bool,
) -> Vec<&'g str> {
    let order = |s: usize| g.handle(g.services[s].dir, mode).deep;
    let mut listed: Vec<usize> = Vec::new();
    let mut names = Vec::new();
    for r in reqs.iter().filter(|r| keep(r)) {
        let mut shadow = false;
        for &l in &listed {
            if order(l) <= order(r.serv) {
                break;
            }
            let theirs = match mode {
                Mode::Start => &g.services[l].req,
                Mode::Stop => &g.services[l].rev,
            };
            // lsort has already rewritten every list (aliases replaced).
            let theirs = lsort_reqs(g, theirs, mode, max);
            shadow |= theirs.iter().any(|o| {
                g.services[o.serv].flags & serv::DUPLET == 0
                    && counts(o.serv)
                    && g.dirs[g.services[o.serv].dir].script.is_some()
                    && o.serv == r.serv
            });
        }
        if shadow {
            continue;
        }
        names.push(
            g.dirs[g.services[r.serv].dir]
                .script
                .as_deref()
                .unwrap_or_default(),
        );
        if listed.len() < 100 {
            listed.push(r.serv);
        }
    }
    names
}
