#!/bin/bash
# Regenerates the committed seed corpora in fuzz/corpus/ (run from anywhere;
# needs GNU tar and python3). The outputs are small and committed, so this
# is only for adding seeds; libFuzzer adds its own finds next to them, which
# are not committed (see .gitignore).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$corpus"/{flatten_tar,flatten_layers,os_release,formatter}

# ---- real tars from GNU tar: formats, long names, hard links, sparse, whiteouts
src=$work/src
mkdir -p "$src/dir/sub" "$src/wh"
echo hello > "$src/dir/file"
printf 'x%.0s' {1..700} > "$src/dir/sub/bigger"
ln "$src/dir/file" "$src/dir/hardlink"
ln -s ../dir/file "$src/dir/sub/symlink"
ln -s /etc/passwd "$src/dir/abs-symlink"
long=$(printf 'l%.0s' {1..120})
mkdir -p "$src/dir/$long"
echo deep > "$src/dir/$long/$(printf 'n%.0s' {1..130})"
mkfifo "$src/dir/fifo"
chmod 4755 "$src/dir/file"
touch -d '2001-02-03 04:05:06.123456789' "$src/dir/sub/bigger"
truncate -s 1M "$src/sparse"
printf 'data' | dd of="$src/sparse" bs=1 seek=300000 conv=notrunc status=none
: > "$src/wh/.wh.gone"
: > "$src/wh/.wh..wh..opq"
setfattr -n user.fuzz -v seed "$src/dir/file" 2>/dev/null || true
t() { tar -C "$src" -b 1 --owner=0 --group=0 --numeric-owner "$@"; }
t --format=gnu -cf "$corpus/flatten_tar/gnu.tar" dir
t --format=posix --xattrs -cf "$corpus/flatten_tar/pax.tar" dir
t --format=ustar -cf "$corpus/flatten_tar/ustar-short.tar" dir/file dir/sub dir/hardlink dir/fifo
t --format=gnu --sparse -cf "$corpus/flatten_tar/sparse-oldgnu.tar" sparse
t --format=posix --sparse --sparse-version=1.0 -cf "$corpus/flatten_tar/sparse-pax-1.0.tar" sparse
t --format=posix --sparse --sparse-version=0.1 -cf "$corpus/flatten_tar/sparse-pax-0.1.tar" sparse
t --format=posix -cf "$corpus/flatten_tar/whiteouts.tar" wh dir/file
t --format=gnu -cf "$work/lower.tar" dir/file dir/sub
t --format=gnu -cf "$work/upper.tar" wh

# ---- malicious and malformed tars, crafted with Python's tarfile
python3 - "$corpus/flatten_tar" <<'PY'
import io, sys, tarfile
out = sys.argv[1]

def tar(name, entries, fmt=tarfile.GNU_FORMAT, cut=None, patch=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    b = bytearray(buf.getvalue())
    if patch:
        patch(b)
    if cut is not None:
        b = b[:cut]
    # Drop the trailing zero padding beyond the two end blocks.
    while len(b) > 2048 and b[-1536:] == bytes(1536):
        b = b[:-512]
    open(f"{out}/{name}", "wb").write(bytes(b))

def f(name, data=b"x", **kw):
    i = tarfile.TarInfo(name); i.size = len(data)
    for k, v in kw.items(): setattr(i, k, v)
    return i, data

def link(name, target, kind=tarfile.SYMTYPE):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target
    return i, None

def d(name):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755
    return i, None

def rechecksum(b, off=0):
    b[off+148:off+156] = b"        "
    s = sum(b[off:off+512])
    b[off+148:off+156] = b"%06o\0 " % s

tar("traversal.tar", [f("../../etc/passwd", b"root::0:0::/:/bin/sh\n"), f("a/../../../x")])
tar("absolute.tar", [f("/etc/shadow", b"pwned"), f("//double/slash")])
tar("symlink-escape.tar", [link("evil", "../../../../"), f("evil/etc/passwd", b"escaped")])
tar("symlink-abs-escape.tar", [link("etc", "/host-etc"), f("etc/passwd", b"escaped")])
tar("symlink-loop.tar", [link("a", "b"), link("b", "a"), f("a/x")])
tar("hardlink-missing.tar", [link("h", "does/not/exist", tarfile.LNKTYPE)])
tar("hardlink-to-dir.tar", [d("dir"), link("h", "dir", tarfile.LNKTYPE)])
tar("hardlink-escape.tar", [link("h", "../../etc/passwd", tarfile.LNKTYPE)])
tar("file-then-dir.tar", [f("x"), d("x"), f("x/y"), d("x"), f("x")])
tar("whiteout-escape.tar", [f(".wh.."), f("a/.wh...."), f(".wh./etc"), f("../.wh.etc")])
tar("dot-entries.tar", [d("."), d("./"), f("./"), link(".", "x")])
tar("device.tar", [(lambda i: (setattr(i, "type", tarfile.CHRTYPE), setattr(i, "devmajor", 4095), setattr(i, "devminor", 1048575), (i, None))[-1])(tarfile.TarInfo("dev"))])

# A PAX header claiming an enormous size, and a PAX path with a NUL.
pax = tarfile.TarInfo("huge"); pax.pax_headers = {"size": "99999999999999999999"}; pax.size = 0
tar("pax-huge-size.tar", [(pax, b"")], fmt=tarfile.PAX_FORMAT)
pax = tarfile.TarInfo("nul"); pax.pax_headers = {"path": "a\0b", "linkpath": "", "SCHILY.xattr.user.x": "v" * 300}
tar("pax-nul-path.tar", [(pax, b"")], fmt=tarfile.PAX_FORMAT)
pax = tarfile.TarInfo("s"); pax.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s", "GNU.sparse.realsize": "18446744073709551615"}
tar("pax-sparse-lies.tar", [(pax, b"999999999999\n0\n")], fmt=tarfile.PAX_FORMAT)

# Base-256 sizes: negative and absurdly large.
def base256(value):
    def p(b):
        field = (value % (1 << 88)).to_bytes(11, "big") if value >= 0 else (value & ((1 << 88) - 1)).to_bytes(11, "big")
        b[124:136] = bytes([0xff if value < 0 else 0x80]) + field
        rechecksum(b)
    return p
tar("size-negative-base256.tar", [f("neg", b"abc")], patch=base256(-1))
tar("size-huge-base256.tar", [f("big", b"abc")], patch=base256(1 << 80))
tar("size-bad-octal.tar", [f("bad", b"abc")], patch=lambda b: (b.__setitem__(slice(124, 136), b"99999999999\0"), rechecksum(b)))
tar("bad-checksum.tar", [f("x", b"abc")], patch=lambda b: b.__setitem__(148, ord("7")))
tar("truncated-data.tar", [f("x", b"y" * 2000)], cut=1024)
tar("truncated-header.tar", [f("x", b"abc")], cut=300)
long = "d/" * 300 + "f"
tar("deep-path.tar", [f(long)], fmt=tarfile.PAX_FORMAT)
PY

# ---- layer stacks: layers joined by the separator the target splits on
sep=BANGER-NEXT-LAYER
{ cat "$work/lower.tar"; printf %s "$sep"; cat "$work/upper.tar"; } > "$corpus/flatten_layers/whiteout-over-lower.tar"
python3 - "$corpus/flatten_layers" "$sep" <<'PY'
import io, sys, tarfile
out, sep = sys.argv[1], sys.argv[2].encode()
def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, arg in entries:
            i = tarfile.TarInfo(name)
            if kind == "f":
                i.size = len(arg); t.addfile(i, io.BytesIO(arg))
            elif kind == "d":
                i.type = tarfile.DIRTYPE; t.addfile(i)
            else:
                i.type = {"l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]; i.linkname = arg; t.addfile(i)
    return buf.getvalue()[:-8192] + bytes(1024)
stacks = {
    "hardlink-across-layers": [[("a/f", "f", b"lower")], [("b/h", "h", "a/f")]],
    "opaque-then-readd": [[("d/x", "f", b"1"), ("d/y", "f", b"2")], [("d/.wh..wh..opq", "f", b""), ("d/z", "f", b"3")], [("d/.wh.z", "f", b"")]],
    "symlink-swaps-dir": [[("usr/lib/x", "f", b"1")], [("lib", "l", "usr/lib"), ("lib/y", "f", b"2")], [("usr/.wh.lib", "f", b""), ("lib/z", "f", b"3")]],
    "dir-replaced-by-file": [[("d/sub/x", "f", b"1")], [("d", "f", b"now a file")], [("d/x", "f", b"again")], [(".wh.d", "f", b"")]],
}
for name, layers in stacks.items():
    open(f"{out}/{name}.tar", "wb").write(sep.join(layer(l) for l in layers))
PY

# ---- os-release samples: every family first-boot.sh knows, and some it does not
osr=$corpus/os_release
w() { printf '%s\n' "$2" > "$osr/$1"; }
w debian 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"'
w ubuntu 'PRETTY_NAME="Ubuntu 24.04 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble'
for id in kali raspbian linuxmint pop; do w "$id" "ID=$id
ID_LIKE=\"ubuntu debian\""; done
w alpine 'NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.0
PRETTY_NAME="Alpine Linux v3.20"'
w fedora 'NAME="Fedora Linux"
VERSION="40 (Container Image)"
ID=fedora
VERSION_ID=40
PRETTY_NAME="Fedora Linux 40 (Container Image)"
CPE_NAME="cpe:/o:fedoraproject:fedora:40"'
for id in rhel centos rocky almalinux; do w "$id" "ID=\"$id\"
ID_LIKE=\"rhel centos fedora\"
VERSION_ID=\"9.4\""; done
w arch 'NAME="Arch Linux"
ID=arch
BUILD_ID=rolling'
w archlinux "ID='archlinux'"
w manjaro 'ID=manjaro
ID_LIKE=arch'
w opensuse-leap 'NAME="openSUSE Leap"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.6"'
w opensuse-tumbleweed 'ID="opensuse-tumbleweed"
ID_LIKE="opensuse suse"'
w suse 'ID=suse'
w sles 'ID="sles"
ID_LIKE="suse"'
w nixos 'ID=nixos
ID_LIKE=""'
w neon 'ID=neon
ID_LIKE="ubuntu debian"'
w escapes "# comment
A='single \$quoted'
B=\"d \\\"q\\\" \\\$HOME \\\\ \\\`\"
C=plain\\ escaped
D=con\"cat\"'enated'
 E = bad
F=\"unterminated
G=two words
ID=crlf"$'\r'
printf 'ID=\xff\xfe\nNAME="\xc3"\n' > "$osr/invalid-utf8"

# ---- formatter: arbitrary bytes drive the tree builder
for i in 1 2 3 4; do head -c $((i * 512)) /dev/urandom > "$corpus/formatter/random-$i"; done
echo "seeds written to $corpus"
