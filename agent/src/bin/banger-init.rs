//! banger-init: PID 1 for banger guests without an init. The logic lives
//! in the library, `banger_vsock_agent::init`.
//!
//! `no_main`: std's runtime start-up would open `/dev/null` for closed
//! standard descriptors and abort when it cannot, which as PID 1 on a root
//! without `/dev` is a kernel panic. banger-init fills them itself.
#![no_main]

/// The C entry point; glibc still hands std the arguments.
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    banger_vsock_agent::init::cli::main()
}
