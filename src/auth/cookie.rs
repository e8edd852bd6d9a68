//! Reading one cookie out of `Cookie` request headers.

/// Every value of cookie `name` in one `Cookie` header value (`a=1; b="2"`). Values in double
/// quotes are unquoted. Pairs that are not UTF-8 are skipped unless they are the cookie asked
/// for, whose value is then returned as `Err(())`.
pub(crate) fn cookie_values<'h, 'n>(
    header: &'h [u8],
    name: &'n str,
) -> impl Iterator<Item = Result<&'h str, ()>> + use<'h, 'n> {
    header.split(|b| *b == b';').filter_map(move |pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (key, value) = (trim(&pair[..eq]), trim(&pair[eq + 1..]));
        if key != name.as_bytes() {
            return None;
        }
        let value = unquote(value);
        Some(std::str::from_utf8(value).map_err(|_| ()))
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (&'static [u8], &'static [Result<&'static str, ()>]);

    #[test]
    fn cookie_table() {
        let cases: &[Case] = &[
            (b"jwt=abc", &[Ok("abc")]),
            (b"a=1; jwt=abc; b=2", &[Ok("abc")]),
            (b"a=1;jwt=abc", &[Ok("abc")]),
            (b"jwt=\"abc\"", &[Ok("abc")]),
            (b"jwt=\"", &[Ok("\"")]),
            (b"xjwt=abc; jwtx=def", &[]),
            (b"jwt=abc; jwt=def", &[Ok("abc"), Ok("def")]),
            (b"jwt=", &[Ok("")]),
            (b"jwt", &[]),
            (b"a=\xff; jwt=abc", &[Ok("abc")]),
            (b"jwt=\xff", &[Err(())]),
            (b"", &[]),
        ];
        for (header, want) in cases {
            let got: Vec<_> = cookie_values(header, "jwt").collect();
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(header));
        }
    }
}
