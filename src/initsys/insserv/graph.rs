//! insserv's data model: services (names), the "directories" they provide
//! (one per script) and the dependency links between them.
//!
//! insserv 1.24 keeps two linked lists, services in creation order and
//! directories in creation order, and every loop in its ordering code walks
//! them in that order. This port keeps the same two lists as vectors with
//! the same operations (`addservice`, `nickservice`, `makeprov`,
//! `rememberreq`, `reversereq`, `ln_sf`, `clear_all`), so the computed
//! depths match insserv's, quirks included.

use std::collections::HashMap;

/// Runlevel bits, Debian layout: 0-6 are bits 0-6, `S` (boot) is bit 7.
pub(super) const LVL_BOOT: u16 = 0x80;
/// Runlevels 0 to 6.
pub(super) const LVL_NORM: u16 = 0x7f;
/// insserv's `LVL_ALL`; on Debian `LVL_SINGLE` is 0, so it equals
/// [`LVL_NORM`].
pub(super) const LVL_ALL: u16 = LVL_NORM;
/// Deepest order insserv accepts (two digits).
pub(super) const MAX_DEEP: i32 = 99;

/// `SERV_*` flags of a service.
pub(super) mod serv {
    pub const KNOWN: u16 = 0x0001;
    pub const INTRACT: u16 = 0x0008;
    pub const ENABLED: u16 = 0x0010;
    pub const ALL: u16 = 0x0020;
    pub const DUPLET: u16 = 0x0040;
    pub const CMDLINE: u16 = 0x0200;
    pub const FIRST: u16 = 0x0400;
}

/// `REQ_*` flags of a requirement.
pub(super) mod req {
    pub const MUST: u16 = 0x0001;
    pub const SHLD: u16 = 0x0002;
    pub const KILL: u16 = 0x0004;
}

/// `DIR_*` flags of a start or stop handle.
pub(super) mod dir {
    pub const SCAN: u8 = 0x01;
    pub const LOOP: u8 = 0x02;
    pub const LOOPREPORT: u8 = 0x04;
    pub const MAXDEEP: u8 = 0x08;
}

/// Start or stop ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Start,
    Stop,
}

/// One direction (start or stop) of a directory.
#[derive(Clone, Debug, Default)]
pub(super) struct Handle {
    /// Directories ordered after this one, in insertion order.
    pub links: Vec<usize>,
    /// Runlevel bits.
    pub lvl: u16,
    pub flags: u8,
    pub mindeep: u8,
    /// The computed order: the number in `S<deep>name` / `K<deep>name`.
    pub deep: u8,
}

/// insserv's `dir_t`: what one script provides.
#[derive(Clone, Debug)]
pub(super) struct Dir {
    pub name: String,
    /// The service that created it (its flags tell aliases apart).
    pub serv: usize,
    pub script: Option<String>,
    pub start: Handle,
    pub stop: Handle,
    /// References from link lists and aliases; a merged alias directory
    /// stays reachable from old links until `clear_all`.
    pub alive: bool,
}

/// A requirement in a service's `sort.req` or `sort.rev` list.
#[derive(Clone, Debug)]
pub(super) struct Req {
    pub serv: usize,
    pub flags: u16,
}

/// insserv's `service_t`: one provided name.
#[derive(Clone, Debug)]
pub(super) struct Service {
    pub name: String,
    pub dir: usize,
    pub flags: u16,
    pub req: Vec<Req>,
    pub rev: Vec<Req>,
    /// Highest `S` and lowest `K` number among the links found.
    pub sorder: u8,
    pub korder: u8,
}

/// Every service and directory, in creation order.
#[derive(Clone, Debug, Default)]
pub(super) struct Graph {
    pub services: Vec<Service>,
    pub dirs: Vec<Dir>,
    /// Directory order (insserv's `d_start` list), changed by merges.
    pub order: Vec<usize>,
    by_name: HashMap<String, usize>,
    /// System facilities (`$local_fs`) with their expanded replacements.
    pub facilities: Vec<(String, Vec<String>)>,
    /// Warnings insserv would print.
    pub warnings: Vec<String>,
}

impl Graph {
    pub fn handle(&self, d: usize, mode: Mode) -> &Handle {
        match mode {
            Mode::Start => &self.dirs[d].start,
            Mode::Stop => &self.dirs[d].stop,
        }
    }

    pub fn handle_mut(&mut self, d: usize, mode: Mode) -> &mut Handle {
        match mode {
            Mode::Start => &mut self.dirs[d].start,
            Mode::Stop => &mut self.dirs[d].stop,
        }
    }

    /// `addservice`: the service called `name`, created with its own
    /// directory if new.
    pub fn add_service(&mut self, name: &str) -> usize {
        if let Some(&s) = self.by_name.get(name) {
            return s;
        }
        let s = self.services.len();
        let d = self.dirs.len();
        let handle = Handle {
            mindeep: 1,
            ..Handle::default()
        };
        self.dirs.push(Dir {
            name: name.to_owned(),
            serv: s,
            script: None,
            start: handle.clone(),
            stop: handle,
            alive: true,
        });
        self.order.push(d);
        self.services.push(Service {
            name: name.to_owned(),
            dir: d,
            flags: 0,
            req: Vec::new(),
            rev: Vec::new(),
            sorder: 0,
            korder: 0,
        });
        self.by_name.insert(name.to_owned(), s);
        s
    }

    /// `getorig`: the service that owns `s`'s directory.
    pub fn orig(&self, s: usize) -> usize {
        self.dirs[self.services[s].dir].serv
    }

    /// `findscript`: the live directory of a script, searched from the end.
    pub fn find_script(&self, script: &str) -> Option<usize> {
        self.order
            .iter()
            .rev()
            .copied()
            .find(|&d| self.dirs[d].script.as_deref() == Some(script))
    }

    /// `ln_sf`: orders `cur` after `req` (appends `cur` to `req`'s links).
    pub fn ln_sf(&mut self, cur: usize, req: usize, mode: Mode) {
        if cur == req {
            return;
        }
        let name = self.dirs[cur].name.clone();
        let exists = self
            .handle(req, mode)
            .links
            .iter()
            .any(|&t| self.dirs[t].name == name);
        if !exists {
            self.handle_mut(req, mode).links.push(cur);
        }
    }

    /// `makeprov`: records that `script` provides service `s`; false when
    /// another script already does.
    pub fn make_prov(&mut self, s: usize, script: &str) -> bool {
        let d = self.services[s].dir;
        match &self.dirs[d].script {
            None => {
                let alias = self.find_script(script);
                self.dirs[d].script = Some(match alias {
                    Some(a) => self.dirs[a].script.clone().unwrap_or_default(),
                    None => script.to_owned(),
                });
                true
            }
            Some(existing) => existing == script,
        }
    }

    /// `nickservice`: merges `nick` (another name the same script provides)
    /// into `orig`'s directory.
    pub fn nick_service(&mut self, orig: usize, nick: usize) {
        let dir = self.services[orig].dir;
        let cmp = self.services[nick].dir;
        if dir == cmp {
            return;
        }
        if self.dirs[cmp].script.is_some() && self.dirs[cmp].script != self.dirs[dir].script {
            return;
        }
        for mode in [Mode::Start, Mode::Stop] {
            let links = std::mem::take(&mut self.handle_mut(cmp, mode).links);
            for target in links {
                if target != cmp {
                    self.ln_sf(target, dir, mode);
                }
            }
            let (lvl, flags) = {
                let h = self.handle(cmp, mode);
                (h.lvl, h.flags)
            };
            let h = self.handle_mut(dir, mode);
            h.lvl |= lvl;
            h.flags |= flags;
        }
        self.order.retain(|&d| d != cmp);
        self.dirs[cmp].alive = false;
        self.services[orig].flags |= self.services[nick].flags;
        self.services[nick].flags |= serv::DUPLET;
        self.services[nick].dir = dir;
        for rev in [false, true] {
            let moved = if rev {
                std::mem::take(&mut self.services[nick].rev)
            } else {
                std::mem::take(&mut self.services[nick].req)
            };
            for r in moved {
                let name = &self.services[r.serv].name;
                let list = if rev {
                    &self.services[orig].rev
                } else {
                    &self.services[orig].req
                };
                if !list.iter().any(|o| &self.services[o.serv].name == name) {
                    let list = if rev {
                        &mut self.services[orig].rev
                    } else {
                        &mut self.services[orig].req
                    };
                    list.push(r);
                }
            }
        }
    }

    /// `clear_all`: drops links to directories merged away as aliases.
    pub fn clear_all(&mut self) {
        for i in 0..self.order.len() {
            let d = self.order[i];
            for mode in [Mode::Start, Mode::Stop] {
                let links = std::mem::take(&mut self.handle_mut(d, mode).links);
                let kept = links
                    .into_iter()
                    .filter(|&t| {
                        t == d || self.services[self.dirs[t].serv].flags & serv::DUPLET == 0
                    })
                    .collect();
                self.handle_mut(d, mode).links = kept;
            }
        }
    }

    /// `rememberreq`: service `s` requires each item of `list` (names,
    /// `+optional` names, `$facilities`, `$all`), for starting or, with
    /// [`req::KILL`], stopping.
    pub fn remember_req(&mut self, s: usize, bits: u16, list: &str) {
        let mut serv_ = s;
        for token in super::super::lsb::tokens(list) {
            let (name, bit) = requirement(token, bits);
            if token.starts_with('$') {
                if token.eq_ignore_ascii_case("$null") {
                    continue;
                }
                if token.eq_ignore_ascii_case("$all") {
                    self.services[serv_].flags |= if bit & req::KILL != 0 {
                        serv::FIRST
                    } else {
                        serv::ALL
                    };
                    continue;
                }
                match self.facilities.iter().find(|(f, _)| f == token) {
                    Some((_, repl)) => {
                        for r in repl.clone() {
                            self.remember_req(serv_, bit, &r);
                        }
                    }
                    None => self
                        .warnings
                        .push(format!("could not find all dependencies for {token}")),
                }
                continue;
            }
            let required = self.add_service(name);
            let (holder, need, mode) = if bit & req::KILL != 0 {
                (self.orig(required), serv_, Mode::Stop)
            } else {
                serv_ = self.orig(serv_);
                (serv_, required, Mode::Start)
            };
            // insserv matches entries by name; names are unique, so the
            // index says the same.
            let list = if mode == Mode::Stop {
                &mut self.services[holder].rev
            } else {
                &mut self.services[holder].req
            };
            match list.iter_mut().find(|r| r.serv == need) {
                Some(r) => r.flags |= bit,
                None => list.push(Req {
                    serv: need,
                    flags: bit,
                }),
            }
            // `requires(here, need)`: `here`'s directory is ordered after
            // `need`'s when starting; when stopping, the roles are swapped
            // by the choice of `holder` and `need` above.
            let (cur, target) = (self.services[holder].dir, self.services[need].dir);
            self.ln_sf(cur, target, mode);
        }
    }

    /// `reversereq`: each item of `list` requires service `s`
    /// (`X-Start-Before`, `X-Stop-After`).
    pub fn reverse_req(&mut self, s: usize, bits: u16, list: &str) {
        for token in super::super::lsb::tokens(list) {
            let (name, bit) = requirement(token, bits);
            if token.starts_with('$') {
                if let Some((_, repl)) = self.facilities.iter().find(|(f, _)| f == token) {
                    for r in repl.clone() {
                        self.reverse_req(s, bit, &r);
                    }
                }
                continue;
            }
            let rev = self.add_service(name);
            let own = self.services[s].name.clone();
            self.remember_req(rev, bit, &own);
        }
    }
}

/// A `+name` in an LSB list is optional: `should`, not `must`.
fn requirement(token: &str, bits: u16) -> (&str, u16) {
    match token.strip_prefix('+') {
        Some(rest) => (rest, (bits & !req::MUST) | req::SHLD),
        None => (token, bits),
    }
}
