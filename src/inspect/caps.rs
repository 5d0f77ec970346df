//! Decoding `security.capability` (`struct vfs_cap_data`) as `getcap` shows it.

/// `VFS_CAP_REVISION_MASK` and the three revisions.
const VFS_CAP_REVISION_MASK: u32 = 0xFF00_0000;
const VFS_CAP_REVISION_1: u32 = 0x0100_0000;
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`: the permitted set is raised as effective at exec.
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;

/// Capability names by number, as `<linux/capability.h>` orders them.
const NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// `getcap`-style text: `cap_net_bind_service,cap_net_raw=ep`, with
/// inheritable-only capabilities as `=i`, and a v3 value's root uid as
/// `[rootid=N]`. `None` when the value is not a valid `vfs_cap_data`.
pub fn describe_capability(value: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u32> {
        let bytes = value.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    };
    let magic = word(0)?;
    let (words, expected_len) = match magic & VFS_CAP_REVISION_MASK {
        VFS_CAP_REVISION_1 => (1, 12),
        VFS_CAP_REVISION_2 => (2, 20),
        VFS_CAP_REVISION_3 => (2, 24),
        _ => return None,
    };
    if value.len() != expected_len {
        return None;
    }
    let mut permitted = 0u64;
    let mut inheritable = 0u64;
    for i in 0..words {
        permitted |= u64::from(word(1 + 2 * i)?) << (32 * i);
        inheritable |= u64::from(word(2 + 2 * i)?) << (32 * i);
    }
    let effective = magic & VFS_CAP_FLAGS_EFFECTIVE != 0;
    // getcap groups capabilities with the same flags into one clause.
    let mut clauses: Vec<(String, Vec<String>)> = Vec::new();
    for bit in 0..64 {
        let in_p = permitted >> bit & 1 != 0;
        let in_i = inheritable >> bit & 1 != 0;
        if !in_p && !in_i {
            continue;
        }
        let mut flags = String::new();
        if effective && in_p {
            flags.push('e');
        }
        if in_i {
            flags.push('i');
        }
        if in_p {
            flags.push('p');
        }
        let name = NAMES
            .get(bit)
            .map_or_else(|| format!("cap_{bit}"), |name| (*name).to_string());
        match clauses.iter_mut().find(|(f, _)| *f == flags) {
            Some((_, names)) => names.push(name),
            None => clauses.push((flags, vec![name])),
        }
    }
    let mut text = clauses
        .iter()
        .map(|(flags, names)| format!("{}={flags}", names.join(",")))
        .collect::<Vec<_>>()
        .join(" ");
    if words == 2 && value.len() == 24 {
        text.push_str(&format!(" [rootid={}]", word(5)?));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::describe_capability;

    /// `setcap cap_net_bind_service,cap_net_raw+ep FILE` stores this
    /// (`getfattr -e hex -n security.capability FILE`).
    const NET_EP: &str = "0100000200240000000000000000000000000000";

    #[test]
    fn decodes_as_getcap_prints() {
        let value = hex::decode(NET_EP).unwrap();
        assert_eq!(
            describe_capability(&value).as_deref(),
            Some("cap_net_bind_service,cap_net_raw=ep")
        );
    }

    #[test]
    fn rejects_what_is_not_vfs_cap_data() {
        assert_eq!(describe_capability(b"nonsense"), None);
        assert_eq!(describe_capability(&[0, 0, 0, 2]), None);
    }
}
