//! Inode tables, written a group at a time.

use zerocopy::IntoBytes;

use crate::error::BuildError;
use crate::format::Ext4Inode;
use crate::geometry::Geometry;
use crate::plan::layout::GroupLayout;
use crate::spec::INODE_SIZE;

use super::MetadataWriter;

/// Gathers one group's inodes at a time into a single table write.
pub(crate) struct InodeTables<'a> {
    geometry: &'a Geometry,
    layout: &'a GroupLayout,
    group: Option<u64>,
    buffer: Vec<u8>,
}

impl<'a> InodeTables<'a> {
    pub(crate) fn new(geometry: &'a Geometry, layout: &'a GroupLayout) -> Self {
        Self {
            geometry,
            layout,
            group: None,
            buffer: Vec::new(),
        }
    }

    /// Places inode `ino`; inodes must come group by group.
    pub(crate) fn put(
        &mut self,
        w: &mut MetadataWriter,
        ino: u32,
        inode: &Ext4Inode,
    ) -> Result<(), BuildError> {
        let index = u64::from(ino - 1);
        let group = index / self.geometry.inodes_per_group;
        if self.group != Some(group) {
            self.write_group(w)?;
            self.group = Some(group);
        }
        let offset = ((index % self.geometry.inodes_per_group) * INODE_SIZE) as usize;
        let end = offset + INODE_SIZE as usize;
        if self.buffer.len() < end {
            self.buffer.resize(end, 0);
        }
        self.buffer[offset..end].copy_from_slice(inode.as_bytes());
        Ok(())
    }

    fn write_group(&mut self, w: &mut MetadataWriter) -> Result<(), BuildError> {
        if let Some(group) = self.group.take() {
            let start = self.layout.inode_tables[group as usize];
            w.write_block(start, &self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Queues the last group's table.
    pub(crate) fn flush(mut self, w: &mut MetadataWriter) -> Result<(), BuildError> {
        self.write_group(w)
    }
}
