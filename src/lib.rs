//! banger: turn OCI/Docker container images into bootable ext4 root
//! filesystems for microVMs.

pub use banger_ext4 as ext4;

pub mod cache;
pub mod catalog;
pub mod cleanup;
pub mod flatten;
pub mod guest;
pub mod initsys;
pub mod inject;
pub mod inspect;
pub mod io_error;
pub mod layer;
pub mod mapped;
pub mod modules;
pub mod names;
pub mod os_release;
pub mod pipeline;
pub mod platform;
pub mod progress;
pub mod readahead;
pub mod reference;
pub mod source;
pub mod staged;
pub mod store;
