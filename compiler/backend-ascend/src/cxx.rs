//! Spelling of tk types and constants in the emitted C++ (Ascend C dialect).

use tk_ir::{ConstValue, DType};

/// The C++ element type of a dtype in UB/GM tensors and scalar code. `bool` blocks are bit masks
/// in UB and never use this name.
pub fn ctype(d: DType) -> &'static str {
    match d {
        DType::Bool => "bool",
        DType::I8 => "int8_t",
        DType::I16 => "int16_t",
        DType::I32 => "int32_t",
        DType::I64 => "int64_t",
        DType::U8 => "uint8_t",
        DType::U16 => "uint16_t",
        DType::U32 => "uint32_t",
        DType::U64 => "uint64_t",
        DType::F16 => "half",
        DType::BF16 => "bfloat16_t",
        DType::F32 => "float",
        DType::F64 => "double",
    }
}

/// The type a scalar kernel parameter has in the tiling struct (shared with host code, which
/// has no `half`): 16-bit floats travel as their bit patterns.
pub fn tiling_type(d: DType) -> &'static str {
    match d {
        DType::F16 | DType::BF16 => "uint16_t",
        _ => ctype(d),
    }
}

/// A C++ literal of dtype `d` for a constant.
pub fn literal(d: DType, v: ConstValue) -> String {
    match (d, v) {
        (DType::Bool, ConstValue::Bool(b)) => b.to_string(),
        (DType::Bool, ConstValue::Int(i)) => (i != 0).to_string(),
        (_, ConstValue::Float(x)) if d.is_float() => float_literal(d, x),
        (_, ConstValue::Int(i)) if d.is_float() => float_literal(d, i as f64),
        (_, ConstValue::Int(i)) => int_literal(d, i),
        (_, ConstValue::Bool(b)) => int_literal(d, b as i64),
        (_, ConstValue::Float(x)) => int_literal(d, x as i64),
    }
}

fn int_literal(d: DType, i: i64) -> String {
    match d {
        DType::I32 => {
            if i == i32::MIN as i64 {
                "INT32_MIN".to_string()
            } else {
                i.to_string()
            }
        }
        DType::I64 => {
            if i == i64::MIN {
                "INT64_MIN".to_string()
            } else {
                format!("(int64_t){i}")
            }
        }
        DType::U64 => format!("(uint64_t){}u", i as u64),
        DType::U32 => format!("{}u", i as u32),
        _ => format!("({}){i}", ctype(d)),
    }
}

/// A float literal that reproduces the value exactly in the target dtype.
pub fn float_literal(d: DType, x: f64) -> String {
    let body = if x.is_nan() {
        "tk_f32_from_bits(0x7fc00000u)".to_string()
    } else if x.is_infinite() {
        if x > 0.0 {
            "tk_f32_from_bits(0x7f800000u)".to_string()
        } else {
            "tk_f32_from_bits(0xff800000u)".to_string()
        }
    } else {
        let f = x as f32;
        if f64::from(f) == x || d != DType::F64 {
            let s = format!("{f:?}");
            if s.contains('e') || s.contains('.') {
                format!("{s}f")
            } else {
                format!("{s}.0f")
            }
        } else {
            format!("{x:?}")
        }
    };
    match d {
        DType::F32 => body,
        DType::F64 => {
            if x.is_finite() {
                format!("{x:?}")
            } else {
                format!("(double){body}")
            }
        }
        _ => format!("({})({body})", ctype(d)),
    }
}

/// Escapes a message for a C++ string literal.
pub fn string_literal(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_ascii() && !c.is_ascii_control() => o.push(c),
            _ => o.push('?'),
        }
    }
    o.push('"');
    o
}

/// An identifier safe in C++ for a tk name.
pub fn ident(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal(DType::F32, ConstValue::Float(0.5)), "0.5f");
        assert_eq!(literal(DType::F32, ConstValue::Float(1.0)), "1.0f");
        assert_eq!(
            literal(DType::F32, ConstValue::Float(f64::NEG_INFINITY)),
            "tk_f32_from_bits(0xff800000u)"
        );
        assert_eq!(literal(DType::I64, ConstValue::Int(1024)), "(int64_t)1024");
        assert_eq!(literal(DType::I32, ConstValue::Int(-3)), "-3");
        assert_eq!(literal(DType::Bool, ConstValue::Bool(true)), "true");
        assert_eq!(literal(DType::F16, ConstValue::Float(0.5)), "(half)(0.5f)");
        assert_eq!(string_literal("a\"b"), "\"a\\\"b\"");
        assert_eq!(ident("x.y"), "x_y");
    }
}
