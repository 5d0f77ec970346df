//! insserv's ordering: the depth of every script in the start and the stop
//! graph, which becomes the two-digit number of its links.
//!
//! This is a line-by-line port of `__follow`, `guess_order`, `follow_all`,
//! `setorder` (listing.c) and `all_script`, `active_script` (insserv.c) of
//! insserv 1.24. The depth is mostly the longest dependency chain, counted
//! only between scripts that share a runlevel, but `__follow` also walks
//! each directory's first-link chain with the runlevels of where the walk
//! started, and that quirk changes numbers in mixed-runlevel graphs; a port
//! keeps it, a reformulation would not.

use super::graph::{dir, req, serv, Graph, Mode, LVL_ALL, MAX_DEEP};

/// The two running maxima insserv keeps (`maxstart`, `maxstop`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MaxOrder {
    pub start: i32,
    pub stop: i32,
}

impl MaxOrder {
    fn get(&mut self, mode: Mode) -> &mut i32 {
        match mode {
            Mode::Start => &mut self.start,
            Mode::Stop => &mut self.stop,
        }
    }
}

/// `remembernode`: marks a handle as part of a loop; true if it was
/// already marked.
fn remember_node(g: &mut Graph, d: usize, mode: Mode) -> bool {
    let h = g.handle_mut(d, mode);
    if h.flags & dir::LOOP != 0 {
        return true;
    }
    h.flags |= dir::LOOP;
    false
}

fn loop_check(g: &Graph, d: Option<usize>, mode: Mode) -> bool {
    d.is_some_and(|d| g.handle(d, mode).flags & dir::LOOP != 0)
}

fn loop_warn(g: &mut Graph, a: usize, b: Option<usize>, mode: Mode) {
    let act = if mode == Mode::Stop {
        "stopped"
    } else {
        "started"
    };
    let text = match b {
        Some(b) => format!(
            "There is a loop between service {} and {} if {act}",
            g.dirs[a].name, g.dirs[b].name
        ),
        None => format!("There is a loop at service {} if {act}", g.dirs[a].name),
    };
    g.warnings.push(text);
}

/// `__follow`.
fn follow(
    g: &mut Graph,
    d: usize,
    skip: Option<usize>,
    level: i32,
    mode: Mode,
    report_loop: bool,
    max: &mut MaxOrder,
) {
    if g.handle(d, mode).flags & dir::SCAN != 0 {
        match skip {
            Some(s) => {
                if !remember_node(g, s, mode) || !remember_node(g, d, mode) {
                    loop_warn(g, d, Some(s), mode);
                }
            }
            None => loop_warn(g, d, None, mode),
        }
        return;
    }
    let mut deep = level.max(i32::from(g.handle(d, mode).mindeep));
    if deep > MAX_DEEP {
        let h = g.handle_mut(d, mode);
        h.flags |= dir::MAXDEEP;
        return;
    }
    let peg_lvl = g.handle(d, mode).lvl;
    let mut count = 0;
    let mut tmp = Some(d);
    while let Some(t) = tmp {
        let sflags = g.services[g.dirs[t].serv].flags;
        let mut recursion = true;
        let too_long = count > MAX_DEEP;
        count += 1;
        if too_long {
            match skip {
                Some(s) => {
                    if !remember_node(g, s, mode) || !remember_node(g, t, mode) {
                        loop_warn(g, t, Some(s), mode);
                    }
                }
                None => {
                    if !remember_node(g, t, mode) {
                        loop_warn(g, t, None, mode);
                    }
                }
            }
            break;
        }
        // `l_list` now names t's links; the loop's step takes the first.
        let first_link = g.handle(t, mode).links.first().copied();
        if peg_lvl & g.handle(t, mode).lvl == 0 {
            tmp = first_link;
            continue;
        }
        if skip == Some(t) {
            if !remember_node(g, t, mode) || !remember_node(g, t, mode) {
                loop_warn(g, t, None, mode);
            }
            break;
        }
        let order = i32::from(g.handle(t, mode).deep);
        if order > deep {
            deep = order;
        }
        if order < deep {
            g.handle_mut(t, mode).deep = deep as u8;
        }
        if g.handle(t, mode).lvl & LVL_ALL != 0 {
            let m = max.get(mode);
            *m = (*m).max(i32::from(g.handle(t, mode).deep));
        }
        if g.handle(t, mode).links.is_empty() {
            break;
        }
        // A system facility never counts as a step (insserv warns that it
        // was not expanded).
        if !g.dirs[t].name.starts_with('$') {
            deep += 1;
            if deep > MAX_DEEP {
                g.handle_mut(t, mode).flags |= dir::MAXDEEP;
                break;
            }
        }
        g.handle_mut(t, mode).flags |= dir::SCAN;
        let links = g.handle(t, mode).links.clone();
        for target in links {
            let kflags = g.services[g.dirs[target].serv].flags;
            if peg_lvl & g.handle(target, mode).lvl == 0 {
                continue;
            }
            if target == t || target == d {
                break;
            }
            if skip == Some(target) {
                let s = skip.unwrap_or(target);
                if !remember_node(g, s, mode) || !remember_node(g, t, mode) {
                    loop_warn(g, s, Some(t), mode);
                }
                recursion = false;
                break;
            }
            let dollar_all = match mode {
                Mode::Stop => kflags & serv::FIRST != 0,
                Mode::Start => sflags & serv::ALL != 0,
            };
            if dollar_all {
                continue;
            }
            if i32::from(g.handle(target, mode).deep) >= deep {
                continue;
            }
            follow(g, target, Some(t), deep, mode, report_loop, max);
            if loop_check(g, Some(target), mode)
                || loop_check(g, Some(t), mode)
                || loop_check(g, skip, mode)
            {
                recursion = false;
                break;
            }
        }
        g.handle_mut(t, mode).flags &= !dir::SCAN;
        if !recursion {
            let h = g.handle_mut(t, mode);
            if report_loop && h.flags & dir::LOOPREPORT == 0 {
                h.flags |= dir::LOOPREPORT;
            }
            break;
        }
        tmp = g.handle(t, mode).links.first().copied();
    }
}

/// `guess_order`: a depth for names nobody provides, just before the
/// first script that requires them.
fn guess_order(g: &mut Graph, d: usize, mode: Mode) {
    if g.dirs[d].script.is_some() || g.dirs[d].name.starts_with('$') {
        return;
    }
    let links = g.handle(d, mode).links.clone();
    let Some(&first) = links.first() else {
        return;
    };
    let mut min = 99i32.min(i32::from(g.handle(first, mode).deep));
    let mut lvl = g.handle(first, mode).lvl;
    let mut count = 0;
    for &t in links.iter().rev() {
        count += 1;
        if count > MAX_DEEP || first == d {
            break;
        }
        min = min.min(i32::from(g.handle(t, mode).deep));
        lvl |= g.handle(t, mode).lvl;
    }
    let h = g.handle_mut(d, mode);
    if min > 1 {
        h.deep = (min - 1) as u8;
        h.lvl |= lvl;
    } else {
        h.lvl = super::graph::LVL_BOOT;
    }
}

/// `follow_all`.
pub(super) fn follow_all(g: &mut Graph, max: &mut MaxOrder) {
    for i in 0..g.order.len() {
        let d = g.order[i];
        let start = i32::from(g.dirs[d].start.mindeep);
        follow(g, d, None, start, Mode::Start, true, max);
        let stop = i32::from(g.dirs[d].stop.mindeep);
        follow(g, d, None, stop, Mode::Stop, true, max);
    }
    for i in 0..g.order.len() {
        let d = g.order[i];
        guess_order(g, d, Mode::Start);
        guess_order(g, d, Mode::Stop);
    }
}

/// `setorder`.
fn set_order(
    g: &mut Graph,
    script: &str,
    mode: Mode,
    order: i32,
    recursive: bool,
    max: &mut MaxOrder,
) {
    let Some(d) = g.find_script(script) else {
        return;
    };
    let h = g.handle_mut(d, mode);
    if i32::from(h.mindeep) < order {
        h.mindeep = order.min(255) as u8;
    }
    if h.deep >= h.mindeep {
        return;
    }
    if !recursive {
        h.deep = h.mindeep;
        return;
    }
    let mindeep = i32::from(h.mindeep);
    follow(g, d, None, mindeep, mode, false, max);
    for i in 0..g.order.len() {
        let d = g.order[i];
        guess_order(g, d, mode);
    }
}

/// `all_script`: `$all` in Required-Start puts a script after every other
/// one of its runlevels, in Required-Stop before them.
pub(super) fn all_script(g: &mut Graph, max: &mut MaxOrder) {
    for s in 0..g.services.len() {
        let flags = g.services[s].flags;
        let d = g.services[s].dir;
        if flags & serv::DUPLET != 0 || flags & serv::FIRST == 0 {
            continue;
        }
        let Some(script) = g.dirs[d].script.clone() else {
            continue;
        };
        require_all_others(g, s, Mode::Stop, serv::FIRST, req::SHLD | req::KILL);
        set_order(g, &script, Mode::Stop, 1, false, max);
    }
    for s in 0..g.services.len() {
        let flags = g.services[s].flags;
        let d = g.services[s].dir;
        if flags & serv::DUPLET != 0 || flags & serv::ALL == 0 || g.dirs[d].script.is_none() {
            continue;
        }
        require_all_others(g, s, Mode::Start, serv::ALL, req::SHLD);
    }
}

/// Gives `s` a `bits` requirement on every service sharing one of its
/// `mode` runlevels, except duplets, itself and the other `$all` services
/// of that phase (flagged `peer`).
fn require_all_others(g: &mut Graph, s: usize, mode: Mode, peer: u16, bits: u16) {
    let d = g.services[s].dir;
    for cur in 0..g.services.len() {
        let cf = g.services[cur].flags;
        let cd = g.services[cur].dir;
        if cf & serv::DUPLET != 0
            || g.handle(d, mode).lvl & g.handle(cd, mode).lvl == 0
            || cur == s
            || cf & peer != 0
        {
            continue;
        }
        let name = g.services[cur].name.clone();
        g.remember_req(s, bits, &name);
    }
}

/// `active_script`: an interactive script (`X-Interactive: true` or
/// `<interactive>` in insserv.conf) gets its start number to itself.
pub(super) fn active_script(g: &mut Graph, max: &mut MaxOrder) {
    let order_of = |g: &Graph, script: &str| {
        g.find_script(script)
            .map_or(0, |d| i32::from(g.dirs[d].start.deep))
    };
    for deep in 0..100 {
        for s in 0..g.services.len() {
            let Some(script) = g.dirs[g.services[s].dir].script.clone() else {
                continue;
            };
            let flags = g.services[s].flags;
            if flags & serv::INTRACT == 0 || order_of(g, &script) != deep {
                continue;
            }
            if flags & serv::DUPLET != 0 {
                continue;
            }
            for cur in 0..g.services.len() {
                if g.orig(cur) == s {
                    continue;
                }
                let (sd, cd) = (g.services[s].dir, g.services[cur].dir);
                if g.dirs[sd].start.lvl & g.dirs[cd].start.lvl == 0 {
                    continue;
                }
                let Some(other) = g.dirs[cd].script.clone() else {
                    continue;
                };
                if order_of(g, &other) != deep {
                    continue;
                }
                set_order(g, &other, Mode::Start, deep + 1, true, max);
            }
        }
    }
}
