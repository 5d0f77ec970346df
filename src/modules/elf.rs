//! A minimal ELF64 little-endian reader for kernel modules.
//!
//! It reads only what depmod needs: the section header table, section names,
//! a section's bytes by name, and the `.symtab` symbols with their names from
//! `.strtab`. Every offset and size in the file is checked against the file's
//! length, so a truncated or hostile `.ko` gives an [`ElfError`], never a
//! panic or an out-of-bounds read. Like kmod, sections are found by name
//! (the first match wins) and the symbol table is `.symtab` with names in
//! `.strtab`, whatever `sh_link` says.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

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

/// `Elf64_Ehdr`, the file header.
#[derive(Clone, Copy, Debug, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FileHeader {
    /// Magic, class, data encoding, version, ABI.
    pub e_ident: [u8; 16],
    /// Object file type (`ET_REL` for modules).
    pub e_type: U16,
    /// Architecture.
    pub e_machine: U16,
    /// Object file version.
    pub e_version: U32,
    /// Entry point (0 in modules).
    pub e_entry: U64,
    /// Program header table offset.
    pub e_phoff: U64,
    /// Section header table offset.
    pub e_shoff: U64,
    /// Processor flags.
    pub e_flags: U32,
    /// This header's size.
    pub e_ehsize: U16,
    /// Program header entry size.
    pub e_phentsize: U16,
    /// Program header count.
    pub e_phnum: U16,
    /// Section header entry size.
    pub e_shentsize: U16,
    /// Section header count.
    pub e_shnum: U16,
    /// Index of the section holding section names.
    pub e_shstrndx: U16,
}

/// `Elf64_Shdr`, one section header.
#[derive(Clone, Copy, Debug, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SectionHeader {
    /// Offset of the name in the section name table.
    pub sh_name: U32,
    /// Section type.
    pub sh_type: U32,
    /// Flags.
    pub sh_flags: U64,
    /// Address when loaded.
    pub sh_addr: U64,
    /// File offset of the contents.
    pub sh_offset: U64,
    /// Size of the contents.
    pub sh_size: U64,
    /// Linked section.
    pub sh_link: U32,
    /// Extra information.
    pub sh_info: U32,
    /// Alignment.
    pub sh_addralign: U64,
    /// Entry size of tables.
    pub sh_entsize: U64,
}

/// `Elf64_Sym`, one symbol table entry.
#[derive(Clone, Copy, Debug, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SymbolEntry {
    /// Offset of the name in `.strtab`.
    pub st_name: U32,
    /// Binding (high nibble) and type (low nibble).
    pub st_info: u8,
    /// Visibility.
    pub st_other: u8,
    /// Index of the section the symbol is defined in, or a special index.
    pub st_shndx: U16,
    /// Value (an offset within its section in a relocatable file).
    pub st_value: U64,
    /// Size.
    pub st_size: U64,
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
