//! Choosing the modules a guest needs: the ones asked for and everything
//! they depend on, so that an image carries a few hundred KiB of modules
//! instead of a kernel's whole tree.

use std::collections::{BTreeSet, HashMap};

use super::error::ModuleError;
use super::graph::{unique_by_name, Graph};
use super::info::{normalize_name, ModuleInfo};

/// The modules a microVM guest needs when its kernel builds them as modules
/// (Debian's cloud kernel does; the root disk's NVMe and ext4 are built in):
///
/// - `virtio_pci`: the virtio transport on a PCI bus (qemu's default
///   machine), without which no virtio device appears;
/// - `virtio_net`: the virtio NIC, the guest's network;
/// - `virtio_blk`: virtio disks (Firecracker's and `qemu -M microvm`'s
///   block device);
/// - `virtio_mmio`: the virtio transport of machines without PCI
///   (Firecracker, `qemu -M microvm`);
/// - `vsock`: the socket family the banger agent listens on;
/// - `vmw_vsock_virtio_transport`: vsock over a virtio device, to the host;
/// - `vsock_loopback`: vsock to CID 1, so a process in the guest reaches the
///   agent even when the host offers no vhost-vsock.
pub const GUEST_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_mmio",
    "vsock",
    "vmw_vsock_virtio_transport",
    "vsock_loopback",
];

/// The indexes in `modules` of the `wanted` modules and of every module
/// they depend on (by symbols, as depmod computes it), each after all of
/// its dependencies, so loading them in this order works. Names may use `-`
/// or `_`. A wanted module or dependency in `builtin` (names from
/// `modules.builtin`, see [`super::builtin::builtin_set`]) is skipped: the
/// kernel has it already. A wanted module that is neither present nor built
/// in is an error, as is a dependency cycle.
pub fn closure(
    modules: &[ModuleInfo],
    wanted: &[&str],
    builtin: &BTreeSet<String>,
) -> Result<Vec<usize>, ModuleError> {
    let graph = Graph::new(modules, unique_by_name(modules));
    let position: HashMap<&str, usize> = (0..graph.order.len())
        .map(|pos| (graph.module(pos).name.as_str(), pos))
        .collect();
    let mut state = vec![Visit::New; graph.order.len()];
    let mut result = Vec::new();
    for name in wanted {
        let name = normalize_name(name);
        if builtin.contains(&name) {
            continue;
        }
        let Some(&start) = position.get(name.as_str()) else {
            return Err(ModuleError::MissingModule { name });
        };
        visit(&graph, start, builtin, &mut state, &mut result)?;
    }
    Ok(result.into_iter().map(|pos| graph.order[pos]).collect())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    /// On the current path: meeting it again closes a cycle.
    Open,
    Done,
}

/// Appends `start`'s dependencies, then `start`, depth first without
/// recursion.
fn visit(
    graph: &Graph<'_>,
    start: usize,
    builtin: &BTreeSet<String>,
    state: &mut [Visit],
    result: &mut Vec<usize>,
) -> Result<(), ModuleError> {
    let wanted = |pos: usize| !builtin.contains(&graph.module(pos).name);
    if state[start] != Visit::New || !wanted(start) {
        return Ok(());
    }
    state[start] = Visit::Open;
    let mut stack = vec![(start, 0usize)];
    while let Some((pos, next)) = stack.last_mut() {
        let pos = *pos;
        if let Some(&dep) = graph.deps[pos].get(*next) {
            *next += 1;
            match state[dep] {
                Visit::New if wanted(dep) => {
                    state[dep] = Visit::Open;
                    stack.push((dep, 0));
                }
                Visit::Open => {
                    let modules = stack.iter().map(|&(p, _)| graph.module(p).name.clone());
                    return Err(ModuleError::Cycle {
                        modules: modules.collect(),
                    });
                }
                _ => {}
            }
        } else {
            state[pos] = Visit::Done;
            result.push(pos);
            stack.pop();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::graph::tests::module;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn picked(modules: &[ModuleInfo], wanted: &[&str], builtin: &[&str]) -> Vec<String> {
        closure(modules, wanted, &set(builtin))
            .unwrap()
            .into_iter()
            .map(|i| modules[i].name.clone())
            .collect()
    }

    /// net needs failover and ring; failover needs ring; blk needs ring.
    fn tree() -> Vec<ModuleInfo> {
        vec![
            module("virtio-net", &[], &["failover_register", "vring_new"]),
            module("unrelated", &["other"], &[]),
            module("failover", &["failover_register"], &["vring_new"]),
            module("virtio_ring", &["vring_new"], &["printk"]),
            module("virtio_blk", &[], &["vring_new"]),
        ]
    }

    #[test]
    fn dependencies_come_first() {
        let modules = tree();
        assert_eq!(
            picked(&modules, &["virtio-net"], &[]),
            ["virtio_ring", "failover", "virtio_net"]
        );
        // Shared dependencies appear once, at their first use.
        assert_eq!(
            picked(&modules, &["virtio_blk", "virtio_net"], &[]),
            ["virtio_ring", "virtio_blk", "failover", "virtio_net"]
        );
        assert!(picked(&modules, &[], &[]).is_empty());
    }

    #[test]
    fn built_ins_are_skipped() {
        let modules = tree();
        assert_eq!(
            picked(&modules, &["virtio_net", "ext4"], &["virtio_ring", "ext4"]),
            ["failover", "virtio_net"]
        );
    }

    #[test]
    fn unknown_modules_and_cycles_are_errors() {
        let modules = tree();
        match closure(&modules, &["virtio_net", "nope"], &set(&[])) {
            Err(ModuleError::MissingModule { name }) => assert_eq!(name, "nope"),
            other => panic!("{other:?}"),
        }
        let cyclic = vec![
            module("a", &["a_sym"], &["b_sym"]),
            module("b", &["b_sym"], &["a_sym"]),
        ];
        match closure(&cyclic, &["a"], &set(&[])) {
            Err(ModuleError::Cycle { modules }) => assert_eq!(modules, ["a", "b"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn guest_modules_are_distinct_normalized_names() {
        let names: BTreeSet<&str> = GUEST_MODULES.iter().copied().collect();
        assert_eq!(names.len(), GUEST_MODULES.len());
        assert!(GUEST_MODULES.iter().all(|n| normalize_name(n) == *n));
    }
}
