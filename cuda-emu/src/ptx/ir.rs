//! The decoded form of a PTX module: kernels as flat instruction lists whose operands are
//! register indices or immediates, ready for the interpreter (exec.rs).

use std::collections::HashMap;
use std::sync::Arc;

/// A PTX type: its kind and width in bits (`.pred` is a 1-bit bit type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ty {
    pub kind: Kind,
    pub bits: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `.bN`: untyped bits.
    Bits,
    /// `.uN`.
    Unsigned,
    /// `.sN`.
    Signed,
    /// `.fN`.
    Float,
    /// `.pred`.
    Pred,
}

impl Ty {
    pub const U32: Ty = Ty::new(Kind::Unsigned, 32);
    pub const U64: Ty = Ty::new(Kind::Unsigned, 64);
    pub const S32: Ty = Ty::new(Kind::Signed, 32);
    pub const S64: Ty = Ty::new(Kind::Signed, 64);
    pub const B32: Ty = Ty::new(Kind::Bits, 32);
    pub const B64: Ty = Ty::new(Kind::Bits, 64);
    pub const F64: Ty = Ty::new(Kind::Float, 64);

    pub const fn new(kind: Kind, bits: u8) -> Self {
        Ty { kind, bits }
    }

    /// `u32`, `s64`, `f64`, `pred`, ... (without the dot).
    pub fn parse(s: &str) -> Option<Ty> {
        if s == "pred" {
            return Some(Ty::new(Kind::Pred, 1));
        }
        let kind = match s.as_bytes().first()? {
            b'b' => Kind::Bits,
            b'u' => Kind::Unsigned,
            b's' => Kind::Signed,
            b'f' => Kind::Float,
            _ => return None,
        };
        let bits: u8 = s.get(1..)?.parse().ok()?;
        let ok = match kind {
            Kind::Float => matches!(bits, 32 | 64),
            _ => matches!(bits, 8 | 16 | 32 | 64),
        };
        ok.then_some(Ty { kind, bits })
    }

    pub fn bytes(self) -> usize {
        (self.bits as usize).div_ceil(8)
    }

    pub fn signed(self) -> bool {
        self.kind == Kind::Signed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    Param,
    Global,
    Shared,
}

/// Comparison of `setp` (ordered for floats: false when either operand is NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// IEEE rounding of a floating-point result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// To nearest, ties to even (`.rn`, and the default of `add`/`mul` without a modifier).
    Nearest,
    /// Toward zero (`.rz`).
    Zero,
    /// Toward minus infinity (`.rm`).
    Down,
    /// Toward plus infinity (`.rp`).
    Up,
}

/// An instruction's operation, with the types and modifiers it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add(Ty),
    Sub(Ty),
    MulLo(Ty),
    MulHi(Ty),
    /// `mul.wide`: the source type; the result is twice as wide.
    MulWide(Ty),
    MadLo(Ty),
    Div(Ty),
    Rem(Ty),
    Shl(Ty),
    Shr(Ty),
    And(Ty),
    Or(Ty),
    Xor(Ty),
    Not(Ty),
    Min(Ty),
    Max(Ty),
    Selp(Ty),
    Setp(Cmp, Ty),
    Brev(Ty),
    Bfind {
        ty: Ty,
        shift_amount: bool,
    },
    Mov(Ty),
    /// `cvt` between integer types (extension by the source's signedness, truncation).
    CvtInt {
        dst: Ty,
        src: Ty,
    },
    /// `cvt.rn.f64.u64` and friends: an integer to a float.
    CvtIntToFloat {
        dst: Ty,
        src: Ty,
        round: Round,
    },
    /// `cvt.rzi.u64.f64`: a float to an integer, rounded to an integer value as given,
    /// saturating, NaN to 0.
    CvtFloatToInt {
        dst: Ty,
        src: Ty,
        round: Round,
    },
    /// `cvt.rzi.f64.f64` and friends: a float rounded to an integral float.
    CvtRoundInt {
        ty: Ty,
        round: Round,
    },
    FAdd(Round),
    FSub(Round),
    FMul(Round),
    Copysign(Ty),
    Ld(Space, Ty),
    St(Space, Ty),
    Bra(u32),
    BarSync,
    Ret,
}

/// A source operand: a register (by index) or an immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    Reg(u16),
    Imm(u64),
}

/// Registers 0..SPECIAL_REGS hold the special registers, set when a thread starts:
/// %tid.{x,y,z}, %ntid.{x,y,z}, %ctaid.{x,y,z}, %nctaid.{x,y,z}.
pub const SPECIAL_REGS: u16 = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ins {
    pub op: Op,
    /// Guard predicate register and whether it is negated (`@!%p`).
    pub guard: Option<(u16, bool)>,
    pub d: u16,
    pub a: Src,
    pub b: Src,
    pub c: Src,
    /// Memory instructions: the address is `a + off`.
    pub off: i64,
    /// Line in the PTX text (1-based), for messages.
    pub line: u32,
}

/// A kernel parameter: name, offset in the parameter buffer, size and alignment in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub align: usize,
}

#[derive(Clone, Debug)]
pub struct Kernel {
    pub name: String,
    pub params: Vec<Param>,
    pub param_bytes: usize,
    pub code: Vec<Ins>,
    pub nregs: usize,
    /// Bytes of static `.shared` variables (the dynamic `extern` array follows them).
    pub static_shared: usize,
    /// `.maxntid` / `.reqntid` of the entry, if given.
    pub max_threads: Option<u32>,
    pub required_block: Option<[u32; 3]>,
}

#[derive(Clone, Debug)]
pub struct Module {
    /// `.version major.minor`.
    pub version: (u32, u32),
    /// The `NN` of `.target sm_NN` (an `a`/`f` suffix is kept in `target`).
    pub sm: u32,
    pub target: String,
    pub kernels: HashMap<String, Arc<Kernel>>,
}
