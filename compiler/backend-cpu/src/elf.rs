//! A small linker: turns the relocatable ELF object that LLVM emits for a module into a shared
//! library without running an external program (`ld` costs 15 ms of CPU and a process start,
//! a large part of a whole `tkc build`).
//!
//! It handles what our objects contain: allocatable sections (code, constant pools, data), the
//! x86-64 relocations `R_X86_64_PC32`/`PLT32` (to defined symbols, or through a PLT stub and a GOT
//! slot to undefined functions of libm and libc) and `GOTPCREL`(`X`) (through a GOT slot), and
//! exports every global function. Anything else (another relocation type, thread-local data,
//! an absolute address in read-only data, an undefined symbol that is not a plain libc/libm
//! function such as a libgcc helper) makes [`link`] return `None`, and the caller falls back to
//! the system linker.
//!
//! Output layout (virtual addresses equal file offsets): the ELF header and program headers, then
//! in the read-execute segment `.hash`, `.dynsym`, `.dynstr`, `.rela.dyn`, the PLT stubs and the
//! object's read-only sections; in the read-write segment (page aligned) the GOT, the object's
//! writable sections and `.dynamic`. Program headers: two `PT_LOAD`, `PT_DYNAMIC` and a
//! non-executable `PT_GNU_STACK`. There is no section header table (the dynamic loader does
//! not need one). Undefined functions resolve at load time against `libm.so.6` and `libc.so.6`
//! (`DT_NEEDED`).

use std::collections::HashMap;

const SHT_SYMTAB: u32 = 2;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_TLS: u64 = 0x400;

const R_X86_64_PC32: u32 = 2;
const R_X86_64_PLT32: u32 = 4;
const R_X86_64_GOTPCREL: u32 = 9;
const R_X86_64_GOTPCRELX: u32 = 41;
const R_X86_64_REX_GOTPCRELX: u32 = 42;
const R_X86_64_GLOB_DAT: u32 = 6;
const R_X86_64_RELATIVE: u32 = 8;

const PAGE: u64 = 0x1000;

fn u16at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

struct Section {
    name: String,
    kind: u32,
    flags: u64,
    offset: usize,
    size: usize,
    link: u32,
    info: u32,
    align: u64,
}

struct Symbol {
    name: String,
    bind: u8,
    kind: u8,
    shndx: u16,
    value: u64,
}

fn cstr(b: &[u8], o: usize) -> Option<String> {
    let s = b.get(o..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

fn align_up(x: u64, a: u64) -> u64 {
    let a = a.max(1);
    x.div_ceil(a) * a
}

/// Functions an object may import: they must come from libm or libc.
fn importable(name: &str) -> bool {
    !name.starts_with("__") && !name.is_empty()
}

/// Links `obj` (an x86-64 ELF relocatable) into a shared library, or `None` if it needs
/// something this linker does not do.
pub(crate) fn link(obj: &[u8]) -> Option<Vec<u8>> {
    if obj.get(0..4)? != b"\x7fELF" || obj[4] != 2 || obj[5] != 1 || u16at(obj, 18)? != 62 {
        return None;
    }
    let shoff = u64at(obj, 0x28)? as usize;
    let shentsize = u16at(obj, 0x3a)? as usize;
    let shnum = u16at(obj, 0x3c)? as usize;
    let shstrndx = u16at(obj, 0x3e)? as usize;
    let mut raw = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        raw.push((
            u32at(obj, h)?,
            Section {
                name: String::new(),
                kind: u32at(obj, h + 4)?,
                flags: u64at(obj, h + 8)?,
                offset: u64at(obj, h + 0x18)? as usize,
                size: u64at(obj, h + 0x20)? as usize,
                link: u32at(obj, h + 0x28)?,
                info: u32at(obj, h + 0x2c)?,
                align: u64at(obj, h + 0x30)?,
            },
        ));
    }
    let shstr = raw.get(shstrndx)?.1.offset;
    let mut secs = Vec::new();
    for (n, mut s) in raw {
        s.name = cstr(obj, shstr + n as usize)?;
        secs.push(s);
    }

    // Symbols.
    let symtab = secs.iter().position(|s| s.kind == SHT_SYMTAB)?;
    let strtab = secs.get(secs[symtab].link as usize)?.offset;
    let mut syms = Vec::new();
    for i in 0..secs[symtab].size / 24 {
        let o = secs[symtab].offset + i * 24;
        let info = *obj.get(o + 4)?;
        syms.push(Symbol {
            name: cstr(obj, strtab + u32at(obj, o)? as usize)?,
            bind: info >> 4,
            kind: info & 0xf,
            shndx: u16at(obj, o + 6)?,
            value: u64at(obj, o + 8)?,
        });
    }

    // Allocated sections, read-only ones first.
    let alloc: Vec<usize> =
        (0..secs.len()).filter(|&i| secs[i].flags & SHF_ALLOC != 0 && secs[i].size > 0).collect();
    if alloc.iter().any(|&i| secs[i].flags & SHF_TLS != 0) {
        return None;
    }
    let ro: Vec<usize> =
        alloc.iter().copied().filter(|&i| secs[i].flags & SHF_WRITE == 0).collect();
    let rw: Vec<usize> =
        alloc.iter().copied().filter(|&i| secs[i].flags & SHF_WRITE != 0).collect();

    // Relocations of allocated sections; imports and GOT slots they need.
    let mut relocs = Vec::new(); // (target section, offset, type, symbol, addend)
    for s in &secs {
        if s.kind != SHT_RELA || !alloc.contains(&(s.info as usize)) {
            continue;
        }
        if s.link as usize != symtab {
            return None;
        }
        for i in 0..s.size / 24 {
            let o = s.offset + i * 24;
            let info = u64at(obj, o + 8)?;
            relocs.push((
                s.info as usize,
                u64at(obj, o)?,
                (info & 0xffff_ffff) as u32,
                (info >> 32) as usize,
                u64at(obj, o + 16)? as i64,
            ));
        }
    }
    let mut imports: Vec<String> = Vec::new();
    let mut got: Vec<usize> = Vec::new(); // symbol indices with a GOT slot
    for &(_, _, ty, sym, _) in &relocs {
        let s = syms.get(sym)?;
        let undefined = s.shndx == 0;
        match ty {
            R_X86_64_PC32 | R_X86_64_PLT32 => {
                if undefined {
                    if ty != R_X86_64_PLT32 || !importable(&s.name) {
                        return None;
                    }
                    if !imports.contains(&s.name) {
                        imports.push(s.name.clone());
                    }
                    if !got.contains(&sym) {
                        got.push(sym);
                    }
                }
            }
            R_X86_64_GOTPCREL | R_X86_64_GOTPCRELX | R_X86_64_REX_GOTPCRELX => {
                if undefined {
                    if !importable(&s.name) {
                        return None;
                    }
                    if !imports.contains(&s.name) {
                        imports.push(s.name.clone());
                    }
                }
                if !got.contains(&sym) {
                    got.push(sym);
                }
            }
            _ => return None,
        }
        // Special section indices (absolute, common) are not supported.
        if s.shndx >= 0xff00 {
            return None;
        }
    }
    let exports: Vec<usize> = (0..syms.len())
        .filter(|&i| {
            let s = &syms[i];
            s.bind == 1 && s.shndx != 0 && s.shndx < 0xff00 && s.kind == 2
        })
        .collect();

    // Dynamic symbols: null, exports, imports.
    let mut dynstr = vec![0u8];
    let add_str = |s: &str, dynstr: &mut Vec<u8>| -> u32 {
        let o = dynstr.len() as u32;
        dynstr.extend_from_slice(s.as_bytes());
        dynstr.push(0);
        o
    };
    let needed: Vec<u32> = if imports.is_empty() {
        Vec::new()
    } else {
        vec![add_str("libm.so.6", &mut dynstr), add_str("libc.so.6", &mut dynstr)]
    };
    let mut dyn_names = Vec::new();
    for &i in &exports {
        dyn_names.push(add_str(&syms[i].name, &mut dynstr));
    }
    for name in &imports {
        dyn_names.push(add_str(name, &mut dynstr));
    }
    let ndyn = 1 + exports.len() + imports.len();

    // Layout.
    let nphdr = 4u64;
    let mut at = 64 + 56 * nphdr;
    let hash_off = align_up(at, 8);
    at = hash_off + 4 * (2 + 1 + ndyn as u64);
    let dynsym_off = align_up(at, 8);
    at = dynsym_off + 24 * ndyn as u64;
    let dynstr_off = at;
    at += dynstr.len() as u64;
    let nrela = got.len() as u64;
    let rela_off = align_up(at, 8);
    at = rela_off + 24 * nrela;
    let plt_off = align_up(at, 16);
    let plt_of: HashMap<String, u64> =
        imports.iter().enumerate().map(|(i, n)| (n.clone(), plt_off + 16 * i as u64)).collect();
    at = plt_off + 16 * imports.len() as u64;
    let mut addr: HashMap<usize, u64> = HashMap::new();
    for &i in &ro {
        let a = align_up(at, secs[i].align);
        addr.insert(i, a);
        at = a + secs[i].size as u64;
    }
    let rx_end = at;
    let rw_start = align_up(rx_end, PAGE);
    at = rw_start;
    let got_off = at;
    let got_slot: HashMap<usize, u64> =
        got.iter().enumerate().map(|(k, &s)| (s, got_off + 8 * k as u64)).collect();
    at += 8 * got.len() as u64;
    for &i in &rw {
        let a = align_up(at, secs[i].align);
        addr.insert(i, a);
        at = a + secs[i].size as u64;
    }
    let dyn_off = align_up(at, 8);
    let mut dynamic: Vec<(u64, u64)> = needed.iter().map(|&n| (1, n as u64)).collect();
    dynamic.extend([(4, hash_off), (5, dynstr_off), (6, dynsym_off), (10, dynstr.len() as u64)]);
    dynamic.push((11, 24));
    if nrela > 0 {
        dynamic.extend([(7, rela_off), (8, 24 * nrela), (9, 24)]);
    }
    dynamic.push((0, 0));
    let end = dyn_off + 16 * dynamic.len() as u64;

    let mut out = vec![0u8; end as usize];
    let put16 = |b: &mut Vec<u8>, o: u64, v: u16| {
        b[o as usize..o as usize + 2].copy_from_slice(&v.to_le_bytes())
    };
    let put32 = |b: &mut Vec<u8>, o: u64, v: u32| {
        b[o as usize..o as usize + 4].copy_from_slice(&v.to_le_bytes())
    };
    let put64 = |b: &mut Vec<u8>, o: u64, v: u64| {
        b[o as usize..o as usize + 8].copy_from_slice(&v.to_le_bytes())
    };

    // ELF header.
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little endian
    out[6] = 1; // version
    put16(&mut out, 16, 3); // ET_DYN
    put16(&mut out, 18, 62); // x86-64
    put32(&mut out, 20, 1);
    put64(&mut out, 32, 64); // phoff
    put16(&mut out, 52, 64); // ehsize
    put16(&mut out, 54, 56); // phentsize
    put16(&mut out, 56, nphdr as u16);
    put16(&mut out, 58, 64); // shentsize (no section headers)

    // Program headers: (type, flags, offset, size, align).
    let phdrs = [
        (1u32, 5u32, 0u64, rx_end, PAGE),
        (1, 6, rw_start, end - rw_start, PAGE),
        (2, 6, dyn_off, end - dyn_off, 8),
        (0x6474_e551, 6, 0, 0, 16),
    ];
    for (k, &(ty, fl, off, size, al)) in phdrs.iter().enumerate() {
        let h = 64 + 56 * k as u64;
        put32(&mut out, h, ty);
        put32(&mut out, h + 4, fl);
        put64(&mut out, h + 8, off);
        put64(&mut out, h + 16, off);
        put64(&mut out, h + 24, off);
        put64(&mut out, h + 32, size);
        put64(&mut out, h + 40, size);
        put64(&mut out, h + 48, al);
    }

    // .hash: one bucket chaining every symbol.
    put32(&mut out, hash_off, 1);
    put32(&mut out, hash_off + 4, ndyn as u32);
    put32(&mut out, hash_off + 8, if ndyn > 1 { 1 } else { 0 });
    for i in 0..ndyn as u64 {
        let next = if i == 0 || i + 1 == ndyn as u64 { 0 } else { i as u32 + 1 };
        put32(&mut out, hash_off + 12 + 4 * i, next);
    }

    // .dynsym and .dynstr.
    let sym_addr = |i: usize| -> Option<u64> {
        let s = &syms[i];
        Some(addr.get(&(s.shndx as usize))? + s.value)
    };
    for (k, &i) in exports.iter().enumerate() {
        let o = dynsym_off + 24 * (1 + k as u64);
        put32(&mut out, o, dyn_names[k]);
        out[o as usize + 4] = (1 << 4) | 2; // GLOBAL FUNC
        put16(&mut out, o + 6, 1); // any defined section
        put64(&mut out, o + 8, sym_addr(i)?);
    }
    let dyn_index: HashMap<String, u32> = imports
        .iter()
        .enumerate()
        .map(|(k, n)| (n.clone(), (1 + exports.len() + k) as u32))
        .collect();
    for (k, _) in imports.iter().enumerate() {
        let o = dynsym_off + 24 * (1 + exports.len() + k) as u64;
        put32(&mut out, o, dyn_names[exports.len() + k]);
        out[o as usize + 4] = (1 << 4) | 2; // GLOBAL FUNC, undefined
    }
    out[dynstr_off as usize..dynstr_off as usize + dynstr.len()].copy_from_slice(&dynstr);

    // GOT slots and their dynamic relocations.
    for (k, &s) in got.iter().enumerate() {
        let o = rela_off + 24 * k as u64;
        let slot = got_slot[&s];
        put64(&mut out, o, slot);
        if syms[s].shndx == 0 {
            let idx = dyn_index[&syms[s].name] as u64;
            put64(&mut out, o + 8, (idx << 32) | R_X86_64_GLOB_DAT as u64);
        } else {
            put64(&mut out, o + 8, R_X86_64_RELATIVE as u64);
            put64(&mut out, o + 16, sym_addr(s)?);
        }
    }
    // PLT stubs: jmp *slot(%rip).
    for (k, name) in imports.iter().enumerate() {
        let stub = plt_off + 16 * k as u64;
        let s = got.iter().copied().find(|&g| syms[g].shndx == 0 && &syms[g].name == name)?;
        out[stub as usize] = 0xff;
        out[stub as usize + 1] = 0x25;
        let disp = got_slot[&s] as i64 - (stub as i64 + 6);
        put32(&mut out, stub + 2, i32::try_from(disp).ok()? as u32);
    }

    // Section contents.
    for &i in ro.iter().chain(&rw) {
        let s = &secs[i];
        if s.kind == SHT_NOBITS {
            continue;
        }
        let a = addr[&i] as usize;
        out[a..a + s.size].copy_from_slice(obj.get(s.offset..s.offset + s.size)?);
    }

    // Relocations.
    for &(sec, off, ty, sym, addend) in &relocs {
        let p = addr[&sec] + off;
        let target = match ty {
            R_X86_64_PC32 | R_X86_64_PLT32 => {
                if syms[sym].shndx == 0 {
                    plt_of[&syms[sym].name]
                } else {
                    sym_addr(sym)?
                }
            }
            _ => got_slot[&sym],
        };
        let v = target as i64 + addend - p as i64;
        put32(&mut out, p, i32::try_from(v).ok()? as u32);
    }

    // .dynamic.
    for (k, &(tag, val)) in dynamic.iter().enumerate() {
        put64(&mut out, dyn_off + 16 * k as u64, tag);
        put64(&mut out, dyn_off + 16 * k as u64 + 8, val);
    }
    Some(out)
}
