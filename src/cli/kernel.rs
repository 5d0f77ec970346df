//! `banger kernel …`.

use std::path::PathBuf;

use super::records::{kernel_json, kernel_table};
use clap::Subcommand;

use banger::store::kernel::import_kernel;
use banger::store::{default_state_dir, Kind, Store};

/// `banger kernel` subcommands.
#[derive(Subcommand, Debug)]
pub enum KernelCommand {
    /// Import a kernel from local files.
    #[command(
        after_help = "Example:\n  banger kernel import my-6.1 --kernel ./vmlinux --initrd ./initrd.img \\\n      --modules ./lib/modules/6.1.0"
    )]
    Import {
        /// Store name for the kernel.
        name: String,
        /// The kernel image (vmlinux).
        #[arg(long = "kernel", value_name = "VMLINUX")]
        vmlinux: PathBuf,
        /// An initramfs.
        #[arg(long, value_name = "FILE")]
        initrd: Option<PathBuf>,
        /// A modules directory (lib/modules/VERSION), packed as modules.tar.gz.
        #[arg(long, value_name = "DIR")]
        modules: Option<PathBuf>,
        /// Replace an existing kernel of the same name.
        #[arg(long)]
        force: bool,
    },
    /// List kernels.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a kernel (images keep their own copies).
    Rm {
        /// The kernel name.
        name: String,
    },
}

/// Runs `banger kernel …`.
pub async fn run(command: KernelCommand) -> anyhow::Result<()> {
    let state = default_state_dir();
    match command {
        KernelCommand::Import {
            name,
            vmlinux,
            initrd,
            modules,
            force,
        } => {
            let mut store = Store::open_locked(&state)?;
            import_kernel(
                &mut store,
                &name,
                &vmlinux,
                initrd.as_deref(),
                modules.as_deref(),
                force,
            )?;
            eprintln!("imported kernel {name}");
        }
        KernelCommand::List { json } => {
            let store = Store::open_read(&state)?;
            let kernels = store.kernels()?;
            if json {
                let list: Vec<_> = kernels.iter().map(|k| kernel_json(&store, k)).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if let Some(table) = kernel_table(&store, &kernels) {
                print!("{table}");
            } else {
                eprintln!("no kernels; import one with `banger kernel import NAME --kernel FILE`");
            }
        }
        KernelCommand::Rm { name } => {
            let mut store = Store::open_locked(&state)?;
            store.remove(Kind::Kernel, &name)?;
            eprintln!("removed kernel {name}");
        }
    }
    Ok(())
}
