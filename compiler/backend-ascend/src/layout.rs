//! Placement of blocks in the Unified Buffer: the row layout of a tile, op positions and value
//! lifetimes over a function, and the static first-fit allocator of the `VECCALC` buffer.
//!
//! # Tile layout
//!
//! A block of shape `[d0, …, dn-2, C]` is stored as `rows = d0·…·dn-2` rows of `pitch` elements.
//! A single row has `pitch = C`; several rows have `pitch = roundup(C, 32)` so that every row
//! starts 32-byte aligned for every dtype (what `DataCopyPad`, the vector APIs and per-row calls
//! need) and a cast between dtypes keeps the element positions. Allocations are rounded up to 256
//! bytes so that `Compare`/`Select` can run on whole 256-byte repeats.

use std::collections::HashMap;
use tk_ir::{DType, Function, OpId, RegionId, Value, ValueDef};

/// Row layout of a block in UB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shape: Vec<u32>,
    pub rows: u32,
    pub cols: u32,
    pub pitch: u32,
}

impl Layout {
    pub fn of(shape: &[u32]) -> Layout {
        let cols = shape.last().copied().unwrap_or(1).max(1);
        let rows: u32 = shape[..shape.len().saturating_sub(1)].iter().product::<u32>().max(1);
        let pitch = if rows == 1 { cols } else { cols.div_ceil(32) * 32 };
        Layout { shape: shape.to_vec(), rows, cols, pitch }
    }

    /// Elements a whole-tile vector op covers (the last row without its padding).
    pub fn count(&self) -> u64 {
        u64::from(self.rows - 1) * u64::from(self.pitch) + u64::from(self.cols)
    }

    /// Elements to allocate for `dtype` (bool tiles are bit masks), rounded to 256 bytes.
    pub fn alloc_bytes(&self, dtype: DType) -> u64 {
        let elems = u64::from(self.rows) * u64::from(self.pitch);
        let bytes = if dtype == DType::Bool {
            elems.div_ceil(8)
        } else {
            elems * u64::from(dtype.size_bytes())
        };
        bytes.div_ceil(256).max(1) * 256
    }

    pub fn alloc_elems(&self, dtype: DType) -> u64 {
        if dtype == DType::Bool {
            self.alloc_bytes(dtype)
        } else {
            self.alloc_bytes(dtype) / u64::from(dtype.size_bytes())
        }
    }
}

/// Op positions in program order and value lifetimes, for the allocator.
pub struct Liveness {
    pub pos: HashMap<OpId, u32>,
    /// Last position inside an op's nested regions (its own position if it has none).
    pub end: HashMap<OpId, u32>,
    /// The region an op sits in.
    pub op_region: HashMap<OpId, RegionId>,
    /// The op owning a region (none for the body).
    pub region_parent: HashMap<RegionId, OpId>,
    /// The last position at which a value is needed, uses in nested regions lifted to the op of
    /// the value's own region that contains them.
    pub last_use: HashMap<Value, u32>,
}

impl Liveness {
    pub fn compute(f: &Function) -> Liveness {
        let mut lv = Liveness {
            pos: HashMap::new(),
            end: HashMap::new(),
            op_region: HashMap::new(),
            region_parent: HashMap::new(),
            last_use: HashMap::new(),
        };
        let mut counter = 0u32;
        lv.number(f, f.body, &mut counter);
        for (&op, _) in lv.pos.clone().iter() {
            for v in f.op(op).op.operands() {
                let home = lv.home_region(f, v);
                let at = lv.lift(op, home);
                let e = lv.last_use.entry(v).or_insert(0);
                *e = (*e).max(at);
            }
        }
        lv
    }

    fn number(&mut self, f: &Function, r: RegionId, counter: &mut u32) {
        for &op in &f.region(r).ops {
            self.pos.insert(op, *counter);
            self.op_region.insert(op, r);
            *counter += 1;
            for sub in f.op(op).op.regions() {
                self.region_parent.insert(sub, op);
                self.number(f, sub, counter);
            }
            self.end.insert(op, *counter - 1);
        }
    }

    /// The region a value is defined in.
    pub fn home_region(&self, f: &Function, v: Value) -> RegionId {
        match f.value(v).def {
            ValueDef::Param(_) => f.body,
            ValueDef::Result { op, .. } => self.op_region.get(&op).copied().unwrap_or(f.body),
            ValueDef::RegionArg { region, .. } => region,
        }
    }

    /// The position standing for a use at `op` as seen from `home`: the end of the ancestor of
    /// `op` that sits directly in `home` (so values live across whole loops that use them).
    fn lift(&self, op: OpId, home: RegionId) -> u32 {
        let mut cur = op;
        loop {
            let r = self.op_region.get(&cur).copied();
            if r == Some(home) || r.is_none() {
                break;
            }
            match r.and_then(|r| self.region_parent.get(&r)) {
                Some(&p) => cur = p,
                None => break,
            }
        }
        if cur == op {
            self.pos.get(&op).copied().unwrap_or(0)
        } else {
            self.end.get(&cur).copied().unwrap_or(0)
        }
    }
}

/// One live block of the `VECCALC` buffer.
#[derive(Clone, Debug)]
struct Block {
    offset: u64,
    bytes: u64,
    /// Free once the emitter has passed this position.
    until: u32,
}

/// First-fit static allocator over the `VECCALC` buffer; blocks are freed when the emission
/// position passes their last use. The high-water mark is the TBuf size.
#[derive(Default)]
pub struct CalcAlloc {
    live: Vec<Block>,
    pub peak: u64,
}

impl CalcAlloc {
    /// Allocates `bytes` (a multiple of 32) at emission position `at`, live through `until`.
    /// With `reuse_dying`, blocks whose last use is this very position may be reused: an
    /// element-wise vector op may write over an operand it reads for the last time (the vector
    /// APIs allow a destination that overlaps a source completely).
    pub fn alloc(&mut self, bytes: u64, at: u32, until: u32, reuse_dying: bool) -> u64 {
        self.live.retain(|b| b.until > at || (b.until == at && !reuse_dying));
        self.live.sort_by_key(|b| b.offset);
        let mut off = 0u64;
        for b in &self.live {
            if off + bytes <= b.offset {
                break;
            }
            off = off.max(b.offset + b.bytes);
        }
        self.live.push(Block { offset: off, bytes, until: until.max(at) });
        self.peak = self.peak.max(off + bytes);
        off
    }
}

impl CalcAlloc {
    /// Keeps the block at `offset` live through at least `until` (for aliases of it).
    pub fn extend(&mut self, offset: u64, until: u32) {
        for b in &mut self.live {
            if b.offset == offset {
                b.until = b.until.max(until);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let l = Layout::of(&[1024]);
        assert_eq!((l.rows, l.pitch, l.count()), (1, 1024, 1024));
        assert_eq!(l.alloc_bytes(DType::F32), 4096);
        let l = Layout::of(&[4, 10]);
        assert_eq!((l.rows, l.pitch, l.count()), (4, 32, 106));
        assert_eq!(l.alloc_bytes(DType::F32), 512);
        assert_eq!(l.alloc_bytes(DType::Bool), 256);
        let l = Layout::of(&[1, 160]);
        assert_eq!(l.pitch, 160);
    }

    #[test]
    fn allocator_reuses_dead_blocks() {
        let mut a = CalcAlloc::default();
        assert_eq!(a.alloc(256, 0, 1, false), 0);
        assert_eq!(a.alloc(256, 1, 5, false), 256);
        // Block 0 died after position 1.
        assert_eq!(a.alloc(256, 2, 3, false), 0);
        assert_eq!(a.alloc(512, 4, 6, false), 512);
        assert_eq!(a.peak, 1024);
        // An op at position 2 may overwrite the block dying there only when asked to.
        let mut a = CalcAlloc::default();
        assert_eq!(a.alloc(512, 0, 2, false), 0);
        assert_eq!(a.alloc(512, 2, 4, false), 512);
        let mut b = CalcAlloc::default();
        assert_eq!(b.alloc(512, 0, 2, false), 0);
        assert_eq!(b.alloc(512, 2, 4, true), 0);
    }
}
