//! Looking inside written images without e2fsprogs, a mount or root:
//! listings, `stat`, file contents and a tar export, all read with
//! [`banger_ext4::read`].

mod caps;
pub mod export;
pub mod format;
pub mod listing;
pub mod stat;

pub use caps::describe_capability;
