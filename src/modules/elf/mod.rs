//! A minimal ELF64 little-endian reader for kernel modules.
//!
//! It reads only what depmod needs: the section header table, section names,
//! a section's bytes by name, and the `.symtab` symbols with their names from
//! `.strtab`. Every offset and size in the file is checked against the file's
//! length, so a truncated or hostile `.ko` gives an [`ElfError`], never a
//! panic or an out-of-bounds read. Like kmod, sections are found by name
//! (the first match wins) and the symbol table is `.symtab` with names in
//! `.strtab`, whatever `sh_link` says.

mod ondisk;

use zerocopy::FromBytes;

pub use ondisk::{FileHeader, SectionHeader, SymbolEntry};

/// Section index of an undefined symbol (`SHN_UNDEF`).
pub const SHN_UNDEF: u16 = 0;
/// Section index of a symbol with an absolute value (`SHN_ABS`).
pub const SHN_ABS: u16 = 0xfff1;
/// Symbol binding of a weak symbol (`STB_WEAK`).
pub const STB_WEAK: u8 = 2;
/// Section type of a section that occupies no file space (`SHT_NOBITS`).
pub const SHT_NOBITS: u32 = 8;

/// Why a file could not be read as ELF64 little-endian.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with the ELF magic or is shorter than an ELF header.
    #[error("not an ELF file")]
    NotElf,
    /// The file is ELF, but not 64-bit little-endian (the only kind banger's
    /// guests, x86-64 and arm64, use).
    #[error(
        "ELF class {class} with data encoding {data} is not supported (only 64-bit little-endian)"
    )]
    Unsupported {
        /// `e_ident[EI_CLASS]`: 1 is 32-bit, 2 is 64-bit.
        class: u8,
        /// `e_ident[EI_DATA]`: 1 is little-endian, 2 is big-endian.
        data: u8,
    },
    /// A header's size field is not the size of the structure it describes.
    #[error("section header entries are {0} bytes, expected 64")]
    SectionEntrySize(u16),
    /// A structure or section lies (partly) past the end of the file.
    #[error("{what} at offset {offset} with size {size} lies outside the {file_size}-byte file")]
    OutOfBounds {
        /// What was being read.
        what: String,
        /// Its file offset.
        offset: u64,
        /// Its size.
        size: u64,
        /// The file's size.
        file_size: usize,
    },
    /// `e_shstrndx` names no section.
    #[error("section name table index {index} is out of range ({count} sections)")]
    BadNameTableIndex {
        /// `e_shstrndx`.
        index: u16,
        /// `e_shnum`.
        count: u16,
    },
    /// The section name table is empty or does not end with a NUL byte.
    #[error("the section name table is empty or not NUL-terminated")]
    BadNameTable,
    /// A table's size is not a whole number of entries.
    #[error("section {section} is {size} bytes, not a multiple of its {entry}-byte entries")]
    RaggedTable {
        /// The section's name.
        section: String,
        /// Its size.
        size: u64,
        /// The size of one entry.
        entry: u64,
    },
    /// A name offset points past the end of its string table.
    #[error("name offset {offset} is outside {table} ({size} bytes)")]
    BadNameOffset {
        /// The offset.
        offset: u32,
        /// The string table's name.
        table: &'static str,
        /// The string table's size.
        size: usize,
    },
}

/// A parsed ELF64 little-endian file, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    header: &'a FileHeader,
    sections: &'a [SectionHeader],
    names: &'a [u8],
}

/// One section: its index, name and header.
#[derive(Clone, Copy, Debug)]
pub struct Section<'a> {
    /// Index in the section header table.
    pub index: u16,
    /// Name from the section name table (bytes before its NUL).
    pub name: &'a [u8],
    /// The header.
    pub header: &'a SectionHeader,
}

/// One symbol of `.symtab`, with its name resolved.
#[derive(Clone, Copy, Debug)]
pub struct Symbol<'a> {
    /// Index in the symbol table.
    pub index: usize,
    /// Name from `.strtab` (bytes before its NUL).
    pub name: &'a [u8],
    /// Binding (`STB_*`).
    pub bind: u8,
    /// Type (`STT_*`).
    pub kind: u8,
    /// Section index (`SHN_UNDEF` for a symbol the module needs).
    pub shndx: u16,
    /// Value.
    pub value: u64,
}

/// The symbol table and its string table.
#[derive(Clone, Copy, Debug)]
pub struct Symbols<'a> {
    entries: &'a [SymbolEntry],
    strings: &'a [u8],
}

impl<'a> Elf<'a> {
    /// Reads the file header and section header table of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        let (header, _) = FileHeader::ref_from_prefix(data).map_err(|_| ElfError::NotElf)?;
        if header.e_ident[..4] != *b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let (class, encoding) = (header.e_ident[4], header.e_ident[5]);
        if class != 2 || encoding != 1 {
            return Err(ElfError::Unsupported {
                class,
                data: encoding,
            });
        }
        let entry_size = header.e_shentsize.get();
        if usize::from(entry_size) != size_of::<SectionHeader>() {
            return Err(ElfError::SectionEntrySize(entry_size));
        }
        let count = header.e_shnum.get();
        let table = slice(
            data,
            header.e_shoff.get(),
            u64::from(count) * u64::from(entry_size),
            || "section header table".to_owned(),
        )?;
        let sections = <[SectionHeader]>::ref_from_bytes(table).map_err(|_| {
            // Unreachable: the slice is a whole number of unaligned entries.
            ElfError::SectionEntrySize(entry_size)
        })?;
        let names_index = header.e_shstrndx.get();
        let Some(names_header) = sections.get(usize::from(names_index)) else {
            return Err(ElfError::BadNameTableIndex {
                index: names_index,
                count,
            });
        };
        let names = slice(
            data,
            names_header.sh_offset.get(),
            names_header.sh_size.get(),
            || "section name table".to_owned(),
        )?;
        if names.last() != Some(&0) {
            return Err(ElfError::BadNameTable);
        }
        Ok(Self {
            data,
            header,
            sections,
            names,
        })
    }

    /// The whole file.
    pub fn file_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// The file header.
    pub fn header(&self) -> &'a FileHeader {
        self.header
    }

    /// `e_machine`: the architecture.
    pub fn machine(&self) -> u16 {
        self.header.e_machine.get()
    }

    /// The sections after the null section 0, with their names. A section
    /// whose name offset is out of range gets an empty name (kmod skips it).
    pub fn sections(&self) -> impl Iterator<Item = Section<'a>> + 'a {
        let names = self.names;
        self.sections
            .iter()
            .enumerate()
            .skip(1)
            .map(move |(index, header)| Section {
                // e_shnum is a u16, so every index fits.
                index: u16::try_from(index).unwrap_or(u16::MAX),
                name: usize::try_from(header.sh_name.get())
                    .ok()
                    .and_then(|offset| names.get(offset..))
                    .map_or(&[][..], until_nul),
                header,
            })
    }

    /// The first section named `name`, if any.
    pub fn section(&self, name: &str) -> Option<Section<'a>> {
        self.sections().find(|s| s.name == name.as_bytes())
    }

    /// The header of section `index`, if it exists.
    pub fn section_header(&self, index: u16) -> Option<&'a SectionHeader> {
        self.sections.get(usize::from(index))
    }

    /// The bytes of `section` (empty for `SHT_NOBITS`).
    pub fn data(&self, section: &Section<'a>) -> Result<&'a [u8], ElfError> {
        let header = section.header;
        if header.sh_type.get() == SHT_NOBITS {
            return Ok(&[]);
        }
        slice(
            self.data,
            header.sh_offset.get(),
            header.sh_size.get(),
            || format!("section {}", String::from_utf8_lossy(section.name)),
        )
    }

    /// The bytes of the first section named `name`, or `None` without one.
    pub fn section_data(&self, name: &str) -> Result<Option<&'a [u8]>, ElfError> {
        self.section(name).map(|s| self.data(&s)).transpose()
    }

    /// The `.symtab` symbols with names in `.strtab`, or `None` when either
    /// section is missing (a stripped module).
    pub fn symbols(&self) -> Result<Option<Symbols<'a>>, ElfError> {
        let (Some(symtab), Some(strings)) = (self.section(".symtab"), self.section(".strtab"))
        else {
            return Ok(None);
        };
        let table = self.data(&symtab)?;
        let strings = self.data(&strings)?;
        let entries =
            <[SymbolEntry]>::ref_from_bytes(table).map_err(|_| ElfError::RaggedTable {
                section: ".symtab".to_owned(),
                size: table.len() as u64,
                entry: size_of::<SymbolEntry>() as u64,
            })?;
        Ok(Some(Symbols { entries, strings }))
    }
}

impl<'a> Symbols<'a> {
    /// The number of entries, the null symbol 0 included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The raw entries, the null symbol 0 included.
    pub fn entries(&self) -> &'a [SymbolEntry] {
        self.entries
    }

    /// Symbol `index` with its name resolved: `None` past the end, an error
    /// when its name offset is outside `.strtab`.
    pub fn get(&self, index: usize) -> Option<Result<Symbol<'a>, ElfError>> {
        let entry = self.entries.get(index)?;
        Some(self.name(entry).map(|name| Symbol {
            index,
            name,
            bind: entry.st_info >> 4,
            kind: entry.st_info & 0xf,
            shndx: entry.st_shndx.get(),
            value: entry.st_value.get(),
        }))
    }

    /// The name of `entry` in `.strtab`.
    pub fn name(&self, entry: &SymbolEntry) -> Result<&'a [u8], ElfError> {
        let offset = entry.st_name.get();
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.strings.get(o..))
            .filter(|rest| !rest.is_empty())
            .map(until_nul)
            .ok_or(ElfError::BadNameOffset {
                offset,
                table: ".strtab",
                size: self.strings.len(),
            })
    }

    /// The symbols after the null symbol 0, in table order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Symbol<'a>, ElfError>> + '_ {
        (1..self.entries.len()).filter_map(|i| self.get(i))
    }
}

/// `data[offset..offset + size]`, or an error naming `what` when it does not fit.
fn slice(
    data: &[u8],
    offset: u64,
    size: u64,
    what: impl FnOnce() -> String,
) -> Result<&[u8], ElfError> {
    let range = offset
        .checked_add(size)
        .and_then(|end| Some(usize::try_from(offset).ok()?..usize::try_from(end).ok()?));
    range
        .and_then(|r| data.get(r))
        .ok_or_else(|| ElfError::OutOfBounds {
            what: what(),
            offset,
            size,
            file_size: data.len(),
        })
}

/// The bytes before the first NUL (all of them without one: kmod would read
/// on past the table; we stop at its end).
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes, |end| &bytes[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_elf::{elf, symbol, Module, PROGBITS, STRTAB, SYMTAB};
    use crate::modules::test_elf::{E_SHENTSIZE, E_SHNUM, E_SHOFF, E_SHSTRNDX};

    fn sample() -> Vec<u8> {
        let mut strtab = b"\0foo\0bar\0".to_vec();
        strtab.push(b'x'); // a last name without NUL
        let mut symtab = vec![0u8; 24];
        symtab.extend_from_slice(&symbol(1, 1, 0, 7));
        symtab.extend_from_slice(&symbol(5, 2, 1, 9));
        symtab.extend_from_slice(&symbol(9, 0, SHN_ABS, 3));
        elf(&[
            ("data", PROGBITS, b"hello".to_vec()),
            (".symtab", SYMTAB, symtab),
            (".strtab", STRTAB, strtab),
        ])
    }

    #[test]
    fn reads_sections_and_symbols() {
        let bytes = sample();
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(elf.machine(), 62);
        let names: Vec<&[u8]> = elf.sections().map(|s| s.name).collect();
        assert_eq!(names, [&b"data"[..], b".symtab", b".strtab", b".shstrtab"]);
        assert_eq!(elf.section_data("data").unwrap(), Some(&b"hello"[..]));
        assert_eq!(elf.section_data("missing").unwrap(), None);
        let symbols = elf.symbols().unwrap().unwrap();
        assert_eq!(symbols.len(), 4);
        let all: Vec<_> = symbols.iter().map(Result::unwrap).collect();
        assert_eq!(all[0].name, b"foo");
        assert_eq!((all[0].bind, all[0].shndx, all[0].value), (1, 0, 7));
        assert_eq!((all[1].name, all[1].bind), (&b"bar"[..], STB_WEAK));
        assert_eq!((all[2].name, all[2].shndx), (&b"x"[..], SHN_ABS));
    }

    /// Every prefix of a valid file, and of a synthetic module, is an error
    /// or a smaller valid file, never a panic.
    #[test]
    fn truncated_files_give_errors() {
        let module = Module {
            modinfo: &["alias=foo"],
            crc_exports: &[("f", 1)],
            undefined: &[("g", false)],
            versions: &[("g", 2)],
            ..Module::default()
        }
        .build();
        for bytes in [sample(), module] {
            for len in 0..bytes.len() {
                let cut = &bytes[..len];
                if let Ok(elf) = Elf::parse(cut) {
                    let _ = elf.symbols().map(|s| s.map(|s| s.iter().count()));
                    for s in elf.sections() {
                        let _ = elf.data(&s);
                    }
                }
            }
        }
        assert_eq!(Elf::parse(&[]).unwrap_err(), ElfError::NotElf);
        assert_eq!(Elf::parse(&sample()[..63]).unwrap_err(), ElfError::NotElf);
        let bytes = sample();
        // The section header table is last: cutting it off is out of bounds.
        let err = Elf::parse(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(err, ElfError::OutOfBounds { .. }), "{err:?}");
    }

    fn patched(at: usize, value: &[u8]) -> Vec<u8> {
        let mut bytes = sample();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    }

    #[test]
    fn bad_headers_give_typed_errors() {
        assert_eq!(
            Elf::parse(&patched(0, b"\x7fELG")).unwrap_err(),
            ElfError::NotElf
        );
        assert_eq!(
            Elf::parse(&patched(4, &[1])).unwrap_err(),
            ElfError::Unsupported { class: 1, data: 1 }
        );
        assert_eq!(
            Elf::parse(&patched(5, &[2])).unwrap_err(),
            ElfError::Unsupported { class: 2, data: 2 }
        );
        assert_eq!(
            Elf::parse(&patched(E_SHENTSIZE, &40u16.to_le_bytes())).unwrap_err(),
            ElfError::SectionEntrySize(40)
        );
        let err = Elf::parse(&patched(E_SHOFF, &u64::MAX.to_le_bytes())).unwrap_err();
        assert!(matches!(err, ElfError::OutOfBounds { .. }), "{err:?}");
        let err = Elf::parse(&patched(E_SHNUM, &u16::MAX.to_le_bytes())).unwrap_err();
        assert!(matches!(err, ElfError::OutOfBounds { .. }), "{err:?}");
        assert_eq!(
            Elf::parse(&patched(E_SHSTRNDX, &9u16.to_le_bytes())).unwrap_err(),
            ElfError::BadNameTableIndex { index: 9, count: 5 }
        );
    }

    /// Offset of section `index`'s header in `sample()`.
    fn section_header(bytes: &[u8], index: usize) -> usize {
        let shoff = u64::from_le_bytes(bytes[E_SHOFF..E_SHOFF + 8].try_into().unwrap());
        shoff as usize + 64 * index
    }

    #[test]
    fn bad_sections_give_typed_errors() {
        let bytes = sample();
        // Section 4 is .shstrtab: make it end without NUL by shrinking it.
        let mut b = bytes.clone();
        let size_at = section_header(&b, 4) + 32;
        let size = u64::from_le_bytes(b[size_at..size_at + 8].try_into().unwrap());
        b[size_at..size_at + 8].copy_from_slice(&(size - 1).to_le_bytes());
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadNameTable);
        b[size_at..size_at + 8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadNameTable);

        // Section 1's data past the end of the file.
        let mut b = bytes.clone();
        let offset_at = section_header(&b, 1) + 24;
        b[offset_at..offset_at + 8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        let elf = Elf::parse(&b).unwrap();
        let err = elf.section_data("data").unwrap_err();
        assert!(matches!(err, ElfError::OutOfBounds { .. }), "{err:?}");

        // A symbol table that is not a whole number of entries.
        let mut b = bytes.clone();
        let size_at = section_header(&b, 2) + 32;
        b[size_at..size_at + 8].copy_from_slice(&(24u64 * 4 - 1).to_le_bytes());
        let err = Elf::parse(&b).unwrap().symbols().unwrap_err();
        assert!(matches!(err, ElfError::RaggedTable { .. }), "{err:?}");

        // A symbol name offset past .strtab.
        let mut b = bytes.clone();
        let symtab = u64::from_le_bytes(
            b[section_header(&b, 2) + 24..section_header(&b, 2) + 32]
                .try_into()
                .unwrap(),
        ) as usize;
        b[symtab + 24..symtab + 28].copy_from_slice(&1000u32.to_le_bytes());
        let elf = Elf::parse(&b).unwrap();
        let symbols = elf.symbols().unwrap().unwrap();
        assert_eq!(
            symbols.get(1).unwrap().unwrap_err(),
            ElfError::BadNameOffset {
                offset: 1000,
                table: ".strtab",
                size: 10
            }
        );
        assert!(symbols.get(4).is_none());

        // A section name offset past .shstrtab reads as no name.
        let mut b = bytes;
        let name_at = section_header(&b, 1);
        b[name_at..name_at + 4].copy_from_slice(&5000u32.to_le_bytes());
        let elf = Elf::parse(&b).unwrap();
        assert_eq!(elf.section_data("data").unwrap(), None);
    }
}
