//! A versioned, compact binary format for what crosses the wire: parameter sets,
//! plaintexts, ciphertexts (full and seeded), public keys and evaluation keys. The secret
//! key deliberately has no serializer: it must not leave the client.
//!
//! Every object starts with the same 15-byte header (magic, version, kind, parameter id);
//! residues are bit-packed to their prime's width. Decoding validates every field against
//! the given [`Params`] and checks sizes before allocating, so hostile input yields an
//! error, never a panic. Byte layout: `docs/format.md`.

use super::key_seed::KeyPart;
use super::{
    Ciphertext, CkksError, CompactCiphertext, EvaluationKeys, KeySeed, ParamSpec, Params,
    Plaintext, PublicKey, SeededCiphertext, SwitchingKey,
};
use crate::ring::{automorphism, Basis, RnsPoly};
use std::collections::BTreeMap;
use std::fmt::Display;

/// The first four bytes of every serialized object.
pub const MAGIC: [u8; 4] = *b"HLRA";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 3;
/// Magic (4) + version (2) + kind (1) + parameter id (8).
const HEADER_LEN: usize = 15;
/// log N (1) + q count (2) + p count (2) + NTT flag (1).
const POLY_HEADER_LEN: usize = 6;

/// The object kind tag of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Params = 1,
    Plaintext = 2,
    Ciphertext = 3,
    SeededCiphertext = 4,
    PublicKey = 5,
    SwitchingKey = 6,
    EvaluationKeys = 7,
    CompactCiphertext = 8,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Params,
        Kind::Plaintext,
        Kind::Ciphertext,
        Kind::SeededCiphertext,
        Kind::PublicKey,
        Kind::SwitchingKey,
        Kind::EvaluationKeys,
        Kind::CompactCiphertext,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Params => "parameter set",
            Kind::Plaintext => "plaintext",
            Kind::Ciphertext => "ciphertext",
            Kind::SeededCiphertext => "seeded ciphertext",
            Kind::PublicKey => "public key",
            Kind::SwitchingKey => "switching key",
            Kind::EvaluationKeys => "evaluation key set",
            Kind::CompactCiphertext => "compact ciphertext",
        }
    }
}

/// Objects that are serialized under a parameter set (everything but [`Params`] itself,
/// which has inherent `to_bytes`/`from_bytes`).
pub trait Serializable: Sized {
    /// Encodes `self`, checking first that it belongs to `params` (basis, NTT form,
    /// reduced residues, parameter id), so that the bytes always decode again.
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError>;

    /// Decodes an object, validating every field against `params`.
    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError>;
}

fn err(msg: impl Into<String>) -> CkksError {
    CkksError::Serialization(msg.into())
}

// ---------------------------------------------------------------------------------------
// Writing

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn header(kind: Kind, id: u64, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body_len);
    out.extend_from_slice(&MAGIC);
    put_u16(&mut out, FORMAT_VERSION);
    out.push(kind as u8);
    put_u64(&mut out, id);
    out
}

/// Counts that a validated parameter set bounds (levels, prime counts, digits) fit u16;
/// anything else is an object that does not belong to the parameters.
fn put_count(out: &mut Vec<u8>, v: usize, what: &str) -> Result<(), CkksError> {
    let v = u16::try_from(v)
        .map_err(|_| err(format!("cannot serialize: {what} {v} does not fit 16 bits")))?;
    put_u16(out, v);
    Ok(())
}

/// The basis of an object at `level`; checked before anything is sized from it.
fn level_basis(params: &Params, level: usize) -> Result<Basis, CkksError> {
    if level > params.max_level() {
        return Err(err(format!(
            "cannot serialize: level {level} exceeds the maximum level {}",
            params.max_level()
        )));
    }
    Ok(Basis::level(level))
}

fn put_scale(out: &mut Vec<u8>, scale: f64) -> Result<(), CkksError> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(err(format!(
            "cannot serialize: scale {scale} is not finite and positive"
        )));
    }
    put_u64(out, scale.to_bits());
    Ok(())
}

/// Bytes of one limb of `n` residues packed at `width` bits.
fn packed_len(n: usize, width: u32) -> usize {
    (n * width as usize).div_ceil(8)
}

/// Encoded size of a polynomial over `basis`.
fn poly_len(params: &Params, basis: Basis) -> usize {
    POLY_HEADER_LEN
        + params
            .ring()
            .moduli(basis)
            .map(|m| packed_len(params.n(), m.bits()))
            .sum::<usize>()
}

/// Residues packed LSB-first, `width` bits each (width ≤ 62, so 64 + 62 bits fit the
/// accumulator).
fn pack(values: &[u64], width: u32, out: &mut Vec<u8>) {
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    for &v in values {
        acc |= (v as u128) << filled;
        filled += width;
        if filled >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            filled -= 64;
        }
    }
    out.extend_from_slice(&acc.to_le_bytes()[..filled.div_ceil(8) as usize]);
}

fn write_poly(
    out: &mut Vec<u8>,
    params: &Params,
    poly: &RnsPoly,
    basis: Basis,
    what: &str,
) -> Result<(), CkksError> {
    if poly.n() != params.n() || poly.basis() != basis || !poly.ntt_form {
        return Err(err(format!(
            "cannot serialize {what}: expected N = {} over {} + {} primes in NTT form, found N = {} over {} + {} primes{}",
            params.n(),
            basis.q,
            basis.p,
            poly.n(),
            poly.basis().q,
            poly.basis().p,
            if poly.ntt_form { "" } else { " in coefficient form" }
        )));
    }
    // log N ≤ 17 by construction of Params.
    out.push(params.spec().log_n as u8);
    put_count(out, basis.q, "prime count")?;
    put_count(out, basis.p, "prime count")?;
    out.push(1);
    let ctx = params.ring();
    for (i, limb) in poly.limbs().enumerate() {
        let m = ctx.modulus(basis, i);
        if let Some(j) = limb.iter().position(|&x| x >= m.value()) {
            return Err(err(format!(
                "cannot serialize {what}: coefficient {j} of limb {i} is not below its prime {}",
                m.value()
            )));
        }
        pack(limb, m.bits(), out);
    }
    Ok(())
}

fn write_switching_key(
    out: &mut Vec<u8>,
    params: &Params,
    key: &SwitchingKey,
    seeded: Seeded,
    what: &str,
) -> Result<(), CkksError> {
    let basis = params.ring().full_basis();
    put_count(out, key.digits.len(), "digit count")?;
    for (j, [b, a]) in key.digits.iter().enumerate() {
        write_poly(out, params, b, basis, &format!("{what} digit {j} b"))?;
        match seeded {
            // Refused unless `a` is the seed's: what decodes must be what was encoded.
            Some((seed, part)) if *a != seed.expand(params.ring(), basis, part(j)) => {
                return Err(err(format!(
                    "cannot serialize: {what} digit {j} a is not expanded from the key set's seed"
                )))
            }
            Some(_) => {}
            None => write_poly(out, params, a, basis, &format!("{what} digit {j} a"))?,
        }
    }
    Ok(())
}

fn switching_key_len(params: &Params, digits: usize) -> usize {
    2 + 2 * digits * poly_len(params, params.ring().full_basis())
}

/// A key set's switching key: the b halves only.
fn seeded_switching_key_len(params: &Params, digits: usize) -> usize {
    2 + digits * poly_len(params, params.ring().full_basis())
}

/// Digits of a switching key under `params`: ⌈(L+1)/alpha⌉.
fn expected_digits(params: &Params) -> usize {
    params.q_primes().len().div_ceil(params.alpha())
}

// ---------------------------------------------------------------------------------------
// Reading

/// A cursor that never reads past the end: every read is length-checked first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, len: usize, what: impl Display) -> Result<&'a [u8], CkksError> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < len {
            return Err(err(format!(
                "truncated: expected {len} bytes of {what}, found {}",
                rest.len()
            )));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn array<const K: usize>(&mut self, what: impl Display) -> Result<[u8; K], CkksError> {
        let mut a = [0u8; K];
        a.copy_from_slice(self.take(K, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: impl Display) -> Result<u8, CkksError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: impl Display) -> Result<u16, CkksError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: impl Display) -> Result<u32, CkksError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: impl Display) -> Result<u64, CkksError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn finish(self, kind: Kind) -> Result<(), CkksError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(err(format!(
                "{extra} trailing bytes after the {}",
                kind.name()
            ))),
        }
    }
}

/// Checks magic, version and kind; returns the parameter id.
fn read_header(r: &mut Reader, kind: Kind) -> Result<u64, CkksError> {
    let magic: [u8; 4] = r.array("magic")?;
    if magic != MAGIC {
        return Err(err(format!("bad magic {magic:02x?}: not a helora object")));
    }
    let version = r.u16("format version")?;
    if version != FORMAT_VERSION {
        return Err(err(format!(
            "unsupported format version {version} (this build reads version {FORMAT_VERSION})"
        )));
    }
    let tag = r.u8("kind tag")?;
    if tag != kind as u8 {
        let found = match Kind::ALL.iter().find(|k| **k as u8 == tag) {
            Some(k) => format!("a {} (kind {tag})", k.name()),
            None => format!("unknown kind {tag}"),
        };
        return Err(err(format!(
            "expected a {} (kind {}), found {found}",
            kind.name(),
            kind as u8
        )));
    }
    r.u64("parameter id")
}

fn read_header_for(r: &mut Reader, kind: Kind, params: &Params) -> Result<(), CkksError> {
    let id = read_header(r, kind)?;
    params.ensure_id(id)
}

fn read_level(r: &mut Reader, params: &Params) -> Result<usize, CkksError> {
    let level = r.u16("level")? as usize;
    if level > params.max_level() {
        return Err(err(format!(
            "level {level} exceeds the maximum level {}",
            params.max_level()
        )));
    }
    Ok(level)
}

fn read_scale(r: &mut Reader) -> Result<f64, CkksError> {
    let scale = f64::from_bits(r.u64("scale")?);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(err(format!("scale {scale} is not finite and positive")));
    }
    Ok(scale)
}

/// Inverse of [`pack`] for a slice of exactly `packed_len(n, width)` bytes; rejects
/// residues not below `q` and nonzero padding (so every object has one encoding).
fn unpack(
    bytes: &[u8],
    width: u32,
    n: usize,
    q: u64,
    out: &mut Vec<u64>,
    limb: usize,
    what: &str,
) -> Result<(), CkksError> {
    let mask = (1u64 << width) - 1;
    let mut chunks = bytes.chunks(8);
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    for j in 0..n {
        if filled < width {
            // The exact slice length guarantees that one load suffices.
            if let Some(c) = chunks.next() {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                acc |= (u64::from_le_bytes(w) as u128) << filled;
                filled += 8 * c.len() as u32;
            }
        }
        if filled < width {
            return Err(err(format!("{what}: limb {limb} ends early")));
        }
        let v = acc as u64 & mask;
        acc >>= width;
        filled -= width;
        if v >= q {
            return Err(err(format!(
                "{what}: coefficient {j} of limb {limb} is not below its prime {q}"
            )));
        }
        out.push(v);
    }
    if acc != 0 || chunks.next().is_some() {
        return Err(err(format!("{what}: nonzero padding after limb {limb}")));
    }
    Ok(())
}

fn read_poly(
    r: &mut Reader,
    params: &Params,
    basis: Basis,
    what: &str,
) -> Result<RnsPoly, CkksError> {
    let log_n = r.u8(format_args!("{what} header"))? as u32;
    if log_n != params.spec().log_n {
        return Err(err(format!(
            "{what}: ring degree 2^{log_n} does not match the parameters' 2^{}",
            params.spec().log_n
        )));
    }
    let q = r.u16(format_args!("{what} header"))? as usize;
    let p = r.u16(format_args!("{what} header"))? as usize;
    if (q, p) != (basis.q, basis.p) {
        return Err(err(format!(
            "{what}: basis of {q} ciphertext + {p} special primes, expected {} + {}",
            basis.q, basis.p
        )));
    }
    match r.u8(format_args!("{what} header"))? {
        1 => {}
        0 => {
            return Err(err(format!(
                "{what} is in coefficient form; only NTT-form polynomials are stored"
            )))
        }
        f => return Err(err(format!("{what}: invalid NTT flag {f}"))),
    }
    // The basis is now known to fit the parameters: check that all limbs are present
    // before allocating anything.
    let ctx = params.ring();
    let n = params.n();
    let mut available = r.remaining();
    for (i, m) in ctx.moduli(basis).enumerate() {
        let len = packed_len(n, m.bits());
        if available < len {
            return Err(err(format!(
                "truncated: expected {len} bytes of limb {i} of {what}, found {available}"
            )));
        }
        available -= len;
    }
    let mut data = Vec::with_capacity(n * basis.len());
    for (i, m) in ctx.moduli(basis).enumerate() {
        let bytes = r.take(packed_len(n, m.bits()), format_args!("limb {i} of {what}"))?;
        unpack(bytes, m.bits(), n, m.value(), &mut data, i, what)?;
    }
    RnsPoly::from_data(n, basis, true, data)
        .ok_or_else(|| err(format!("{what}: limb data has the wrong length")))
}

/// Where a switching key's `a` halves come from: the bytes (a lone key), or the key set's
/// seed, expanded for each digit's part (the bytes then hold the `b` halves only).
type Seeded<'a> = Option<(&'a KeySeed, &'a dyn Fn(usize) -> KeyPart)>;

fn read_switching_key(
    r: &mut Reader,
    params: &Params,
    seeded: Seeded,
    what: &str,
) -> Result<SwitchingKey, CkksError> {
    let count = r.u16(format_args!("{what} digit count"))? as usize;
    let expected = expected_digits(params);
    if count != expected {
        return Err(err(format!(
            "{what} has {count} digits, expected {expected}"
        )));
    }
    let basis = params.ring().full_basis();
    let mut digits = Vec::with_capacity(count);
    for j in 0..count {
        let b = read_poly(r, params, basis, &format!("{what} digit {j} b"))?;
        let a = match seeded {
            Some((seed, part)) => seed.expand(params.ring(), basis, part(j)),
            None => read_poly(r, params, basis, &format!("{what} digit {j} a"))?,
        };
        digits.push([b, a]);
    }
    Ok(SwitchingKey { digits })
}

// ---------------------------------------------------------------------------------------
// Objects

impl Params {
    /// The spec and the derived primes, under the header (kind 1, this set's id).
    pub fn to_bytes(&self) -> Vec<u8> {
        let spec = self.spec();
        let (q, p) = (self.q_primes(), self.p_primes());
        let mut out = header(Kind::Params, self.id(), 8 + 9 * (q.len() + p.len()));
        // Params::new bounds these: log N ≤ 17, log scale ≤ 60, sizes ≤ 62 bits, and the
        // security table keeps prime and digit counts far below 2^16.
        out.push(spec.log_n as u8);
        out.push(spec.log_scale as u8);
        put_u16(&mut out, spec.digits as u16);
        put_u16(&mut out, q.len() as u16);
        put_u16(&mut out, p.len() as u16);
        out.extend(spec.q_bits.iter().chain(&spec.p_bits).map(|&b| b as u8));
        q.iter().chain(p).for_each(|&v| put_u64(&mut out, v));
        out
    }

    /// Decodes a parameter set and re-derives it with [`Params::new`] (so insecure or
    /// invalid specs are rejected), then checks that the stored primes and id agree.
    pub fn from_bytes(bytes: &[u8]) -> Result<Params, CkksError> {
        let mut r = Reader::new(bytes);
        let id = read_header(&mut r, Kind::Params)?;
        let log_n = r.u8("log N")? as u32;
        let log_scale = r.u8("log scale")? as u32;
        let digits = r.u16("digit count")? as usize;
        let q_count = r.u16("ciphertext prime count")? as usize;
        let p_count = r.u16("special prime count")? as usize;
        // One size byte and one 8-byte prime each.
        let need = 9 * (q_count + p_count);
        if r.remaining() < need {
            return Err(err(format!(
                "truncated: {q_count} + {p_count} primes need {need} bytes, found {}",
                r.remaining()
            )));
        }
        let bits = r.take(q_count + p_count, "prime sizes")?;
        let q_bits: Vec<u32> = bits[..q_count].iter().map(|&b| b as u32).collect();
        let p_bits: Vec<u32> = bits[q_count..].iter().map(|&b| b as u32).collect();
        let mut primes = Vec::with_capacity(q_count + p_count);
        for i in 0..q_count + p_count {
            primes.push(r.u64(format_args!("prime {i}"))?);
        }
        r.finish(Kind::Params)?;
        let params = Params::new(ParamSpec {
            log_n,
            q_bits,
            p_bits,
            digits,
            log_scale,
        })?;
        let derived = params.q_primes().iter().chain(params.p_primes());
        if let Some((i, (&stored, &derived))) = primes
            .iter()
            .zip(derived)
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            return Err(err(format!(
                "stored prime {i} is {stored}, but the spec derives {derived}"
            )));
        }
        params.ensure_id(id)?;
        Ok(params)
    }
}

impl Serializable for Plaintext {
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError> {
        let basis = level_basis(params, self.level)?;
        let mut out = header(Kind::Plaintext, params.id(), 10 + poly_len(params, basis));
        put_count(&mut out, self.level, "level")?;
        put_scale(&mut out, self.scale)?;
        write_poly(&mut out, params, &self.poly, basis, "plaintext polynomial")?;
        Ok(out)
    }

    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        read_header_for(&mut r, Kind::Plaintext, params)?;
        let level = read_level(&mut r, params)?;
        let scale = read_scale(&mut r)?;
        let poly = read_poly(&mut r, params, Basis::level(level), "plaintext polynomial")?;
        r.finish(Kind::Plaintext)?;
        Ok(Plaintext { poly, level, scale })
    }
}

impl Serializable for Ciphertext {
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError> {
        let basis = level_basis(params, self.level)?;
        let mut out = header(
            Kind::Ciphertext,
            params.id(),
            10 + 2 * poly_len(params, basis),
        );
        put_count(&mut out, self.level, "level")?;
        put_scale(&mut out, self.scale)?;
        write_poly(&mut out, params, &self.c0, basis, "c0")?;
        write_poly(&mut out, params, &self.c1, basis, "c1")?;
        Ok(out)
    }

    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        read_header_for(&mut r, Kind::Ciphertext, params)?;
        let level = read_level(&mut r, params)?;
        let scale = read_scale(&mut r)?;
        let basis = Basis::level(level);
        let c0 = read_poly(&mut r, params, basis, "c0")?;
        let c1 = read_poly(&mut r, params, basis, "c1")?;
        r.finish(Kind::Ciphertext)?;
        Ok(Ciphertext {
            c0,
            c1,
            level,
            scale,
        })
    }
}

impl Serializable for SeededCiphertext {
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError> {
        let basis = level_basis(params, self.level)?;
        let mut out = header(
            Kind::SeededCiphertext,
            params.id(),
            42 + poly_len(params, basis),
        );
        put_count(&mut out, self.level, "level")?;
        put_scale(&mut out, self.scale)?;
        out.extend_from_slice(&self.seed);
        write_poly(&mut out, params, &self.c0, basis, "c0")?;
        Ok(out)
    }

    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        read_header_for(&mut r, Kind::SeededCiphertext, params)?;
        let level = read_level(&mut r, params)?;
        let scale = read_scale(&mut r)?;
        let seed = r.array("seed")?;
        let c0 = read_poly(&mut r, params, Basis::level(level), "c0")?;
        r.finish(Kind::SeededCiphertext)?;
        Ok(SeededCiphertext {
            c0,
            seed,
            level,
            scale,
        })
    }
}

impl Serializable for PublicKey {
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError> {
        params.ensure_id(self.params_id)?;
        let basis = Basis::level(params.max_level());
        if self.a != self.a_seed.expand(params.ring(), basis, KeyPart::Public) {
            return Err(err(
                "cannot serialize: public key a is not expanded from its seed",
            ));
        }
        let mut out = header(Kind::PublicKey, params.id(), 16 + poly_len(params, basis));
        out.extend_from_slice(&self.a_seed.0);
        write_poly(&mut out, params, &self.b, basis, "public key b")?;
        Ok(out)
    }

    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        read_header_for(&mut r, Kind::PublicKey, params)?;
        let a_seed = KeySeed(r.array("key seed")?);
        // Public keys live over Q_L only (no special primes).
        let basis = Basis::level(params.max_level());
        let b = read_poly(&mut r, params, basis, "public key b")?;
        r.finish(Kind::PublicKey)?;
        Ok(PublicKey {
            b,
            a: a_seed.expand(params.ring(), basis, KeyPart::Public),
            params_id: params.id(),
            a_seed,
        })
    }
}

impl Serializable for SwitchingKey {
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError> {
        if self.digits.len() != expected_digits(params) {
            return Err(err(format!(
                "cannot serialize: switching key has {} digits, expected {}",
                self.digits.len(),
                expected_digits(params)
            )));
        }
        let mut out = header(
            Kind::SwitchingKey,
            params.id(),
            switching_key_len(params, self.digits.len()),
        );
        write_switching_key(&mut out, params, self, None, "switching key")?;
        Ok(out)
    }

    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        read_header_for(&mut r, Kind::SwitchingKey, params)?;
        let key = read_switching_key(&mut r, params, None, "switching key")?;
        r.finish(Kind::SwitchingKey)?;
        Ok(key)
    }
}

impl Serializable for EvaluationKeys {
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError> {
        params.ensure_id(self.params_id)?;
        let digits = expected_digits(params);
        let keys = self.relin.iter().chain(self.galois.values());
        if keys.clone().any(|k| k.digits.len() != digits) {
            return Err(err(format!(
                "cannot serialize: a switching key does not have {digits} digits"
            )));
        }
        let key_len = seeded_switching_key_len(params, digits);
        let mut out = header(
            Kind::EvaluationKeys,
            params.id(),
            21 + key_len + self.galois.len() * (8 + key_len),
        );
        let seed = &self.a_seed;
        out.extend_from_slice(&seed.0);
        out.push(self.relin.is_some() as u8);
        if let Some(relin) = &self.relin {
            let part = |digit| KeyPart::Relinearization { digit };
            write_switching_key(
                &mut out,
                params,
                relin,
                Some((seed, &part)),
                "relinearisation key",
            )?;
        }
        let count = u32::try_from(self.galois.len())
            .map_err(|_| err("cannot serialize: too many Galois keys"))?;
        out.extend_from_slice(&count.to_le_bytes());
        for (&g, key) in &self.galois {
            if !automorphism::is_galois_element(g, params.n()) {
                return Err(err(format!(
                    "cannot serialize: {g} is not a Galois element for N = {}",
                    params.n()
                )));
            }
            put_u64(&mut out, g);
            let part = |digit| KeyPart::Galois { element: g, digit };
            write_switching_key(
                &mut out,
                params,
                key,
                Some((seed, &part)),
                &format!("Galois key {g}"),
            )?;
        }
        Ok(out)
    }

    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        read_header_for(&mut r, Kind::EvaluationKeys, params)?;
        let seed = KeySeed(r.array("key seed")?);
        let relin = match r.u8("relinearisation key flag")? {
            0 => None,
            1 => {
                let part = |digit| KeyPart::Relinearization { digit };
                Some(read_switching_key(
                    &mut r,
                    params,
                    Some((&seed, &part)),
                    "relinearisation key",
                )?)
            }
            f => return Err(err(format!("invalid relinearisation key flag {f}"))),
        };
        let count = r.u32("Galois key count")? as usize;
        // Each entry is an 8-byte element plus a key of known size: reject absurd counts
        // up front.
        let entry = 8 + seeded_switching_key_len(params, expected_digits(params));
        if count.saturating_mul(entry) > r.remaining() {
            return Err(err(format!(
                "truncated: {count} Galois keys of {entry} bytes each declared, found {} bytes",
                r.remaining()
            )));
        }
        let mut galois = BTreeMap::new();
        let mut previous = None;
        for i in 0..count {
            let g = r.u64(format_args!("Galois element {i}"))?;
            if !automorphism::is_galois_element(g, params.n()) {
                return Err(err(format!(
                    "{g} is not a Galois element for N = {}",
                    params.n()
                )));
            }
            // Strictly increasing (the map's order): no duplicates, one encoding per set.
            if previous.is_some_and(|p| g <= p) {
                return Err(err(format!(
                    "Galois element {g} is out of order or repeated"
                )));
            }
            previous = Some(g);
            let part = |digit| KeyPart::Galois { element: g, digit };
            let key = read_switching_key(
                &mut r,
                params,
                Some((&seed, &part)),
                &format!("Galois key {g}"),
            )?;
            galois.insert(g, key);
        }
        r.finish(Kind::EvaluationKeys)?;
        Ok(EvaluationKeys {
            params_id: params.id(),
            a_seed: seed,
            relin,
            galois,
        })
    }
}

/// Compact replies: c0 and c1 widths (u8 each), scale f64, then c0 and c1 packed at
/// their widths.
impl Serializable for CompactCiphertext {
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, CkksError> {
        let n = params.n();
        let (w0, w1) = (self.c0_bits, self.c1_bits);
        if !CompactCiphertext::widths_valid(w0, w1, params.ring().q()[0].bits())
            || self.c0.len() != n
            || self.c1.len() != n
        {
            return Err(err("compact ciphertext does not match the parameters"));
        }
        if self.c0.iter().any(|&c| c >> w0 != 0) || self.c1.iter().any(|&c| c >> w1 != 0) {
            return Err(err("a compact coefficient exceeds its width"));
        }
        let mut out = header(
            Kind::CompactCiphertext,
            params.id(),
            10 + packed_len(n, w0) + packed_len(n, w1),
        );
        out.push(w0 as u8);
        out.push(w1 as u8);
        put_scale(&mut out, self.scale)?;
        pack(&self.c0, w0, &mut out);
        pack(&self.c1, w1, &mut out);
        Ok(out)
    }

    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        read_header_for(&mut r, Kind::CompactCiphertext, params)?;
        let w0 = r.u8("c0 width")? as u32;
        let w1 = r.u8("c1 width")? as u32;
        if !CompactCiphertext::widths_valid(w0, w1, params.ring().q()[0].bits()) {
            return Err(err(format!(
                "compact widths {w0}/{w1} are not usable with these parameters"
            )));
        }
        let scale = read_scale(&mut r)?;
        let n = params.n();
        let (mut c0, mut c1) = (Vec::with_capacity(n), Vec::with_capacity(n));
        unpack(
            r.take(packed_len(n, w0), "compact c0")?,
            w0,
            n,
            1u64 << w0,
            &mut c0,
            0,
            "compact c0",
        )?;
        unpack(
            r.take(packed_len(n, w1), "compact c1")?,
            w1,
            n,
            1u64 << w1,
            &mut c1,
            0,
            "compact c1",
        )?;
        r.finish(Kind::CompactCiphertext)?;
        Ok(CompactCiphertext {
            c0_bits: w0,
            c1_bits: w1,
            c0,
            c1,
            scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip_at_every_width() {
        let n = 64;
        for width in 1..=62u32 {
            let q = if width == 62 {
                (1u64 << 62) - 57
            } else {
                1u64 << width
            };
            let values: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % q)
                .collect();
            let mut bytes = Vec::new();
            pack(&values, width, &mut bytes);
            assert_eq!(bytes.len(), packed_len(n, width));
            let mut back = Vec::new();
            unpack(&bytes, width, n, q, &mut back, 0, "test").unwrap();
            assert_eq!(back, values, "width {width}");
        }
    }
}
