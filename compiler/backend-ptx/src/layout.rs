//! Thread layouts: which thread holds which element of a block, in which register slot.
//!
//! A [`Layout`] is Triton's *blocked* layout over the block's shape padded to powers of two per
//! dimension (so that tiles of 160 experts or 1536 columns map onto threads with shifts and
//! masks): `spt[d]` contiguous elements per thread, `tpw[d]` lanes per warp and `wpc[d]` warps
//! per CTA along dimension `d`, lanes and warps assigned fastest dimension (the last) first.
//! A tensor larger than the CTA tile wraps around (`reps[d]` repeats); a smaller one is
//! *replicated*: several threads hold the same element, and only the owner (see
//! [`Layout::replicated`]) may store it or issue its atomic.
//!
//! Every element coordinate is linear in the bits of (thread, slot), so for dimension `d` the
//! coordinate of slot `s` of thread `t` is `thread_part_d(t) + slot_part_d(s)` with disjoint bits:
//! the thread part is computed once per kernel, the slot part is a compile-time constant.
//!
//! A [`View`] is how a value of some shape is read through a layout of a (possibly larger) parent
//! shape: value dimension `i` is parent dimension `map[i]`, or always 0 (`None`, a broadcast
//! dimension). Element-wise code, `broadcast`, `expand_dims` and `permute` only change views, so
//! they never move data between threads.

/// A blocked layout (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    pub shape: Vec<u32>,
    pub padded: Vec<u32>,
    pub spt: Vec<u32>,
    pub tpw: Vec<u32>,
    pub wpc: Vec<u32>,
    pub reps: Vec<u32>,
    /// Lowest lane bit of each dimension's lane coordinate.
    pub lane_shift: Vec<u32>,
    /// Lowest warp bit of each dimension's warp coordinate.
    pub warp_shift: Vec<u32>,
}

/// How a value is read through a layout (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct View {
    pub layout: usize,
    pub map: Vec<Option<u8>>,
}

fn log2(x: u32) -> u32 {
    x.trailing_zeros()
}

impl Layout {
    /// The default layout of a block of `shape` for `threads` threads: up to 4 contiguous
    /// elements per thread along the last dimension (one 128-bit access for f32), then lanes and
    /// warps fastest dimension first; lanes or warps left over replicate the block.
    pub fn natural(shape: &[u32], num_warps: u32) -> Layout {
        let rank = shape.len();
        let padded: Vec<u32> = shape.iter().map(|&d| d.max(1).next_power_of_two()).collect();
        let mut spt = vec![1u32; rank];
        spt[rank - 1] = padded[rank - 1].min(4);
        let mut tpw = vec![1u32; rank];
        let mut left = 32u32;
        for d in (0..rank).rev() {
            let t = left.min((padded[d] / spt[d]).max(1));
            tpw[d] = t;
            left /= t;
        }
        tpw[rank - 1] *= left;
        let mut wpc = vec![1u32; rank];
        let mut left = num_warps;
        for d in (0..rank).rev() {
            let w = left.min((padded[d] / (spt[d] * tpw[d])).max(1));
            wpc[d] = w;
            left /= w;
        }
        // Leftover warps replicate along the slowest dimension so that lanes stay coalesced.
        wpc[0] *= left;
        Layout::from_parts(shape, spt, tpw, wpc)
    }

    /// A layout with the given per-dimension factors (each a power of two, `tpw` multiplying to
    /// 32 and `wpc` to the warp count).
    pub fn from_parts(shape: &[u32], spt: Vec<u32>, tpw: Vec<u32>, wpc: Vec<u32>) -> Layout {
        let rank = shape.len();
        let padded: Vec<u32> = shape.iter().map(|&d| d.max(1).next_power_of_two()).collect();
        let reps = (0..rank).map(|d| (padded[d] / (spt[d] * tpw[d] * wpc[d])).max(1)).collect();
        let mut lane_shift = vec![0; rank];
        let mut warp_shift = vec![0; rank];
        let (mut ls, mut ws) = (0, 0);
        for d in (0..rank).rev() {
            lane_shift[d] = ls;
            ls += log2(tpw[d]);
            warp_shift[d] = ws;
            ws += log2(wpc[d]);
        }
        Layout { shape: shape.to_vec(), padded, spt, tpw, wpc, reps, lane_shift, warp_shift }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Register slots per thread.
    pub fn slots(&self) -> usize {
        (0..self.rank()).map(|d| (self.reps[d] * self.spt[d]) as usize).product()
    }

    /// Elements of the CTA tile along `d`.
    pub fn tile(&self, d: usize) -> u32 {
        self.spt[d] * self.tpw[d] * self.wpc[d]
    }

    /// True when some threads hold copies of other threads' elements along `d`.
    pub fn replicated(&self, d: usize) -> bool {
        self.tile(d) > self.padded[d]
    }

    /// Per-dimension local coordinate (`rep * spt + j`) of slot `s`, row-major over dimensions.
    pub fn slot_local(&self, s: usize) -> Vec<u32> {
        let mut out = vec![0; self.rank()];
        let mut s = s as u32;
        for d in (0..self.rank()).rev() {
            let n = self.reps[d] * self.spt[d];
            out[d] = s % n;
            s /= n;
        }
        out
    }

    /// The compile-time part of slot `s`'s coordinate along `d`.
    pub fn slot_part(&self, s: usize, d: usize) -> u32 {
        let lc = self.slot_local(s)[d];
        (lc / self.spt[d]) * self.tile(d) + lc % self.spt[d]
    }

    /// Slot index of a local coordinate.
    pub fn slot_of(&self, local: &[u32]) -> usize {
        let mut s = 0usize;
        for (d, &l) in local.iter().enumerate() {
            s = s * (self.reps[d] * self.spt[d]) as usize + l as usize;
        }
        s
    }

    /// The thread part of the coordinate along `d` for thread `tid` (also used by tests to
    /// cross-check the emitted index arithmetic).
    pub fn thread_part(&self, tid: u32, d: usize) -> u32 {
        let lane = tid & 31;
        let warp = tid >> 5;
        let l = (lane >> self.lane_shift[d]) & (self.tpw[d] - 1);
        let w = (warp >> self.warp_shift[d]) & (self.wpc[d] - 1);
        ((w * self.tpw[d] + l) * self.spt[d]) & (self.padded[d] - 1)
    }

    /// Whether thread `tid` owns (is the first copy of) its elements along `d`.
    pub fn owns(&self, tid: u32, d: usize) -> bool {
        let lane = tid & 31;
        let warp = tid >> 5;
        let l = (lane >> self.lane_shift[d]) & (self.tpw[d] - 1);
        let w = (warp >> self.warp_shift[d]) & (self.wpc[d] - 1);
        (w * self.tpw[d] + l) * self.spt[d] < self.padded[d]
    }

    /// Lanes along `d` that hold distinct data (the butterfly steps a reduction needs).
    pub fn unique_lanes(&self, d: usize) -> u32 {
        self.tpw[d].min((self.padded[d] / self.spt[d]).max(1))
    }

    /// Warps along `d` that hold distinct data.
    pub fn unique_warps(&self, d: usize) -> u32 {
        self.wpc[d].min((self.padded[d] / (self.spt[d] * self.tpw[d])).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element of the padded shape is held by exactly one owner thread and slot.
    fn check_cover(shape: &[u32], warps: u32) {
        let l = Layout::natural(shape, warps);
        let n: u32 = l.padded.iter().product();
        let mut seen = vec![0u32; n as usize];
        for t in 0..32 * warps {
            let owner = (0..l.rank()).all(|d| l.owns(t, d));
            for s in 0..l.slots() {
                let mut flat = 0;
                for d in 0..l.rank() {
                    let c = l.thread_part(t, d) + l.slot_part(s, d);
                    assert!(c < l.padded[d], "{shape:?} t{t} s{s} d{d}: {c}");
                    flat = flat * l.padded[d] + c;
                }
                if owner {
                    seen[flat as usize] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "{shape:?} warps {warps}: {seen:?}");
    }

    #[test]
    fn natural_layouts_cover_each_element_once() {
        for shape in [
            &[1024u32][..],
            &[160],
            &[64],
            &[8],
            &[1],
            &[32, 32],
            &[64, 32],
            &[2, 3],
            &[16, 1],
            &[1, 16],
        ] {
            for w in [1, 2, 4, 8] {
                check_cover(shape, w);
            }
        }
    }

    #[test]
    fn vector_add_layout() {
        let l = Layout::natural(&[1024], 4);
        assert_eq!((l.spt[0], l.tpw[0], l.wpc[0], l.reps[0]), (4, 32, 4, 2));
        assert_eq!(l.slots(), 8);
        assert_eq!(l.slot_part(5, 0), 512 + 1);
        assert_eq!(l.thread_part(33, 0), 132);
    }
}
