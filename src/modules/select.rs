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
