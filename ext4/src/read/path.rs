//! Resolving paths and reading symlinks, as the kernel would inside a
//! chroot at the image's root.

use super::{FileKind, Image, InodeView, ReadError};
use crate::spec::{FAST_SYMLINK_MAX, MAX_SYMLINK_LEN};
use std::io::Write;

/// Symlinks one lookup may follow (`MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// Where a walk stands: the directory reached and the ones above it, for `..`.
struct Walked {
    current: InodeView,
    parents: Vec<InodeView>,
}

impl Image {
    /// Resolves an absolute or root-relative path. Symlinks in the middle are
    /// followed (absolute ones from the image's root); the last component is
    /// followed only when `follow_last` is set, as `stat` versus `lstat`.
    pub fn lookup(&self, path: &[u8], follow_last: bool) -> Result<InodeView, ReadError> {
        let mut budget = MAX_SYMLINKS;
        let start = Walked {
            current: self.root()?,
            parents: Vec::new(),
        };
        let walked = self.resolve(start, path, follow_last, &mut budget, path)?;
        Ok(walked.current)
    }

    fn resolve(
        &self,
        start: Walked,
        path: &[u8],
        follow_last: bool,
        budget: &mut u32,
        whole: &[u8],
    ) -> Result<Walked, ReadError> {
        let shown = || String::from_utf8_lossy(whole).into_owned();
        let Walked {
            mut current,
            mut parents,
        } = if path.starts_with(b"/") {
            Walked {
                current: self.root()?,
                parents: Vec::new(),
            }
        } else {
            start
        };
        let components: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        for (i, component) in components.iter().enumerate() {
            let is_last = i + 1 == components.len();
            if current.kind != FileKind::Directory {
                return Err(ReadError::NotADirectory(shown()));
            }
            if *component == b".." {
                // `..` of the root is the root, as in a chroot.
                current = parents.pop().map_or_else(|| self.root(), Ok)?;
                continue;
            }
            let entry = self
                .read_dir(&current)?
                .into_iter()
                .find(|entry| entry.name == *component)
                .ok_or_else(|| ReadError::NotFound(shown()))?;
            let next = self.inode(entry.ino)?;
            if next.kind == FileKind::Symlink && (!is_last || follow_last) {
                *budget = budget
                    .checked_sub(1)
                    .ok_or_else(|| ReadError::SymlinkLoop(shown()))?;
                let target = self.read_link(&next)?;
                // The target resolves from the symlink's directory, and what
                // follows climbs `..` from where the target led.
                let here = Walked { current, parents };
                Walked { current, parents } = self.resolve(here, &target, true, budget, whole)?;
            } else {
                parents.push(std::mem::replace(&mut current, next));
            }
        }
        Ok(Walked { current, parents })
    }

    /// A symlink's target.
    pub fn read_link(&self, link: &InodeView) -> Result<Vec<u8>, ReadError> {
        let corrupt = |what| ReadError::Corrupt {
            ino: link.ino,
            what,
        };
        if link.kind != FileKind::Symlink {
            return Err(corrupt("not a symlink"));
        }
        if link.size == 0 || link.size > MAX_SYMLINK_LEN as u64 {
            return Err(corrupt("symlink target length"));
        }
        if link.size <= FAST_SYMLINK_MAX as u64 && !link.uses_extents() {
            return Ok(link.i_block[..link.size as usize].to_vec());
        }
        let mut target = Vec::with_capacity(link.size as usize);
        self.copy_data(link, &mut target as &mut dyn Write)?;
        Ok(target)
    }
}
