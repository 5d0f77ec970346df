//! What an adversarial run of `banger rootfs`, `image pull` and `kernel
//! import` found (issue 13), each case checked through the binary.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use banger_testkit::assert_fsck_clean;
use support::fake::{FakeServer, Reply, Request};
use support::oci::{build_layout, Comp, ImageSpec, LayerSpec};

/// A scratch directory with its own cache and store.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banger"));
        command
            .args(args)
            .env("BANGER_CACHE_DIR", self.path("cache"))
            .env("BANGER_STATE_DIR", self.path("state"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `banger ARGS` and waits at most `limit` for it.
    fn banger_within(&self, args: &[&str], limit: Duration) -> Output {
        let mut child = self.command(args).spawn().expect("run banger");
        let start = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let output = child.wait_with_output().expect("reap");
                panic!(
                    "banger {args:?} still ran after {limit:?}; stderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    }

    fn banger(&self, args: &[&str]) -> Output {
        self.banger_within(args, Duration::from_secs(120))
    }

    /// `banger rootfs tar:INPUT -o OUT --no-agents`.
    fn rootfs_from_tar(&self, input: &Path, out: &Path) -> Output {
        self.banger(&[
            "rootfs",
            &format!("tar:{}", input.display()),
            "-o",
            out.to_str().expect("utf-8"),
            "--no-agents",
        ])
    }

    /// A small rootfs tar (one file) at `name`.
    fn tar_file(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, small_tar()).expect("write tar");
        path
    }
}

fn small_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(6);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "etc/hello", &b"hello\n"[..])
        .expect("append");
    builder.into_inner().expect("tar")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit `code`, one `error:` line containing every needle.
fn assert_exit(output: &Output, code: i32, needles: &[&str]) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| panic!("no error line: {text}"))
        .to_owned();
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }
    line
}

/// Names in `dir` starting with a dot: temporary files left behind.
fn hidden_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

// ------------------------------------------------------------ exit codes

#[test]
fn a_missing_tag_in_an_oci_layout_exits_3() {
    let work = Work::new();
    let layout = work.path("layout");
    build_layout(
        &layout,
        "v1",
        &[ImageSpec::new(
            "linux/amd64",
            vec![LayerSpec::new(Comp::Gzip, &[("etc/hello", b"hello\n")])],
        )],
    );
    let out = work.path("o.ext4");
    let output = work.banger(&[
        "rootfs",
        &format!("oci:{}:nosuchtag", layout.display()),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_exit(&output, 3, &["nosuchtag"]);
    assert!(!out.exists());
}

/// A registry that knows no manifest at all.
fn empty_registry() -> FakeServer {
    FakeServer::start("127.0.0.1", |request: &Request| match request.path() {
        "/v2/" => Reply::new(200, "{}"),
        _ => Reply::new(
            404,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ),
    })
}

#[test]
fn a_missing_tag_in_a_registry_exits_3_from_rootfs_and_image_pull() {
    let work = Work::new();
    let server = empty_registry();
    let reference = format!("{}/e2e/img:gone", server.addr);
    let out = work.path("o.ext4");
    let output = work.banger(&["rootfs", &reference, "-o", out.to_str().expect("utf-8")]);
    assert_exit(&output, 3, &["404", "manifest unknown"]);
    assert!(!out.exists());
    let output = work.banger(&["image", "pull", &reference, "--name", "gone"]);
    assert_exit(&output, 3, &["404"]);
}

#[test]
fn malformed_references_and_sources_exit_2() {
    let work = Work::new();
    let out = work.path("o.ext4");
    let out = out.to_str().expect("utf-8");
    for (source, needle) in [
        ("docker://Up/X", "lowercase"),
        ("dir:/x", "unsupported transport"),
        ("oci:", "oci:DIR"),
        ("host:5000/x@sha256:1234", "sha256"),
    ] {
        let output = work.banger(&["rootfs", source, "-o", out]);
        assert_exit(&output, 2, &[needle]);
    }
    let output = work.banger(&["image", "pull", "docker://Up/X", "--name", "up"]);
    assert_exit(&output, 2, &["lowercase"]);
    let output = work.banger(&["rootfs", "alpine", "-o", out, "--platform", "linux//"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

// ------------------------------------------------------------ output paths

#[test]
fn outputs_that_are_not_regular_files_are_refused_and_left_alone() {
    let work = Work::new();
    let input = work.tar_file("in.tar");
    let source = format!("tar:{}", input.display());
    let fifo = work.path("fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("c path");
    // SAFETY: a valid NUL-terminated path; mkfifo reads nothing else.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let socket = work.path("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
    let directory = work.path("dir");
    fs::create_dir(&directory).expect("mkdir");
    let mut cases = vec![
        (fifo.clone(), "FIFO"),
        (socket.clone(), "socket"),
        (directory.clone(), "directory"),
    ];
    // `mknod n c 1 3` (a /dev/null) needs root; the other cases do not.
    let device = work.path("n");
    let c_device = std::ffi::CString::new(device.to_str().expect("utf-8")).expect("c path");
    // SAFETY: a valid NUL-terminated path; mknod reads nothing else.
    if unsafe {
        libc::mknod(
            c_device.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        )
    } == 0
    {
        cases.push((device.clone(), "character device"));
    } else {
        eprintln!("SKIPPED the device-node case: mknod needs root");
    }
    for (path, what) in &cases {
        let output = work.banger_within(
            &[
                "rootfs",
                &source,
                "-o",
                path.to_str().expect("utf-8"),
                "--no-agents",
            ],
            Duration::from_secs(60),
        );
        assert_exit(&output, 2, &[what, path.to_str().expect("utf-8")]);
    }
    assert!(fs::metadata(&fifo).expect("fifo").file_type().is_fifo());
    assert!(fs::metadata(&socket)
        .expect("socket")
        .file_type()
        .is_socket());
    assert!(fs::metadata(&directory).expect("dir").is_dir());
    if cases.len() == 4 {
        assert!(fs::metadata(&device)
            .expect("device")
            .file_type()
            .is_char_device());
    }
    assert_eq!(hidden_files(work.dir.path()), Vec::<String>::new());
}

#[test]
fn an_output_that_is_the_input_is_refused_however_it_is_spelled() {
    let work = Work::new();
    let input = work.tar_file("in.tar");
    fs::create_dir(work.path("sub")).expect("mkdir");
    fs::hard_link(&input, work.path("sub/link.tar")).expect("hard link");
    let original = fs::read(&input).expect("read");
    let source = format!("tar:{}", input.display());
    for output_path in [
        input.clone(),
        work.dir.path().join("sub/../in.tar"),
        work.path("sub/link.tar"),
    ] {
        let output = work.banger(&[
            "rootfs",
            &source,
            "-o",
            output_path.to_str().expect("utf-8"),
            "--no-agents",
        ]);
        assert_exit(&output, 2, &["input file itself"]);
        assert_eq!(fs::read(&input).expect("read"), original, "input changed");
    }
    // docker-archive:FILE is an input file too.
    let output = work.banger(&[
        "rootfs",
        &format!("docker-archive:{}", input.display()),
        "-o",
        input.to_str().expect("utf-8"),
    ]);
    assert_exit(&output, 2, &["input file itself"]);
    assert_eq!(fs::read(&input).expect("read"), original, "input changed");
}

#[test]
fn a_255_byte_output_name_works() {
    let work = Work::new();
    let input = work.tar_file("in.tar");
    fs::create_dir(work.path("out")).expect("mkdir");
    let out = work.path("out").join("x".repeat(251) + ".img");
    assert_eq!(out.file_name().expect("name").len(), 255);
    let output = work.rootfs_from_tar(&input, &out);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_fsck_clean(&out);
    assert_eq!(hidden_files(&work.path("out")), Vec::<String>::new());
}

// ------------------------------------------------------------ unreadable inputs

/// A plain `tar:` file is read through memory maps: one cut short in a
/// file's data or in the next header, and one that does not exist, each
/// fail with a message naming where, and leave nothing behind.
#[test]
fn tar_files_cut_short_or_missing_fail_naming_where() {
    let work = Work::new();
    let mut builder = tar::Builder::new(Vec::new());
    for (name, len) in [("big", 100_000usize), ("small", 3)] {
        let mut header = tar::Header::new_ustar();
        header.set_size(len as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, &vec![b'x'; len][..])
            .expect("append");
    }
    let whole = builder.into_inner().expect("tar");
    // "big": header at 0, data 512..100_512, padded to 100_864, where
    // "small"'s header starts.
    assert_eq!(&whole[100_864 + 257..100_864 + 262], b"ustar");
    fs::create_dir(work.path("out")).expect("mkdir");
    let out = work.path("out").join("cut.ext4");
    // Input name, its bytes (none: it does not exist), the error's words.
    type Case<'a> = (&'a str, Option<&'a [u8]>, &'a [&'a str]);
    let cases: [Case; 3] = [
        (
            "in-data.tar",
            Some(&whole[..60_000]),
            &["entry \"big\"", "truncated"],
        ),
        (
            "in-header.tar",
            Some(&whole[..100_964]),
            &["header at byte 100864, after \\\"big\\\"", "truncated"],
        ),
        (
            "missing.tar",
            None,
            &["opening", "missing.tar", "No such file"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let input = work.path(name);
        if let Some(bytes) = bytes {
            fs::write(&input, bytes).expect("write");
        }
        let output = work.rootfs_from_tar(&input, &out);
        assert_exit(&output, 1, needles);
        assert!(!out.exists(), "{name}: output left behind");
        assert_eq!(hidden_files(&work.path("out")), Vec::<String>::new());
    }
}

// ------------------------------------------------------------ huge sparse entries

/// A pax 0.1 sparse entry `big` of `size` bytes holding "hello" at 1 MiB.
fn sparse_tar(size: u64) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let size_text = size.to_string();
    builder
        .append_pax_extensions([
            ("GNU.sparse.size", size_text.as_bytes()),
            ("GNU.sparse.name", b"big".as_slice()),
            ("GNU.sparse.map", b"1048576,5".as_slice()),
        ])
        .expect("pax");
    let mut header = tar::Header::new_ustar();
    header.set_size(5);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "GNUSparseFile.0/big", &b"hello"[..])
        .expect("append");
    builder.into_inner().expect("tar")
}

#[test]
fn sparse_entries_of_16_tib_and_more_are_refused_naming_the_entry() {
    let work = Work::new();
    fs::create_dir(work.path("out")).expect("mkdir");
    for size in [1u64 << 44, 1 << 50, i64::MAX as u64] {
        let input = work.path("sparse.tar");
        fs::write(&input, sparse_tar(size)).expect("write");
        let out = work.path("out").join("big.ext4");
        let output = work.rootfs_from_tar(&input, &out);
        assert_exit(&output, 1, &["big", &size.to_string(), "16 TiB"]);
        assert!(!out.exists(), "{size}: output left behind");
        assert_eq!(hidden_files(&work.path("out")), Vec::<String>::new());
    }
    // One block short of 16 TiB is the largest ext4 file: written, clean.
    let input = work.path("sparse.tar");
    fs::write(&input, sparse_tar((1 << 44) - 4096)).expect("write");
    let out = work.path("out").join("max.ext4");
    let output = work.rootfs_from_tar(&input, &out);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_fsck_clean(&out);
}

// ------------------------------------------------------------ arguments

#[test]
fn vsock_port_any_is_refused_at_parsing() {
    let work = Work::new();
    let input = work.tar_file("in.tar");
    let out = work.path("o.ext4");
    let output = work.banger(&[
        "rootfs",
        &format!("tar:{}", input.display()),
        "-o",
        out.to_str().expect("utf-8"),
        "--vsock-port",
        "4294967295",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("VMADDR_PORT_ANY"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

// ------------------------------------------------------------ kernel import

#[test]
fn kernel_import_refuses_fifos_and_files_that_are_not_kernels() {
    let work = Work::new();
    let fifo = work.path("fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("c path");
    // SAFETY: a valid NUL-terminated path; mkfifo reads nothing else.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let output = work.banger_within(
        &[
            "kernel",
            "import",
            "k",
            "--kernel",
            fifo.to_str().expect("utf-8"),
        ],
        Duration::from_secs(20),
    );
    assert_exit(&output, 1, &["regular file"]);

    let empty = work.path("empty");
    fs::write(&empty, b"").expect("write");
    let text = work.path("passwd");
    fs::write(&text, b"root:x:0:0:root:/root:/bin/bash\n").expect("write");
    for path in [&empty, &text] {
        let output = work.banger(&[
            "kernel",
            "import",
            "k",
            "--kernel",
            path.to_str().expect("utf-8"),
        ]);
        assert_exit(&output, 1, &["bzImage", "ELF"]);
    }
    let list = work.banger(&["kernel", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");

    // A bzImage header (boot protocol magic at 0x202) is accepted.
    let mut bzimage = vec![0u8; 0x1000];
    bzimage[0x202..0x206].copy_from_slice(b"HdrS");
    let kernel = work.path("vmlinuz");
    fs::write(&kernel, &bzimage).expect("write");
    let output = work.banger(&[
        "kernel",
        "import",
        "k",
        "--kernel",
        kernel.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // So is an ELF file, but a FIFO as --initrd is not.
    let elf = work.path("vmlinux");
    fs::write(&elf, b"\x7fELF\x02\x01\x01").expect("write");
    let output = work.banger_within(
        &[
            "kernel",
            "import",
            "k2",
            "--kernel",
            elf.to_str().expect("utf-8"),
            "--initrd",
            fifo.to_str().expect("utf-8"),
        ],
        Duration::from_secs(20),
    );
    assert_exit(&output, 1, &["--initrd", "regular file"]);
}

// ------------------------------------------------------------ registries

#[test]
fn a_loopback_registry_that_is_down_gets_no_insecure_registry_hint() {
    let work = Work::new();
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let out = work.path("o.ext4");
    let output = work.banger(&[
        "rootfs",
        &format!("127.0.0.1:{port}/x:y"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    let line = assert_exit(&output, 1, &["could not fetch", "http://127.0.0.1"]);
    assert!(!line.contains("--insecure-registry"), "{line}");
}

/// `user:secret`, base64, as HTTP basic auth sends it.
const USER_SECRET_BASIC: &str = "Basic dXNlcjpzZWNyZXQ=";

#[test]
fn rootfs_uses_docker_config_credentials_like_image_pull() {
    let work = Work::new();
    let layout = build_layout(
        &work.path("layout"),
        "v1",
        &[ImageSpec::new(
            "linux/amd64",
            vec![LayerSpec::new(Comp::Gzip, &[("etc/hello", b"hello\n")])],
        )],
    );
    let mut blobs = std::collections::HashMap::new();
    for entry in fs::read_dir(layout.dir.join("blobs/sha256")).expect("blobs") {
        let entry = entry.expect("entry");
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        blobs.insert(digest, fs::read(entry.path()).expect("blob"));
    }
    let top = layout.top_digest.clone();
    let server = FakeServer::start("127.0.0.1", move |request: &Request| {
        if request.headers.get("authorization").map(String::as_str) != Some(USER_SECRET_BASIC) {
            return Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="fake""#);
        }
        let path = request.path();
        if path == "/v2/" {
            return Reply::new(200, "{}");
        }
        let wanted = match path.strip_prefix("/v2/private/img/manifests/") {
            Some("v1") => Some(top.clone()),
            Some(digest) => Some(digest.to_string()),
            None => path
                .strip_prefix("/v2/private/img/blobs/")
                .map(str::to_string),
        };
        match wanted.and_then(|d| blobs.get(&d).map(|b| (d, b.clone()))) {
            Some((digest, body)) => Reply::new(200, body)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .header("Docker-Content-Digest", &digest),
            None => Reply::new(404, r#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#),
        }
    });
    fs::create_dir(work.path("docker")).expect("mkdir");
    fs::write(
        work.path("docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"dXNlcjpzZWNyZXQ="}}}}}}"#,
            server.addr
        ),
    )
    .expect("config.json");
    let out = work.path("private.ext4");
    let output = work.banger(&[
        "rootfs",
        &format!("{}/private/img:v1", server.addr),
        "-o",
        out.to_str().expect("utf-8"),
        "--no-agents",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_fsck_clean(&out);
    let fs = ext4_view::Ext4::load_from_path(&out).expect("ext4");
    assert_eq!(fs.read("/etc/hello").expect("read"), b"hello\n");
}

#[test]
fn xz_bzip2_zip_and_lz4_inputs_are_named_not_called_truncated() {
    let work = Work::new();
    fs::create_dir(work.path("out")).expect("mkdir");
    // Each format's magic bytes (xz: FD 37 7A 58 5A 00; zip: a local file
    // header; lz4: frame magic 0x184D2204; bzip2: "BZh" and a block-size
    // digit), then bytes that are no tar.
    let cases: [(&str, &[u8]); 4] = [
        ("xz", b"\xfd7zXZ\x00\x00\x04garbage"),
        ("zip", b"PK\x03\x04\x14\x00\x00\x00garbage"),
        ("lz4", b"\x04\x22\x4d\x18\x64\x40garbage"),
        ("bzip2", b"BZh91AY&SYgarbage"),
    ];
    for (format, bytes) in cases {
        let input = work.path(format);
        fs::write(&input, bytes).expect("write");
        let out = work.path("out").join("x.ext4");
        let output = work.rootfs_from_tar(&input, &out);
        let line = assert_exit(&output, 1, &[&format!("{format}-compressed")]);
        assert!(!line.contains("truncated"), "{line}");
        assert!(!out.exists());
    }
}

/// Superblock bytes 0x68..0x78 (UUID) and 0xEC..0xFC (hash seed), read raw.
fn uuid_and_seed(img: &Path) -> (Vec<u8>, Vec<u8>) {
    let bytes = fs::read(img).map(|b| b[1024..2048].to_vec()).expect("read");
    (bytes[0x68..0x78].to_vec(), bytes[0xEC..0xFC].to_vec())
}

fn tar_of(path: &str, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, path, data)
        .expect("append");
    builder.into_inner().expect("tar")
}

#[test]
fn tar_images_take_their_uuid_and_hash_seed_from_their_content() {
    let work = Work::new();
    let (a, b) = (tar_of("etc/a", b"first"), tar_of("etc/b", b"second"));
    let build = |name: &str, source: &str, stdin: Option<&[u8]>| {
        let out = work.path(name);
        let mut command = work.command(&[
            "rootfs",
            source,
            "-o",
            out.to_str().expect("utf-8"),
            "--no-agents",
        ]);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().expect("run");
        if let Some(bytes) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(bytes)
                .expect("write stdin");
        }
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "{}", stderr(&output));
        assert_fsck_clean(&out);
        uuid_and_seed(&out)
    };
    let stdin_a = build("sa.ext4", "tar:-", Some(&a));
    let stdin_b = build("sb.ext4", "tar:-", Some(&b));
    assert_ne!(stdin_a.0, stdin_b.0, "two tar:- images share a UUID");
    assert_ne!(stdin_a.1, stdin_b.1, "two tar:- images share a hash seed");

    // The same content under two paths: one UUID; new content at one path: another.
    fs::write(work.path("one.tar"), &a).expect("write");
    fs::write(work.path("two.tar"), &a).expect("write");
    let one = build(
        "one.ext4",
        &format!("tar:{}", work.path("one.tar").display()),
        None,
    );
    let two = build(
        "two.ext4",
        &format!("tar:{}", work.path("two.tar").display()),
        None,
    );
    assert_eq!(one, two, "same content, different ids");
    assert_eq!(one, stdin_a, "a file and stdin with the same tar differ");
    fs::write(work.path("one.tar"), &b).expect("write");
    let changed = build(
        "changed.ext4",
        &format!("tar:{}", work.path("one.tar").display()),
        None,
    );
    assert_ne!(
        changed.0, one.0,
        "new content at the same path kept the UUID"
    );
}

/// A registry whose `/v2/` answers at once but whose manifests trickle out
/// one byte every 100 ms, forever (the declared length is never reached).
fn trickling_registry() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                }
                let mut out = stream;
                if request.starts_with("GET /v2/ ") {
                    let _ = out.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    );
                    return;
                }
                let _ = out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
                );
                while out.write_all(b" ").and_then(|()| out.flush()).is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    addr
}

#[test]
fn a_registry_trickling_bytes_fails_the_pull_at_the_minimum_speed() {
    let work = Work::new();
    let addr = trickling_registry();
    let out = work.path("o.ext4");
    let start = Instant::now();
    let output = work.banger_within(
        &[
            "rootfs",
            &format!("{addr}/slow/img:v1"),
            "-o",
            out.to_str().expect("utf-8"),
            "--min-speed",
            "100",
            "--speed-time",
            "2",
        ],
        Duration::from_secs(60),
    );
    // About 20 bytes in the first 2 s, below 200: the pull stops there.
    assert_exit(&output, 1, &["slow/img", "100 bytes/s", "--min-speed"]);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(!out.exists());
}

#[test]
fn the_entry_limit_is_a_clear_error_and_configurable() {
    let work = Work::new();
    let mut builder = tar::Builder::new(Vec::new());
    for name in ["a", "b", "c"] {
        let mut header = tar::Header::new_ustar();
        header.set_size(0);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, &b""[..])
            .expect("append");
    }
    let tar = work.path("three.tar");
    fs::write(&tar, builder.into_inner().expect("tar")).expect("write tar");
    let source = format!("tar:{}", tar.display());
    let out = work.path("out.ext4");
    let out_arg = out.to_str().expect("utf-8");
    let refused = work.banger(&[
        "rootfs",
        &source,
        "-o",
        out_arg,
        "--no-agents",
        "--max-entries",
        "2",
    ]);
    assert_exit(
        &refused,
        1,
        &["more than 2 entries (--max-entries raises the limit)"],
    );
    assert!(!out.exists());
    assert!(hidden_files(work.dir.path()).is_empty());
    let allowed = work.banger(&[
        "rootfs",
        &source,
        "-o",
        out_arg,
        "--no-agents",
        "--max-entries",
        "3",
    ]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert_fsck_clean(&out);
}
