//! `/etc/passwd` and `/etc/group` parsed by hand (a static glibc binary
//! cannot use NSS), and an OCI `User` resolved against them the way runc
//! does.

use std::fmt;

/// One line of `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passwd {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Member login names.
    pub members: Vec<String>,
}

/// Parses `/etc/passwd` (`name:x:uid:gid:gecos:home:shell`); malformed
/// lines and comments are skipped.
pub fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(Passwd {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
            })
        })
        .collect()
}

/// Parses `/etc/group` (`name:x:gid:member,member`); malformed lines and
/// comments are skipped.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(Group {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// The gid of group `name`, if the file has it.
pub fn group_id(groups: &[Group], name: &str) -> Option<u32> {
    groups.iter().find(|g| g.name == name).map(|g| g.gid)
}

/// The identity a process runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (`setgroups`).
    pub groups: Vec<u32>,
    /// Home directory (`/` when unknown).
    pub home: String,
}

/// Why a `User` cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserError {
    /// A user name that `/etc/passwd` does not have.
    NoUser(String),
    /// A group name that `/etc/group` does not have.
    NoGroup(String),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUser(name) => write!(f, "unable to find user {name:?} in /etc/passwd"),
            Self::NoGroup(name) => write!(f, "unable to find group {name:?} in /etc/group"),
        }
    }
}

impl std::error::Error for UserError {}

/// Resolves an OCI `User` (`""`, `uid`, `name`, `uid:gid`, `name:group`,
/// ...) as runc does: a numeric user is a uid, matched in passwd when it is
/// there and used as is when not (gid 0, home `/`); a name must be in
/// passwd. An explicit group replaces the primary group and adds no
/// supplementary groups; without one, the supplementary groups are those
/// of `/etc/group` that list the user's name. Empty means uid 0.
pub fn resolve_user(
    spec: &str,
    passwd: &[Passwd],
    groups: &[Group],
) -> Result<Identity, UserError> {
    let (user_arg, group_arg) = spec.split_once(':').unwrap_or((spec, ""));
    let uid_arg = user_arg.parse::<u32>().ok();
    let found = passwd.iter().find(|u| match (user_arg, uid_arg) {
        ("", _) => u.uid == 0,
        (_, Some(uid)) => u.uid == uid,
        (name, None) => u.name == name,
    });
    let mut identity = Identity {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: "/".to_owned(),
    };
    match (found, uid_arg) {
        (Some(user), _) => {
            identity.uid = user.uid;
            identity.gid = user.gid;
            identity.home = user.home.clone();
        }
        (None, Some(uid)) => identity.uid = uid,
        (None, None) if user_arg.is_empty() => {}
        (None, None) => return Err(UserError::NoUser(user_arg.to_owned())),
    }
    if !group_arg.is_empty() {
        let gid_arg = group_arg.parse::<u32>().ok();
        let group = groups.iter().find(|g| match gid_arg {
            Some(gid) => g.gid == gid,
            None => g.name == group_arg,
        });
        identity.gid = match (group, gid_arg) {
            (Some(group), _) => group.gid,
            (None, Some(gid)) => gid,
            (None, None) => return Err(UserError::NoGroup(group_arg.to_owned())),
        };
    } else if let Some(user) = found {
        identity.groups = groups
            .iter()
            .filter(|g| g.members.contains(&user.name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
broken line
nginx:x:101:101:nginx user:/var/cache/nginx:/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
dup:x:1000:5::/elsewhere:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
tty:x:5:
www:x:33:nginx,app
nginx:x:101:
app:x:1000:
docker:x:999:app, root
bad:x:notanumber:app
";

    fn resolve(spec: &str) -> Result<Identity, UserError> {
        resolve_user(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    fn id(uid: u32, gid: u32, groups: &[u32], home: &str) -> Identity {
        Identity {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn parsing() {
        let passwd = parse_passwd(PASSWD);
        assert_eq!(passwd.len(), 5);
        assert_eq!(
            passwd[2],
            Passwd {
                name: "nginx".into(),
                uid: 101,
                gid: 101,
                home: "/var/cache/nginx".into()
            }
        );
        let groups = parse_group(GROUP);
        assert_eq!(groups.len(), 6);
        assert_eq!(groups[2].members, ["nginx", "app"]);
        assert_eq!(groups[5].members, ["app", "root"]);
        assert_eq!(group_id(&groups, "tty"), Some(5));
        assert_eq!(group_id(&groups, "video"), None);
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(resolve(""), Ok(id(0, 0, &[999], "/root")));
        assert_eq!(resolve("root"), Ok(id(0, 0, &[999], "/root")));
        assert_eq!(
            resolve("nginx"),
            Ok(id(101, 101, &[33], "/var/cache/nginx"))
        );
        // The first entry of a uid wins; supplementary groups from its name.
        assert_eq!(resolve("1000"), Ok(id(1000, 1000, &[33, 999], "/home/app")));
        // A uid passwd does not have: gid 0, home /.
        assert_eq!(resolve("4242"), Ok(id(4242, 0, &[], "/")));
        assert_eq!(resolve("ghost"), Err(UserError::NoUser("ghost".into())));
    }

    #[test]
    fn explicit_groups() {
        assert_eq!(
            resolve("nginx:www"),
            Ok(id(101, 33, &[], "/var/cache/nginx"))
        );
        assert_eq!(resolve("app:33"), Ok(id(1000, 33, &[], "/home/app")));
        assert_eq!(resolve("4242:4343"), Ok(id(4242, 4343, &[], "/")));
        assert_eq!(resolve("101:tty"), Ok(id(101, 5, &[], "/var/cache/nginx")));
        assert_eq!(
            resolve("app:nogroup"),
            Err(UserError::NoGroup("nogroup".into()))
        );
        assert_eq!(resolve(":5"), Ok(id(0, 5, &[], "/root")));
    }

    #[test]
    fn numeric_users_work_without_the_files() {
        assert_eq!(
            resolve_user("1000:1000", &[], &[]),
            Ok(id(1000, 1000, &[], "/"))
        );
        assert_eq!(resolve_user("", &[], &[]), Ok(id(0, 0, &[], "/")));
        assert_eq!(
            resolve_user("app", &[], &[]),
            Err(UserError::NoUser("app".into()))
        );
    }
}
