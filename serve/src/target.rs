//! Splitting a request target into its path and decoded query pairs.

/// Splits a request target into the path (as sent, not percent-decoded, like Python's
/// `http.server`) and its decoded query pairs, in order (a repeated key keeps every value).
pub(crate) fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, q) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let query = q
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path.to_string(), query)
}

/// `application/x-www-form-urlencoded` decoding of one key or value (invalid UTF-8
/// replaced by U+FFFD).
pub(crate) fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splitting() {
        let (p, q) = split_target("/a/b?x=1&y=h%C3%A9+llo&z&=v&%zz=%4&x=2");
        assert_eq!(p, "/a/b");
        assert_eq!(
            q,
            vec![
                ("x".into(), "1".into()),
                ("y".into(), "hé llo".into()),
                ("z".into(), "".into()),
                ("".into(), "v".into()),
                ("%zz".into(), "%4".into()),
                ("x".into(), "2".into()),
            ]
        );
        assert_eq!(split_target("/"), ("/".to_string(), vec![]));
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
