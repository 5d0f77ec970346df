//! The `banger` command line; the commands live in `src/cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
