//! The arithmetic of each emulated instruction, as the PTX ISA (version 9.0) defines it.
//!
//! Registers hold 64 bits; every instruction reads its operands at its own type's width
//! (zero- or sign-extended by the type) and writes its result zero-extended from the
//! destination width, so a 32-bit register never holds stray high bits.

use super::ir::{Cmp, Kind, Op, Round, Ty};

/// An arithmetic fault (division by zero): the interpreter reports it as a kernel error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArithFault(pub &'static str);

/// The low `bits` bits of `v`.
#[inline]
pub fn mask(bits: u8, v: u64) -> u64 {
    if bits >= 64 {
        v
    } else {
        v & ((1u64 << bits) - 1)
    }
}

/// `v` at width `bits`, sign-extended to 64 bits.
#[inline]
pub fn sext(bits: u8, v: u64) -> i64 {
    if bits >= 64 {
        v as i64
    } else {
        let sh = 64 - bits as u32;
        ((v << sh) as i64) >> sh
    }
}

/// An operand read at type `t`: sign-extended for `.s`, zero-extended otherwise.
#[inline]
fn read(t: Ty, v: u64) -> u64 {
    if t.kind == Kind::Signed {
        sext(t.bits, v) as u64
    } else {
        mask(t.bits, v)
    }
}

fn f(v: u64) -> f64 {
    f64::from_bits(v)
}

/// The next f64 toward +inf (`up`) or -inf from a finite `x`.
fn step(x: f64, up: bool) -> f64 {
    if x == 0.0 {
        let tiny = f64::from_bits(1);
        return if up { tiny } else { -tiny };
    }
    let b = x.to_bits();
    // Away from zero is +1 on the magnitude bits, toward zero -1.
    let away = (x > 0.0) == up;
    f64::from_bits(if away { b + 1 } else { b - 1 })
}

/// Rounds an exact result `r + e` (`r` the round-to-nearest result, `e` the exact residual)
/// in the direction `round`.
fn directed(r: f64, e: f64, round: Round) -> f64 {
    if !r.is_finite() || e == 0.0 || e.is_nan() {
        return r;
    }
    match round {
        Round::Nearest => r,
        Round::Zero if (e > 0.0) != (r > 0.0) => step(r, e > 0.0),
        Round::Zero => r,
        Round::Down if e < 0.0 => step(r, false),
        Round::Up if e > 0.0 => step(r, true),
        Round::Down | Round::Up => r,
    }
}

/// a + b rounded as given (the residual by TwoSum is exact when no overflow occurs).
pub fn fadd(a: f64, b: f64, round: Round) -> f64 {
    let s = a + b;
    if round == Round::Nearest || !s.is_finite() {
        return s;
    }
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    let r = directed(s, e, round);
    // An exact zero sum is +0 except toward -inf (IEEE 754).
    if r == 0.0 && e == 0.0 && a + b == 0.0 && round == Round::Down && !(a == 0.0 && b == 0.0) {
        return -0.0;
    }
    r
}

/// a × b rounded as given (the residual by a fused multiply-add is exact unless it
/// underflows).
pub fn fmul(a: f64, b: f64, round: Round) -> f64 {
    let p = a * b;
    if round == Round::Nearest || !p.is_finite() {
        return p;
    }
    directed(p, a.mul_add(b, -p), round)
}

/// An integral f64 rounded from `x` as given (`cvt.rXi.f64.f64`).
fn round_int(x: f64, round: Round) -> f64 {
    match round {
        Round::Nearest => x.round_ties_even(),
        Round::Zero => x.trunc(),
        Round::Down => x.floor(),
        Round::Up => x.ceil(),
    }
}

/// An integer to f64 (`cvt.rX.f64.{u,s}N`), rounded as given.
fn int_to_f64(v: u64, src: Ty, round: Round) -> f64 {
    let (r, exact): (f64, i128) = if src.signed() {
        let x = sext(src.bits, v);
        (x as f64, x as i128)
    } else {
        let x = mask(src.bits, v);
        (x as f64, x as i128)
    };
    // `as` rounds to nearest even; the residual's sign decides a directed rounding.
    let back = if r >= u64::MAX as f64 {
        1i128 << 64
    } else if r <= i64::MIN as f64 {
        -(1i128 << 63)
    } else {
        r as i128
    };
    let e = (exact - back) as f64;
    directed(r, e, round)
}

/// A float to an integer type: rounded to an integral value as given, then clamped to the
/// destination's range; NaN gives 0 (PTX ISA, cvt: float-to-integer conversions saturate).
fn f64_to_int(x: f64, dst: Ty, round: Round) -> u64 {
    let x = round_int(x, round);
    if x.is_nan() {
        return 0;
    }
    let v = if dst.signed() {
        let lo = -(2f64.powi(dst.bits as i32 - 1));
        let hi = 2f64.powi(dst.bits as i32 - 1) - 1.0;
        (x.clamp(lo, hi) as i64) as u64
    } else {
        let hi = if dst.bits == 64 {
            u64::MAX as f64
        } else {
            2f64.powi(dst.bits as i32) - 1.0
        };
        x.clamp(0.0, hi) as u64
    };
    mask(dst.bits, v)
}

fn compare(c: Cmp, t: Ty, a: u64, b: u64) -> bool {
    use std::cmp::Ordering::*;
    let ord = match t.kind {
        Kind::Float => match f(a).partial_cmp(&f(b)) {
            Some(o) => o,
            // Ordered comparisons are false when either operand is NaN.
            None => return false,
        },
        Kind::Signed => sext(t.bits, a).cmp(&sext(t.bits, b)),
        _ => mask(t.bits, a).cmp(&mask(t.bits, b)),
    };
    match c {
        Cmp::Eq => ord == Equal,
        Cmp::Ne => ord != Equal,
        Cmp::Lt => ord == Less,
        Cmp::Le => ord != Greater,
        Cmp::Gt => ord == Greater,
        Cmp::Ge => ord != Less,
    }
}

/// `bfind`: the bit position of the most significant non-sign bit (0xffffffff if none);
/// with `.shiftamt`, the left shift that brings it to the top.
fn bfind(t: Ty, v: u64, shift_amount: bool) -> u64 {
    let x = mask(t.bits, v);
    let x = if t.signed() && sext(t.bits, x) < 0 {
        mask(t.bits, !x)
    } else {
        x
    };
    if x == 0 {
        return 0xffff_ffff;
    }
    let msb = 63 - x.leading_zeros() as u64;
    if shift_amount {
        t.bits as u64 - 1 - msb
    } else {
        msb
    }
}

/// The result of an arithmetic, logic, comparison or conversion instruction (`a`, `b`, `c`
/// the source operands' register values or immediates). Memory and control instructions are
/// not handled here.
#[inline]
pub fn eval(op: Op, a: u64, b: u64, c: u64) -> Result<u64, ArithFault> {
    Ok(match op {
        Op::Add(t) => mask(t.bits, a.wrapping_add(b)),
        Op::Sub(t) => mask(t.bits, a.wrapping_sub(b)),
        Op::MulLo(t) => mask(t.bits, a.wrapping_mul(b)),
        Op::MulHi(t) => {
            let w = t.bits as u32;
            if t.signed() {
                let p = sext(t.bits, a) as i128 * sext(t.bits, b) as i128;
                mask(t.bits, (p >> w) as u64)
            } else {
                let p = mask(t.bits, a) as u128 * mask(t.bits, b) as u128;
                mask(t.bits, (p >> w) as u64)
            }
        }
        Op::MulWide(t) => {
            let p = if t.signed() {
                (sext(t.bits, a).wrapping_mul(sext(t.bits, b))) as u64
            } else {
                mask(t.bits, a).wrapping_mul(mask(t.bits, b))
            };
            mask(t.bits * 2, p)
        }
        Op::MadLo(t) => mask(t.bits, a.wrapping_mul(b).wrapping_add(c)),
        Op::Div(t) | Op::Rem(t) => {
            let div = matches!(op, Op::Div(_));
            if mask(t.bits, b) == 0 {
                return Err(ArithFault("integer division by zero"));
            }
            if t.signed() {
                let (x, y) = (sext(t.bits, a), sext(t.bits, b));
                let r = if div {
                    x.wrapping_div(y)
                } else {
                    x.wrapping_rem(y)
                };
                mask(t.bits, r as u64)
            } else {
                let (x, y) = (mask(t.bits, a), mask(t.bits, b));
                if div {
                    x / y
                } else {
                    x % y
                }
            }
        }
        // The shift amount is an unsigned 32-bit value; amounts past the width clamp to it
        // (all bits shifted out, or the sign filling all of them).
        Op::Shl(t) => {
            let s = b as u32;
            if s >= t.bits as u32 {
                0
            } else {
                mask(t.bits, a << s)
            }
        }
        Op::Shr(t) => {
            let s = (b as u32).min(t.bits as u32 - 1 + u32::from(!t.signed()));
            if t.signed() {
                mask(t.bits, (sext(t.bits, a) >> s) as u64)
            } else if s >= t.bits as u32 {
                0
            } else {
                mask(t.bits, a) >> s
            }
        }
        Op::And(t) => mask(t.bits, a & b),
        Op::Or(t) => mask(t.bits, a | b),
        Op::Xor(t) => mask(t.bits, a ^ b),
        Op::Not(t) => mask(t.bits, !a),
        Op::Min(t) | Op::Max(t) => {
            let less = if t.signed() {
                sext(t.bits, a) < sext(t.bits, b)
            } else {
                mask(t.bits, a) < mask(t.bits, b)
            };
            let pick_a = less == matches!(op, Op::Min(_));
            mask(t.bits, if pick_a { a } else { b })
        }
        Op::Selp(t) => mask(t.bits, if c & 1 != 0 { a } else { b }),
        Op::Setp(cmp, t) => u64::from(compare(cmp, t, a, b)),
        Op::Brev(t) => {
            if t.bits == 32 {
                u64::from((a as u32).reverse_bits())
            } else {
                a.reverse_bits()
            }
        }
        Op::Bfind { ty, shift_amount } => bfind(ty, a, shift_amount),
        Op::Mov(t) => mask(t.bits, a),
        Op::CvtInt { dst, src } => mask(dst.bits, read(src, a)),
        Op::CvtIntToFloat { src, round, .. } => int_to_f64(a, src, round).to_bits(),
        Op::CvtFloatToInt { dst, round, .. } => f64_to_int(f(a), dst, round),
        Op::CvtRoundInt { round, .. } => round_int(f(a), round).to_bits(),
        Op::FAdd(r) => fadd(f(a), f(b), r).to_bits(),
        Op::FSub(r) => fadd(f(a), -f(b), r).to_bits(),
        Op::FMul(r) => fmul(f(a), f(b), r).to_bits(),
        // copysign.f64 d, a, b: b's magnitude with a's sign.
        Op::Copysign(_) => f(b).copysign(f(a)).to_bits(),
        Op::Ld(..) | Op::St(..) | Op::Bra(_) | Op::BarSync | Op::Ret => {
            return Err(ArithFault("not an arithmetic instruction"))
        }
    })
}

#[cfg(test)]
mod tests {
    //! One test per emulated opcode, each against the PTX ISA's definition of it (section
    //! numbers of the PTX ISA 9.0 document in the comments).
    use super::*;
    use crate::ptx::ir::{Kind, Ty};

    const U8: Ty = Ty::new(Kind::Unsigned, 8);
    const U16: Ty = Ty::new(Kind::Unsigned, 16);
    const U32: Ty = Ty::U32;
    const U64: Ty = Ty::U64;
    const S32: Ty = Ty::S32;
    const S64: Ty = Ty::S64;
    const B32: Ty = Ty::B32;
    const B64: Ty = Ty::B64;
    const F64: Ty = Ty::F64;

    fn ev(op: Op, a: u64, b: u64, c: u64) -> u64 {
        eval(op, a, b, c).expect("no fault")
    }
    fn fb(x: f64) -> u64 {
        x.to_bits()
    }

    /// 9.7.1.1 add: wraps at the type's width; a 32-bit add ignores high bits.
    #[test]
    fn add() {
        assert_eq!(ev(Op::Add(U32), 0xffff_ffff, 1, 0), 0);
        assert_eq!(ev(Op::Add(S64), u64::MAX, 2, 0), 1);
        assert_eq!(
            ev(Op::Add(Ty::new(Kind::Signed, 32)), 0x1_0000_0005, 1, 0),
            6
        );
    }

    /// 9.7.1.2 sub.
    #[test]
    fn sub() {
        assert_eq!(ev(Op::Sub(U32), 0, 1, 0), 0xffff_ffff);
        assert_eq!(ev(Op::Sub(S64), 5, 7, 0), (-2i64) as u64);
    }

    /// 9.7.1.3 mul.lo / mul.hi / mul.wide.
    #[test]
    fn mul() {
        assert_eq!(ev(Op::MulLo(S64), u64::MAX, 3, 0), u64::MAX - 2);
        assert_eq!(ev(Op::MulLo(S32), 0x1_0000, 0x1_0000, 0), 0);
        assert_eq!(ev(Op::MulHi(U64), u64::MAX, u64::MAX, 0), u64::MAX - 1);
        assert_eq!(ev(Op::MulHi(U32), 0xffff_ffff, 2, 0), 1);
        assert_eq!(ev(Op::MulHi(S64), (-1i64) as u64, 1, 0), u64::MAX);
        assert_eq!(
            ev(Op::MulWide(U32), 0xffff_ffff, 0xffff_ffff, 0),
            0xffff_fffe_0000_0001
        );
        assert_eq!(ev(Op::MulWide(S32), 0xffff_ffff, 2, 0), (-2i64) as u64);
        assert_eq!(ev(Op::MulWide(U16), 0xffff, 0xffff, 0), 0xfffe_0001);
    }

    /// 9.7.1.4 mad.lo: the low half of a × b + c.
    #[test]
    fn mad() {
        assert_eq!(ev(Op::MadLo(S32), 0x8000_0000, 2, 7), 7);
        assert_eq!(ev(Op::MadLo(S64), 3, 4, 5), 17);
    }

    /// 9.7.1.8 div / 9.7.1.9 rem: truncating; signed by the type; division by zero is a
    /// fault here (undefined in PTX).
    #[test]
    fn div_rem() {
        assert_eq!(ev(Op::Div(U32), 7, 2, 0), 3);
        assert_eq!(ev(Op::Rem(U32), 7, 2, 0), 1);
        assert_eq!(
            ev(Op::Div(S32), (-7i32) as u32 as u64, 2, 0),
            (-3i32) as u32 as u64
        );
        assert_eq!(
            ev(Op::Rem(S32), (-7i32) as u32 as u64, 2, 0),
            (-1i32) as u32 as u64
        );
        assert_eq!(
            ev(Op::Rem(U32), 0x1_0000_0007, 4, 0),
            3,
            "a 32-bit rem reads 32 bits"
        );
        assert!(eval(Op::Div(U64), 1, 0, 0).is_err());
        assert!(
            eval(Op::Rem(U32), 1, 0x1_0000_0000, 0).is_err(),
            "zero at the type's width"
        );
    }

    /// 9.7.8.7 shl / 9.7.8.8 shr: shift amounts greater than the width clamp to it.
    #[test]
    fn shifts() {
        assert_eq!(ev(Op::Shl(B64), 1, 63, 0), 1 << 63);
        assert_eq!(ev(Op::Shl(B64), 1, 64, 0), 0);
        assert_eq!(ev(Op::Shl(B32), 1, 32, 0), 0);
        assert_eq!(ev(Op::Shl(B32), 0xffff_ffff, 4, 0), 0xffff_fff0);
        assert_eq!(
            ev(Op::Shl(B64), 1, 0x1_0000_0001, 0),
            2,
            "the amount is a u32"
        );
        assert_eq!(ev(Op::Shr(U64), 1 << 63, 63, 0), 1);
        assert_eq!(ev(Op::Shr(U64), u64::MAX, 64, 0), 0);
        assert_eq!(ev(Op::Shr(U32), 0xffff_ffff, 100, 0), 0);
        assert_eq!(
            ev(Op::Shr(S32), 0x8000_0000, 100, 0),
            0xffff_ffff,
            "sign fill"
        );
        assert_eq!(ev(Op::Shr(S64), 1 << 63, 1, 0), 0xc000_0000_0000_0000);
    }

    /// 9.7.8.1-4 and / or / xor / not.
    #[test]
    fn logic() {
        assert_eq!(ev(Op::And(B32), 0xff_ff00, 0x0f_f0f0, 0), 0x0f_f000);
        assert_eq!(ev(Op::Or(B64), 1 << 40, 1, 0), (1 << 40) | 1);
        assert_eq!(ev(Op::Xor(B32), 0xffff_ffff, 0x1_0000_0001, 0), 0xffff_fffe);
        assert_eq!(ev(Op::Not(B32), 0, 0, 0), 0xffff_ffff);
        assert_eq!(ev(Op::Not(B64), 0, 0, 0), u64::MAX);
        let pred = Ty::new(Kind::Pred, 1);
        assert_eq!(ev(Op::Not(pred), 1, 0, 0), 0);
        assert_eq!(ev(Op::And(pred), 1, 1, 0), 1);
    }

    /// 9.7.1.10/11 min / max: signed or unsigned by the type.
    #[test]
    fn min_max() {
        assert_eq!(ev(Op::Min(U32), 0xffff_ffff, 3, 0), 3);
        assert_eq!(ev(Op::Min(S32), 0xffff_ffff, 3, 0), 0xffff_ffff);
        assert_eq!(ev(Op::Max(U64), 5, u64::MAX, 0), u64::MAX);
        assert_eq!(ev(Op::Max(S64), 5, u64::MAX, 0), 5);
    }

    /// 9.7.7.1 selp: d = c ? a : b.
    #[test]
    fn selp() {
        assert_eq!(ev(Op::Selp(U64), 10, 20, 1), 10);
        assert_eq!(ev(Op::Selp(U64), 10, 20, 0), 20);
        assert_eq!(ev(Op::Selp(B32), 0x1_0000_0001, 20, 1), 1);
    }

    /// 9.7.7.2 setp: integer comparisons at the type's width and signedness; float
    /// comparisons ordered (false with a NaN, `ne` included).
    #[test]
    fn setp() {
        assert_eq!(ev(Op::Setp(Cmp::Lt, U64), 1, u64::MAX, 0), 1);
        assert_eq!(ev(Op::Setp(Cmp::Lt, S64), 1, u64::MAX, 0), 0);
        assert_eq!(ev(Op::Setp(Cmp::Eq, S32), 0x1_0000_0005, 5, 0), 1);
        assert_eq!(ev(Op::Setp(Cmp::Ge, U32), 0xffff_ffff, 0, 0), 1);
        assert_eq!(ev(Op::Setp(Cmp::Le, U32), 3, 3, 0), 1);
        assert_eq!(ev(Op::Setp(Cmp::Gt, S32), 0xffff_ffff, 0, 0), 0);
        assert_eq!(ev(Op::Setp(Cmp::Ne, U64), 3, 4, 0), 1);
        assert_eq!(ev(Op::Setp(Cmp::Lt, F64), fb(-1.0), fb(0.5), 0), 1);
        assert_eq!(ev(Op::Setp(Cmp::Ne, F64), fb(f64::NAN), fb(1.0), 0), 0);
        assert_eq!(ev(Op::Setp(Cmp::Eq, F64), fb(0.0), fb(-0.0), 0), 1);
    }

    /// 9.7.8.13 brev.
    #[test]
    fn brev() {
        assert_eq!(ev(Op::Brev(B32), 1, 0, 0), 0x8000_0000);
        assert_eq!(ev(Op::Brev(B32), 0x1_0000_0000, 0, 0), 0, "32 bits only");
        assert_eq!(ev(Op::Brev(B64), 1, 0, 0), 1 << 63);
    }

    /// 9.7.8.11 bfind: the most significant non-sign bit, 0xffffffff when none;
    /// `.shiftamt` gives the left shift to the top bit instead.
    #[test]
    fn bfind() {
        let b = |ty, shift_amount| Op::Bfind { ty, shift_amount };
        assert_eq!(ev(b(U32, false), 1 << 20, 0, 0), 20);
        assert_eq!(ev(b(U32, true), 1 << 20, 0, 0), 11);
        assert_eq!(ev(b(U32, true), 1, 0, 0), 31);
        assert_eq!(ev(b(U32, false), 0, 0, 0), 0xffff_ffff);
        assert_eq!(ev(b(U32, true), 0, 0, 0), 0xffff_ffff);
        assert_eq!(
            ev(b(S32, false), 0xffff_ffff, 0, 0),
            0xffff_ffff,
            "-1: no non-sign bit"
        );
        assert_eq!(ev(b(S32, false), 0xffff_fff0, 0, 0), 3);
        assert_eq!(ev(b(U64, false), 1 << 40, 0, 0), 40);
    }

    /// 9.7.9.3 mov and cvta (as a move).
    #[test]
    fn mov() {
        assert_eq!(ev(Op::Mov(U32), 0x1_2345_6789, 0, 0), 0x2345_6789);
        assert_eq!(ev(Op::Mov(U64), u64::MAX, 0, 0), u64::MAX);
        assert_eq!(ev(Op::Mov(F64), fb(1.5), 0, 0), fb(1.5));
    }

    /// 9.7.9.21 cvt between integers: extension by the source's signedness, truncation.
    #[test]
    fn cvt_int() {
        let c = |dst, src| Op::CvtInt { dst, src };
        assert_eq!(ev(c(U64, U32), 0xffff_ffff_ffff_ffff, 0, 0), 0xffff_ffff);
        assert_eq!(ev(c(U32, U64), 0x1_2345_6789, 0, 0), 0x2345_6789);
        assert_eq!(ev(c(S64, S32), 0xffff_fffe, 0, 0), (-2i64) as u64);
        assert_eq!(ev(c(U64, S32), 0x8000_0000, 0, 0), 0xffff_ffff_8000_0000);
        assert_eq!(ev(c(U8, U32), 0x1ff, 0, 0), 0xff);
    }

    /// 9.7.9.21 cvt from integers to f64: rounded as the modifier says.
    #[test]
    fn cvt_int_to_float() {
        let c = |round| Op::CvtIntToFloat {
            dst: F64,
            src: U64,
            round,
        };
        let big = (1u64 << 53) + 1; // not representable: between 2^53 and 2^53 + 2
        assert_eq!(ev(c(Round::Nearest), big, 0, 0), fb(9007199254740992.0));
        assert_eq!(ev(c(Round::Up), big, 0, 0), fb(9007199254740994.0));
        assert_eq!(ev(c(Round::Zero), big, 0, 0), fb(9007199254740992.0));
        assert_eq!(
            ev(c(Round::Nearest), u64::MAX, 0, 0),
            fb(18446744073709551616.0)
        );
        assert_eq!(
            ev(c(Round::Zero), u64::MAX, 0, 0),
            fb(18446744073709549568.0)
        );
        let s = Op::CvtIntToFloat {
            dst: F64,
            src: S64,
            round: Round::Nearest,
        };
        assert_eq!(ev(s, (-3i64) as u64, 0, 0), fb(-3.0));
    }

    /// 9.7.9.21 cvt from f64 to integers: rounded to an integer as given, saturating,
    /// NaN to 0.
    #[test]
    fn cvt_float_to_int() {
        let c = |dst, round| Op::CvtFloatToInt {
            dst,
            src: F64,
            round,
        };
        assert_eq!(ev(c(U64, Round::Zero), fb(2.9), 0, 0), 2);
        assert_eq!(ev(c(U64, Round::Zero), fb(-2.9), 0, 0), 0, "saturates at 0");
        assert_eq!(ev(c(U64, Round::Zero), fb(1e30), 0, 0), u64::MAX);
        assert_eq!(ev(c(U64, Round::Zero), fb(f64::NAN), 0, 0), 0);
        assert_eq!(ev(c(S64, Round::Zero), fb(-2.9), 0, 0), (-2i64) as u64);
        assert_eq!(ev(c(S64, Round::Nearest), fb(2.5), 0, 0), 2, "ties to even");
        assert_eq!(ev(c(S64, Round::Down), fb(-2.5), 0, 0), (-3i64) as u64);
        assert_eq!(ev(c(U32, Round::Zero), fb(1e12), 0, 0), 0xffff_ffff);
    }

    /// 9.7.9.21 cvt.rXi.f64.f64: an integral float.
    #[test]
    fn cvt_round_int() {
        let c = |round| Op::CvtRoundInt { ty: F64, round };
        assert_eq!(ev(c(Round::Zero), fb(-2.7), 0, 0), fb(-2.0));
        assert_eq!(ev(c(Round::Nearest), fb(3.5), 0, 0), fb(4.0));
        assert_eq!(ev(c(Round::Nearest), fb(2.5), 0, 0), fb(2.0));
        assert_eq!(ev(c(Round::Down), fb(-2.1), 0, 0), fb(-3.0));
        assert_eq!(ev(c(Round::Up), fb(2.1), 0, 0), fb(3.0));
    }

    /// 9.7.4.1 add.f64 / 9.7.4.2 sub.f64: `.rn` to nearest, `.rz` toward zero, `.rm`/`.rp`
    /// toward -inf/+inf.
    #[test]
    fn f64_add_sub() {
        let tiny = f64::EPSILON / 4.0; // below half an ulp of 1
        assert_eq!(ev(Op::FAdd(Round::Nearest), fb(1.0), fb(tiny), 0), fb(1.0));
        assert_eq!(
            ev(Op::FAdd(Round::Up), fb(1.0), fb(tiny), 0),
            fb(1.0 + f64::EPSILON)
        );
        assert_eq!(ev(Op::FAdd(Round::Zero), fb(1.0), fb(tiny), 0), fb(1.0));
        // 1 - tiny rounds to 1 to nearest, to the float below 1 toward zero.
        let below = f64::from_bits(1f64.to_bits() - 1);
        assert_eq!(ev(Op::FAdd(Round::Zero), fb(1.0), fb(-tiny), 0), fb(below));
        assert_eq!(ev(Op::FAdd(Round::Zero), fb(-1.0), fb(tiny), 0), fb(-below));
        assert_eq!(
            ev(Op::FAdd(Round::Down), fb(-1.0), fb(-tiny), 0),
            fb(-1.0 - f64::EPSILON)
        );
        assert_eq!(
            ev(Op::FAdd(Round::Zero), fb(0.5), fb(0.25), 0),
            fb(0.75),
            "exact"
        );
        assert_eq!(ev(Op::FSub(Round::Nearest), fb(1.0), fb(0.25), 0), fb(0.75));
        assert_eq!(ev(Op::FSub(Round::Zero), fb(1.0), fb(tiny), 0), fb(below));
        assert_eq!(
            ev(Op::FAdd(Round::Zero), fb(f64::MAX), fb(f64::MAX), 0),
            fb(f64::INFINITY)
        );
    }

    /// 9.7.4.4 mul.f64.
    #[test]
    fn f64_mul() {
        let third = 1.0 / 3.0;
        let p = third * 3.0; // 1.0 to nearest; the exact product is just below 1
        assert_eq!(ev(Op::FMul(Round::Nearest), fb(third), fb(3.0), 0), fb(p));
        let exact = third.mul_add(3.0, -p);
        let want_rz = if exact < 0.0 {
            f64::from_bits(p.to_bits() - 1)
        } else {
            p
        };
        assert_eq!(
            ev(Op::FMul(Round::Zero), fb(third), fb(3.0), 0),
            fb(want_rz)
        );
        assert_eq!(
            ev(Op::FMul(Round::Zero), fb(1.5), fb(2.0), 0),
            fb(3.0),
            "exact"
        );
    }

    /// 9.7.4.x copysign.f64 d, a, b: the magnitude of b, the sign of a.
    #[test]
    fn copysign() {
        assert_eq!(ev(Op::Copysign(F64), fb(-1.0), fb(2.5), 0), fb(-2.5));
        assert_eq!(ev(Op::Copysign(F64), fb(1.0), fb(-2.5), 0), fb(2.5));
    }

    #[test]
    fn memory_and_control_are_not_arithmetic() {
        assert!(eval(Op::BarSync, 0, 0, 0).is_err());
    }
}
