//! Module dependencies as depmod computes them: which module of a name
//! counts, the order modules are listed in, who owns each exported symbol,
//! and the dependency order (`tools/depmod.c` of kmod 30).
//!
//! Dependencies come from symbols, not from `.modinfo`'s `depends=`: a
//! module depends on the module that exports a symbol it needs. When two
//! modules export the same symbol, the later one in module order owns it.

use std::collections::HashMap;

use super::error::ModuleError;
use super::info::ModuleInfo;
use super::kmod_hash::{sort_in_table_order, MODULE_BUCKETS};

/// The modules' dependency graph. Modules are referred to by their
/// *position* in [`Graph::order`].
#[derive(Debug)]
pub struct Graph<'m> {
    /// The modules.
    pub modules: &'m [ModuleInfo],
    /// Indexes into `modules`, in depmod's order.
    pub order: Vec<usize>,
    /// Each exported symbol and the position of the module that owns it.
    pub owners: HashMap<&'m str, usize>,
    /// The direct dependencies of each position, as positions, in the order
    /// the needed symbols were found.
    pub deps: Vec<Vec<usize>>,
}

/// The indexes of the modules depmod keeps, one per name, in input order.
/// depmod's default search order (`search updates`) lets a module under
/// `updates/` replace an earlier one of the same name; otherwise the first
/// one found stays (depmod finds them in directory order, we in the order
/// given).
pub fn unique_by_name(modules: &[ModuleInfo]) -> Vec<usize> {
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(modules.len());
    for (i, module) in modules.iter().enumerate() {
        let replaces = module.path.starts_with("updates/");
        by_name
            .entry(module.name.as_str())
            .and_modify(|kept| {
                if replaces {
                    *kept = i;
                }
            })
            .or_insert(i);
    }
    let mut kept: Vec<usize> = by_name.into_values().collect();
    kept.sort_unstable();
    kept
}

/// depmod's module order: those `modules.order` lists, in its order, then
/// the others in the order of depmod's module-name hash table. Without a
/// usable `modules.order` (absent, or with a last line missing its newline,
/// which makes depmod give up sorting), all are in hash table order.
pub fn depmod_order(
    modules: &[ModuleInfo],
    kept: &[usize],
    modules_order: Option<&str>,
) -> Vec<usize> {
    let mut order = kept.to_vec();
    sort_in_table_order(&mut order, MODULE_BUCKETS, |&i| modules[i].name.as_bytes());
    let Some(text) = modules_order else {
        return order;
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.iter().any(|line| !line.ends_with('\n')) {
        return order;
    }
    // depmod numbers the lines from 1 and gives listed modules `line -
    // (lines + 1)`, below the 1 every other module has; a path listed
    // twice takes its last line.
    let by_path: HashMap<&str, usize> = kept
        .iter()
        .map(|&i| (modules[i].uncompressed_path(), i))
        .collect();
    let total = lines.len() as i64 + 1;
    let mut sort_index: HashMap<usize, i64> = HashMap::new();
    for (n, line) in lines.iter().enumerate() {
        let path = line.strip_suffix('\n').unwrap_or(line);
        if let Some(&i) = by_path.get(path) {
            sort_index.insert(i, n as i64 + 1 - total);
        }
    }
    // glibc's qsort is a merge sort here, so equal keys keep their order.
    order.sort_by_key(|i| sort_index.get(i).copied().unwrap_or(1));
    order
}

impl<'m> Graph<'m> {
    /// Resolves the needed symbols of the modules `order` lists.
    pub fn new(modules: &'m [ModuleInfo], order: Vec<usize>) -> Self {
        let mut owners = HashMap::new();
        for (pos, &i) in order.iter().enumerate() {
            for export in &modules[i].exports {
                if !export.name.is_empty() {
                    owners.insert(export.name.as_str(), pos);
                }
            }
        }
        let deps = order
            .iter()
            .map(|&i| {
                let mut deps: Vec<usize> = Vec::new();
                for need in &modules[i].needs {
                    // depmod drops one leading `.` (PPC64 function descriptors).
                    let name = need.name.strip_prefix('.').unwrap_or(&need.name);
                    if let Some(&owner) = owners.get(name) {
                        if !deps.contains(&owner) {
                            deps.push(owner);
                        }
                    }
                }
                deps
            })
            .collect();
        Self {
            modules,
            order,
            owners,
            deps,
        }
    }

    /// The module at position `pos`.
    pub fn module(&self, pos: usize) -> &'m ModuleInfo {
        &self.modules[self.order[pos]]
    }

    /// depmod's topological rank of each position: modules nothing depends
    /// on come first, a module always before those it depends on. Roots are
    /// taken from a stack filled in position order, and a module becomes a
    /// root when its last user is ranked, exactly as depmod does, since the
    /// ranks order every dependency list it writes.
    pub fn ranks(&self) -> Result<Vec<usize>, ModuleError> {
        let n = self.order.len();
        let mut users = vec![0usize; n];
        for deps in &self.deps {
            for &d in deps {
                users[d] += 1;
            }
        }
        let mut roots: Vec<usize> = (0..n).filter(|&p| users[p] == 0).collect();
        let mut rank = vec![usize::MAX; n];
        let mut sorted = 0;
        while let Some(src) = roots.pop() {
            rank[src] = sorted;
            sorted += 1;
            for &dst in &self.deps[src] {
                users[dst] -= 1;
                if users[dst] == 0 {
                    roots.push(dst);
                }
            }
        }
        if sorted < n {
            let modules = (0..n)
                .filter(|&p| users[p] > 0)
                .map(|p| self.module(p).name.clone())
                .collect();
            return Err(ModuleError::Cycle { modules });
        }
        Ok(rank)
    }

    /// Every module `pos` depends on, directly or not, by rank.
    pub fn all_dependencies(&self, pos: usize, ranks: &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.order.len()];
        let mut all = Vec::new();
        let mut stack: Vec<usize> = self.deps[pos].clone();
        while let Some(d) = stack.pop() {
            if !std::mem::replace(&mut seen[d], true) {
                all.push(d);
                stack.extend(&self.deps[d]);
            }
        }
        all.sort_unstable_by_key(|&d| ranks[d]);
        all
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::modules::info::{ExportedSymbol, NeededSymbol};

    /// A module at `kernel/NAME.ko` exporting and needing symbols.
    pub(crate) fn module(name: &str, exports: &[&str], needs: &[&str]) -> ModuleInfo {
        ModuleInfo {
            path: format!("kernel/{name}.ko"),
            name: name.replace('-', "_"),
            modinfo: Vec::new(),
            exports: exports
                .iter()
                .map(|s| ExportedSymbol {
                    name: s.to_string(),
                    crc: 0,
                })
                .collect(),
            needs: needs
                .iter()
                .map(|s| NeededSymbol {
                    name: s.to_string(),
                    crc: 0,
                    weak: false,
                })
                .collect(),
        }
    }

    fn names(modules: &[ModuleInfo], order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| modules[i].name.clone()).collect()
    }

    #[test]
    fn order_follows_modules_order_then_the_hash_table() {
        let modules: Vec<ModuleInfo> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| module(n, &[], &[]))
            .collect();
        let kept = unique_by_name(&modules);
        // kmod's hash of each name, modulo 512 buckets (printed by kmod's
        // hash_superfast compiled with gcc): c 191, b 225, d 353, a 386,
        // e 424.
        assert_eq!(
            names(&modules, &depmod_order(&modules, &kept, None)),
            ["c", "b", "d", "a", "e"]
        );
        let order = "kernel/e.ko\nkernel/missing.ko\nkernel/a.ko\nkernel/e.ko\n";
        // Listed modules first (e at its last line), then the others.
        assert_eq!(
            names(&modules, &depmod_order(&modules, &kept, Some(order))),
            ["a", "e", "c", "b", "d"]
        );
        // A last line without newline: depmod gives up sorting.
        let corrupt = "kernel/e.ko\nkernel/a.ko";
        assert_eq!(
            names(&modules, &depmod_order(&modules, &kept, Some(corrupt))),
            ["c", "b", "d", "a", "e"]
        );
    }

    #[test]
    fn one_module_per_name() {
        let mut modules = vec![module("x", &["first"], &[]), module("x", &["second"], &[])];
        assert_eq!(unique_by_name(&modules), [0]);
        modules[1].path = "updates/x.ko".into();
        assert_eq!(unique_by_name(&modules), [1]);
    }

    #[test]
    fn dependencies_and_ranks() {
        // top needs low's symbol first, then mid's; mid needs low.
        let modules = vec![
            module("top", &[], &["y", "x", "unknown", ".x"]),
            module("mid", &["x"], &["z"]),
            module("low", &["z", "y"], &[]),
            module("solo", &[], &[]),
        ];
        let graph = Graph::new(&modules, vec![0, 1, 2, 3]);
        assert_eq!(graph.deps, [vec![2, 1], vec![2], vec![], vec![]]);
        // Roots [top, solo] are popped from the end: solo, top; then mid
        // once top is ranked, then low once mid is.
        let ranks = graph.ranks().unwrap();
        assert_eq!(ranks, [1, 2, 3, 0]);
        assert_eq!(graph.all_dependencies(0, &ranks), [1, 2]);
        assert_eq!(graph.all_dependencies(1, &ranks), [2]);
        assert!(graph.all_dependencies(3, &ranks).is_empty());
    }

    #[test]
    fn the_last_exporter_owns_a_symbol() {
        let modules = vec![
            module("one", &["s"], &[]),
            module("two", &["s"], &[]),
            module("user", &[], &["s"]),
        ];
        let graph = Graph::new(&modules, vec![0, 1, 2]);
        assert_eq!(graph.owners["s"], 1);
        assert_eq!(graph.deps[2], [1]);
        let graph = Graph::new(&modules, vec![1, 0, 2]);
        assert_eq!(graph.module(graph.owners["s"]).name, "one");
    }

    #[test]
    fn cycles_are_errors() {
        let modules = vec![
            module("a", &["a_sym"], &["b_sym"]),
            module("b", &["b_sym"], &["a_sym", "c_sym"]),
            module("c", &["c_sym"], &[]),
            module("free", &[], &["c_sym"]),
        ];
        let graph = Graph::new(&modules, vec![0, 1, 2, 3]);
        match graph.ranks() {
            Err(ModuleError::Cycle { modules }) => assert_eq!(modules, ["a", "b", "c"]),
            other => panic!("{other:?}"),
        }
    }
}
