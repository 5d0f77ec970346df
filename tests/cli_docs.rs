//! Completions, man pages and `--version`, checked by the tools that
//! consume them: bash, zsh and fish load the completions and complete a
//! word, groff renders every page without a warning, and git says which
//! commit `--version` must name.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn banger(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_banger"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "banger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `program args` with `stdin`; panics naming the tool when it is missing.
fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (scripts/install-test-deps installs it): {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn version_names_the_commit_git_reports() {
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .unwrap();
    assert!(head.status.success(), "not a git checkout");
    let commit = String::from_utf8(head.stdout).unwrap().trim().to_string();
    let version = String::from_utf8(banger(&["--version"])).unwrap();
    assert_eq!(
        version,
        format!("banger {} (commit {commit})\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bash_completes_subcommands() {
    let script = banger(&["completions", "bash"]);
    let out = run(
        "bash",
        &[
            "-c",
            r#"source /dev/stdin
COMP_WORDS=(banger image l); COMP_CWORD=2
COMP_LINE='banger image l'; COMP_POINT=${#COMP_LINE}
_banger banger l image
echo "${COMPREPLY[*]}""#,
        ],
        &script,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "list ls\n");
}

#[test]
fn fish_completes_subcommands() {
    let script = banger(&["completions", "fish"]);
    let out = run(
        "fish",
        &["-c", "source; complete -C 'banger image l'"],
        &script,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "list\tList the images in the store\nls\tList a directory inside an image (no mount, no root)\n"
    );
}

/// Set-up for the interactive zsh [`ZSH_DRIVER`] runs: compsys with the
/// generated `_banger` first on fpath, and a `compadd` that appends what it
/// adds to `$BANGER_MATCHES` (calls that only query, with -O/-A/-D, are
/// passed through unrecorded).
const ZSH_INIT: &str = r#"PS1='<ready>' RPROMPT=''
fpath=($BANGER_FPATH $fpath)
autoload -U compinit && compinit -u -D
compadd() {
  if (( ! ${@[(I)-[OAD]]} )); then
    local -a matches
    builtin compadd -O matches "$@"
    print -rl -- $matches >> $BANGER_MATCHES
  fi
  builtin compadd "$@"
}
"#;

/// Drives an interactive `zsh -f -i` on a pseudo-terminal (the zpty
/// module): sources the set-up file `$1`, waits for its prompt (typed-ahead
/// input sent earlier can be lost), types `$2` and a Tab, then clears the
/// line and waits for a marker the echo of the command cannot match.
const ZSH_DRIVER: &str = r#"zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z "source ${(q)1}"
zpty -r z _ '*<ready>*'
zpty -w -n z "$2"$'	'
zpty -w -n z $''
zpty -w z 'print -- __do""ne__'
zpty -r z _ '*__done__*'
zpty -w z exit
zpty -d z
"#;

#[test]
fn zsh_completes_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let fpath = dir.path().join("functions");
    std::fs::create_dir(&fpath).unwrap();
    std::fs::write(fpath.join("_banger"), banger(&["completions", "zsh"])).unwrap();
    let init = dir.path().join("init.zsh");
    std::fs::write(&init, ZSH_INIT).unwrap();
    let matches = dir.path().join("matches");
    std::fs::write(&matches, "").unwrap();
    let out = Command::new("timeout")
        .args(["60", "zsh", "-f", "-c", ZSH_DRIVER, "zsh"])
        .arg(&init)
        .arg("banger image l")
        .env("BANGER_FPATH", &fpath)
        .env("BANGER_MATCHES", &matches)
        .stdin(Stdio::null())
        .output()
        .expect("zsh (scripts/install-test-deps installs it)");
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&matches).unwrap(), "list\nls\n");
}

#[test]
fn zsh_parses_its_completions() {
    let script = banger(&["completions", "zsh"]);
    let out = run("zsh", &["-n"], &script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&script).starts_with("#compdef banger\n"));
}

#[test]
fn every_man_page_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    banger(&["man", "--dir", dir.path().to_str().unwrap()]);
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "banger.1",
        "banger-image-export.1",
        "banger-image-ls.1",
        "banger-rootfs.1",
    ] {
        assert!(
            pages.iter().any(|p| p == expected),
            "{expected} in {pages:?}"
        );
    }
    let printed = ("banger man".to_string(), banger(&["man"]));
    let written = pages
        .iter()
        .map(|page| (page.clone(), std::fs::read(dir.path().join(page)).unwrap()));
    for (page, roff) in std::iter::once(printed).chain(written) {
        // -k: through preconv, as man(1) does, for the UTF-8 in help texts.
        let out = run("groff", &["-k", "-man", "-Tutf8", "-ww", "-P-cbou"], &roff);
        assert!(out.status.success(), "{page}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "groff warns about {page}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("SYNOPSIS"), "{page} renders a synopsis");
    }
}
