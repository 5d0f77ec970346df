//! Hand-built ELF files for the unit tests: laid out byte by byte from the
//! ELF64 specification, not through the reader under test.

/// `SHT_PROGBITS`.
pub const PROGBITS: u32 = 1;
/// `SHT_SYMTAB`.
pub const SYMTAB: u32 = 2;
/// `SHT_STRTAB`.
pub const STRTAB: u32 = 3;

/// Offset of `e_shoff` in the file header.
pub const E_SHOFF: usize = 0x28;
/// Offset of `e_shentsize`.
pub const E_SHENTSIZE: usize = 0x3a;
/// Offset of `e_shnum`.
pub const E_SHNUM: usize = 0x3c;
/// Offset of `e_shstrndx`.
pub const E_SHSTRNDX: usize = 0x3e;

/// An ELF64 little-endian relocatable file (x86-64) with `sections` (name,
/// type, contents) after the null section, then `.shstrtab`, then the
/// section header table. A symbol table's `sh_link` names the section
/// after it (for readelf; the reader under test goes by name, like kmod).
pub fn elf(sections: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    out[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    out[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    let mut names = vec![0u8];
    let mut headers = vec![[0u8; 64]];
    let mut add = |out: &mut Vec<u8>, names: &mut Vec<u8>, name: &str, kind: u32, data: &[u8]| {
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&(names.len() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&(out.len() as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        if kind == SYMTAB {
            // Linked to the string table, which always follows it here.
            h[40..44].copy_from_slice(&(headers.len() as u32 + 1).to_le_bytes());
            h[56..64].copy_from_slice(&24u64.to_le_bytes());
        }
        names.extend_from_slice(name.as_bytes());
        names.push(0);
        out.extend_from_slice(data);
        headers.push(h);
    };
    for (name, kind, data) in sections {
        add(&mut out, &mut names, name, *kind, data);
    }
    let mut shstrtab = names.clone();
    shstrtab.extend_from_slice(b".shstrtab\0");
    add(&mut out, &mut names, ".shstrtab", STRTAB, &shstrtab);
    let count = headers.len();
    let shoff = out.len() as u64;
    for h in &headers {
        out.extend_from_slice(h);
    }
    out[E_SHOFF..E_SHOFF + 8].copy_from_slice(&shoff.to_le_bytes());
    out[E_SHENTSIZE..E_SHENTSIZE + 2].copy_from_slice(&64u16.to_le_bytes());
    out[E_SHNUM..E_SHNUM + 2].copy_from_slice(&(count as u16).to_le_bytes());
    out[E_SHSTRNDX..E_SHSTRNDX + 2].copy_from_slice(&((count - 1) as u16).to_le_bytes());
    out
}

/// One `Elf64_Sym`.
pub fn symbol(name: u32, bind: u8, shndx: u16, value: u64) -> [u8; 24] {
    let mut s = [0u8; 24];
    s[0..4].copy_from_slice(&name.to_le_bytes());
    s[4] = bind << 4;
    s[6..8].copy_from_slice(&shndx.to_le_bytes());
    s[8..16].copy_from_slice(&value.to_le_bytes());
    s
}

/// What a synthetic module holds.
#[derive(Default)]
pub struct Module<'a> {
    /// `.modinfo` strings (`key=value`).
    pub modinfo: &'a [&'a str],
    /// Exports with CRCs: `__crc_NAME` symbols pointing into a CRC section.
    pub crc_exports: &'a [(&'a str, u32)],
    /// `__ksymtab_strings` names.
    pub ksymtab: &'a [&'a str],
    /// Undefined symbols: (name, weak).
    pub undefined: &'a [(&'a str, bool)],
    /// `__versions` entries: (name, crc).
    pub versions: &'a [(&'a str, u64)],
}

impl Module<'_> {
    /// The module's bytes. Section indexes: 1 `.modinfo`, 2 `__kcrctab`,
    /// 3 `__ksymtab_strings`, 4 `__versions`, 5 `.symtab`, 6 `.strtab`.
    pub fn build(&self) -> Vec<u8> {
        let mut modinfo = Vec::new();
        for entry in self.modinfo {
            modinfo.extend_from_slice(entry.as_bytes());
            modinfo.push(0);
        }
        let mut crcs = Vec::new();
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24];
        for (name, crc) in self.crc_exports {
            let name_off = strtab.len() as u32;
            strtab.extend_from_slice(format!("__crc_{name}\0").as_bytes());
            symtab.extend_from_slice(&symbol(name_off, 0, 2, crcs.len() as u64));
            crcs.extend_from_slice(&crc.to_le_bytes());
        }
        for (name, weak) in self.undefined {
            let name_off = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            symtab.extend_from_slice(&symbol(name_off, if *weak { 2 } else { 1 }, 0, 0));
        }
        let mut ksymtab = Vec::new();
        for name in self.ksymtab {
            ksymtab.extend_from_slice(name.as_bytes());
            ksymtab.push(0);
        }
        let mut versions = Vec::new();
        for (name, crc) in self.versions {
            let mut entry = [0u8; 64];
            entry[..8].copy_from_slice(&crc.to_le_bytes());
            entry[8..8 + name.len()].copy_from_slice(name.as_bytes());
            versions.extend_from_slice(&entry);
        }
        elf(&[
            (".modinfo", PROGBITS, modinfo),
            ("__kcrctab", PROGBITS, crcs),
            ("__ksymtab_strings", PROGBITS, ksymtab),
            ("__versions", PROGBITS, versions),
            (".symtab", SYMTAB, symtab),
            (".strtab", STRTAB, strtab),
        ])
    }
}
