//! The on-disk ELF64 structures banger reads, little-endian and unaligned
//! so that they can be viewed in place at any offset of a module's bytes.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

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

// The sizes the ELF64 specification gives these structures.
const _: () = assert!(size_of::<FileHeader>() == 64);
const _: () = assert!(size_of::<SectionHeader>() == 64);
const _: () = assert!(size_of::<SymbolEntry>() == 24);
