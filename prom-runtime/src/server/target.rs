//! Strict percent-decoding of request targets (paths and query strings).
//!
//! A `%` not followed by two hex digits, or bytes that are not UTF-8 once decoded, are refused:
//! lenient decoders turn them into U+FFFD and answer for a value the client never sent.

/// Decodes one percent-encoded URI component; `form` also turns `+` into a space (query
/// strings are `application/x-www-form-urlencoded`). The error says where and how to fix it.
pub fn decode_component(raw: &str, form: bool) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| char::from(b).to_digit(16);
                let pair =
                    bytes.get(i + 1).copied().and_then(hex).zip(bytes.get(i + 2).copied().and_then(hex));
                let Some((high, low)) = pair else {
                    let shown: String = raw[i..].chars().take(3).collect();
                    return Err(format!(
                        "`{shown}` at byte {i} is not a percent-escape: write `%` followed by two hex \
                         digits, and a literal `%` as `%25`"
                    ));
                };
                // Two hex digits make a value below 256.
                out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                i += 3;
            }
            b'+' if form => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| {
        format!(
            "the decoded bytes are not UTF-8 (at decoded byte {}): percent-encode text as UTF-8, \
             e.g. `é` as `%C3%A9`",
            e.utf8_error().valid_up_to()
        )
    })
}

/// `uri` for reports: the value of an `access_token` query parameter (a browser's token) is
/// replaced by `REDACTED`.
pub fn redacted(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else { return uri.to_string() };
    let parts: Vec<String> = query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((name, _)) if decode_component(name, true).ok().as_deref() == Some("access_token") => {
                format!("{name}=REDACTED")
            }
            _ => part.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), parts.join("&"))
}

/// Splits and strictly decodes a query string into `(name, value)` pairs, in order.
pub fn parse_query_string(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|part| !part.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = decode_component(name, true).map_err(|e| format!("query parameter name `{name}`: {e}"))?;
        let value = decode_component(value, true).map_err(|e| match name.as_str() {
            // A secret: nothing of it is quoted.
            "access_token" => "query parameter `access_token` is not percent-encoded UTF-8 text".to_owned(),
            _ => format!("query parameter `{name}`: {e}"),
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}
