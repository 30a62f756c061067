//! Reading the text of one hardware-level op: its parenthesised operands, its attribute dictionary and the
//! numbers in them.

use std::collections::HashMap;

/// Splits `s` at commas outside brackets, quotes and `<...>`.
pub fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut cur = String::new();
    let mut prev = ' ';
    for c in s.chars() {
        if in_str {
            if c == '"' && prev != '\\' {
                in_str = false;
            }
        } else {
            match c {
                '"' => in_str = true,
                '(' | '[' | '{' | '<' => depth += 1,
                '>' if prev == '-' => {}
                ')' | ']' | '}' | '>' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(cur.trim().to_string());
                    cur.clear();
                    prev = c;
                    continue;
                }
                _ => {}
            }
        }
        cur.push(c);
        prev = c;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The text between the bracket at `open` (a byte index of `(`, `[`, `{` or `<`) and its match, and the index
/// after the match.
pub fn bracketed(s: &str, open: usize) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    for i in open..b.len() {
        let c = b[i];
        if in_str {
            if c == b'"' && b[i - 1] != b'\\' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b'>' if i > 0 && b[i - 1] == b'-' => {}
            b')' | b']' | b'}' | b'>' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&s[open + 1..i], i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// An op's operand list: the items inside the first `(...)` (or `<...>` for packet endpoints) after its name,
/// and the rest of the text after it.
pub fn operands<'a>(text: &'a str, name: &str) -> Option<(Vec<String>, &'a str)> {
    let rest = text.strip_prefix(name)?;
    let start = rest.find(|c: char| !c.is_whitespace())?;
    let c = rest.as_bytes()[start];
    if c != b'(' && c != b'<' {
        return None;
    }
    let (inner, after) = bracketed(rest, start)?;
    Some((split_top(inner), &rest[after..]))
}

/// The first `{...}` attribute dictionary in `s` at bracket depth 0, as raw value texts by key.
pub fn dict(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(i) = s.find('{') else { return out };
    let Some((inner, _)) = bracketed(s, i) else { return out };
    for item in split_top(inner) {
        match item.split_once('=') {
            Some((k, v)) => out.insert(k.trim().to_string(), v.trim().to_string()),
            None => out.insert(item.trim().to_string(), "unit".to_string()),
        };
    }
    out
}

/// An integer written as `12`, `-3`, `0x1F`, with an optional `: i32` / `: ui32` type.
pub fn int(v: &str) -> Option<i64> {
    let v = v.split(':').next()?.trim();
    let (neg, v) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let n = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else {
        v.parse::<i64>().ok()?
    };
    Some(if neg { -n } else { n })
}

/// `%name` at the start of `s` (with its `%`).
pub fn ssa(s: &str) -> Option<String> {
    let s = s.trim();
    let r = s.strip_prefix('%')?;
    let n = r.find(|c: char| !(c.is_ascii_alphanumeric() || "_$.-".contains(c))).unwrap_or(r.len());
    (n > 0).then(|| format!("%{}", &r[..n]))
}

/// `@name` at the start of `s` (without its `@`).
pub fn symbol(s: &str) -> Option<String> {
    let r = s.trim().strip_prefix('@')?;
    let n = r.find(|c: char| !(c.is_ascii_alphanumeric() || "_$.-".contains(c))).unwrap_or(r.len());
    (n > 0).then(|| r[..n].to_string())
}

/// `"text"` without its quotes.
pub fn string(v: &str) -> Option<String> {
    v.trim().strip_prefix('"')?.strip_suffix('"').map(|s| s.to_string())
}

/// `<pkt_type = 0, pkt_id = 3>` (also inside `#aie.packet_info<...>`): (type, id).
pub fn packet_info(v: &str) -> Option<(i64, i64)> {
    let i = v.find('<')?;
    let (inner, _) = bracketed(v, i)?;
    let mut t = 0;
    let mut id = None;
    for item in split_top(inner) {
        let (k, val) = item.split_once('=')?;
        match k.trim() {
            "pkt_type" => t = int(val)?,
            "pkt_id" => id = Some(int(val)?),
            _ => return None,
        }
    }
    Some((t, id?))
}

/// `[<size = 8, stride = 16>, ...]` or `[<const_pad_before = 1, const_pad_after = 0>, ...]`: the pairs of
/// values in order.
pub fn pairs(v: &str, keys: (&str, &str)) -> Option<Vec<(i64, i64)>> {
    let v = v.trim();
    let inner = v.strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    for item in split_top(inner) {
        let i = item.find('<')?;
        let (body, _) = bracketed(&item, i)?;
        let mut a = None;
        let mut b = None;
        for kv in split_top(body) {
            let (k, val) = kv.split_once('=')?;
            if k.trim() == keys.0 {
                a = Some(int(val)?);
            } else if k.trim() == keys.1 {
                b = Some(int(val)?);
            } else {
                return None;
            }
        }
        out.push((a?, b?));
    }
    Some(out)
}

/// `dense<[1, 2, -3]>` or `dense<5>` of integers.
pub fn dense_ints(v: &str) -> Option<Vec<i64>> {
    let v = v.trim();
    let inner = v.strip_prefix("dense<")?;
    let inner = &inner[..inner.rfind('>')?];
    let inner = inner.trim();
    let list = inner.trim_start_matches('[').trim_end_matches(']');
    split_top(list).iter().map(|x| int(x.trim_matches(|c| c == '[' || c == ']'))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_op_text() {
        let (ops, rest) = operands(
            "aie.dma_bd(%b : memref<16xi32>, 0, 16, [<size = 2, stride = 8>]) {bd_id = 3 : i32}",
            "aie.dma_bd",
        )
        .unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(pairs(&ops[3], ("size", "stride")).unwrap(), vec![(2, 8)]);
        assert_eq!(int(&dict(rest)["bd_id"]), Some(3));
        assert_eq!(int("0x00000F00 : ui32"), Some(0xF00));
        assert_eq!(packet_info("#aie.packet_info<pkt_type = 0, pkt_id = 3>"), Some((0, 3)));
        assert_eq!(dense_ints("dense<[1, -2, 3]>"), Some(vec![1, -2, 3]));
        let (p, _) = operands("aie.packet_source<%t, DMA : 0>", "aie.packet_source").unwrap();
        assert_eq!(p, vec!["%t", "DMA : 0"]);
    }
}
