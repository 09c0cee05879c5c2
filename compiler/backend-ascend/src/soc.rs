//! Facts about the Ascend chips the backend targets (from `shared/reference/ascendc.md` §6):
//! Unified Buffer, L1 and L0 sizes, which copy and dtype features exist, and core counts.

use std::fmt;

/// The chip code is generated for (`--soc 910B|310P`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Soc {
    /// Atlas A2 (arch 2201, `dav-c220`): 192 KB UB per AIV core, DataCopyPad, bf16.
    #[default]
    Ascend910B,
    /// Atlas inference (arch 2002, `dav-m200`): 256 KB UB, no DataCopyPad, no bf16.
    Ascend310P,
}

impl Soc {
    /// Parses `910B`, `Ascend910B`, `910b1`..., `310P`, `Ascend310P3`... (case-insensitive).
    pub fn parse(s: &str) -> Option<Soc> {
        let l = s.to_ascii_lowercase();
        let l = l.strip_prefix("ascend").unwrap_or(&l);
        if l.starts_with("910b") || l.starts_with("910_93") || l == "910c" {
            Some(Soc::Ascend910B)
        } else if l.starts_with("310p") {
            Some(Soc::Ascend310P)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Soc::Ascend910B => "Ascend910B",
            Soc::Ascend310P => "Ascend310P",
        }
    }

    /// The `SOC_VERSION` written into the CMake file.
    pub fn cmake_soc_version(self) -> &'static str {
        match self {
            Soc::Ascend910B => "Ascend910B1",
            Soc::Ascend310P => "Ascend310P3",
        }
    }

    /// Physical Unified Buffer bytes per vector core.
    pub fn ub_physical(self) -> u32 {
        match self {
            Soc::Ascend910B => 192 * 1024,
            Soc::Ascend310P => 256 * 1024,
        }
    }

    /// UB bytes a kernel may allocate: the physical size less the 8 KB Ascend C reserves for its
    /// own APIs (`TOTAL_VEC_LOCAL_SIZE`). The simulation header checks the same number.
    pub fn ub_usable(self) -> u32 {
        self.ub_physical() - 8 * 1024
    }

    pub fn l1_bytes(self) -> u32 {
        match self {
            Soc::Ascend910B => 512 * 1024,
            Soc::Ascend310P => 1024 * 1024,
        }
    }

    pub fn l0a_bytes(self) -> u32 {
        64 * 1024
    }

    pub fn l0b_bytes(self) -> u32 {
        64 * 1024
    }

    pub fn l0c_bytes(self) -> u32 {
        match self {
            Soc::Ascend910B => 128 * 1024,
            Soc::Ascend310P => 256 * 1024,
        }
    }

    /// `DataCopyPad` (unaligned GM↔UB copies) exists on A2/A3, not on 310P.
    pub fn has_datacopypad(self) -> bool {
        self == Soc::Ascend910B
    }

    /// Fixpipe moves cube results from L0C straight to GM on A2/A3 (split AIC/AIV cores); the
    /// 310P's coupled core writes them through the Unified Buffer instead.
    pub fn has_fixpipe(self) -> bool {
        self == Soc::Ascend910B
    }

    /// AI Cube cores a cube-only kernel can be launched on (910B2: 24 AIC).
    pub fn cube_cores(self) -> u32 {
        match self {
            Soc::Ascend910B => 24,
            Soc::Ascend310P => 8,
        }
    }

    /// bf16 storage and casts exist on A2/A3 only.
    pub fn has_bf16(self) -> bool {
        self == Soc::Ascend910B
    }

    /// Vector cores a vector-only kernel can be launched on (910B2: 48 AIV; 310P: ⚠ 8 AI cores,
    /// an unconfirmed figure).
    pub fn vector_cores(self) -> u32 {
        match self {
            Soc::Ascend910B => 48,
            Soc::Ascend310P => 8,
        }
    }

    /// The `-D` the simulation header needs to model this chip.
    pub fn sim_define(self) -> Option<&'static str> {
        match self {
            Soc::Ascend910B => None,
            Soc::Ascend310P => Some("TK_SIM_SOC_310P"),
        }
    }
}

impl fmt::Display for Soc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
