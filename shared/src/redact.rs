//! Text for logs and error messages with every URL cut to its scheme, host and port.
//!
//! Endpoint URLs carry secrets: Infura's and Alchemy's RPC keys live in the path
//! (`https://mainnet.infura.io/v3/<key>`), others take `?apikey=`, and database or SMTP URLs carry
//! `user:password@`. Upstream errors quote their URL (reqwest's `Display` says `error sending
//! request for url (https://…)`), so anything that logs or wraps such an error passes it
//! through [`Redacted`] (or [`urls`]) first: `error = %Redacted(&err)`. What is left names the
//! host, which is what an operator needs to see which endpoint failed.

use std::fmt;
use std::io;

/// `text` with each URL in it (anything around a `://`) reduced to `scheme://host[:port]`: its
/// user information, path, query and fragment are dropped. A URL ends at whitespace, a quote, a
/// closing parenthesis or a backslash (as in escaped JSON or `Debug` output).
pub fn urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after.find(ends_a_url).unwrap_or(after.len());
        out.push_str(host(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The `host[:port]` of a URL's text after its `://`. User information may hold a `/` that
/// was never escaped (`postgres://u:pa/ss@db`), so it ends at the last `@` before any query or
/// fragment: a stray `@` in a path then costs the host's name, never a secret.
fn host(url: &str) -> &str {
    let before_query = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let authority = before_query
        .rsplit_once('@')
        .map_or(url, |(_, after)| after);
    &authority[..authority.find(['/', '?', '#']).unwrap_or(authority.len())]
}

fn ends_a_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | '\\')
}

/// Shows its value with [`urls`] applied: `tracing::warn!(error = %Redacted(&err), "…")`, or
/// `format!("chain {id}: {}", Redacted(&err))`. The alternate form (`{:#}`) shows an `anyhow`
/// error's whole chain, also redacted.
pub struct Redacted<T>(pub T);

impl<T: fmt::Display> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if f.alternate() {
            format!("{:#}", self.0)
        } else {
            self.0.to_string()
        };
        f.write_str(&urls(&text))
    }
}

impl<T: fmt::Display> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A log writer that passes each line through [`urls`]: the net under every log line, for a URL
/// that reaches a log some other way (alloy's debug span, for one, names its full RPC URL). The
/// fmt layer writes an event in one call, so each call is one whole line.
pub struct RedactingWriter<W>(pub W);

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) if text.contains("://") => self.0.write_all(urls(text).as_bytes())?,
            _ => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_path_or_query_is_cut_and_the_host_stays() {
        let text = "error sending request for url (https://mainnet.infura.io/v3/SECRETKEY123?apikey=SECRET456#frag)";
        assert_eq!(
            urls(text),
            "error sending request for url (https://mainnet.infura.io)"
        );
    }

    #[test]
    fn credentials_are_cut_and_the_port_stays() {
        assert_eq!(
            urls("connecting to postgres://gantry:hunter2@db.internal:5432/gantry failed"),
            "connecting to postgres://db.internal:5432 failed"
        );
        // A password with an unescaped slash or at sign still goes.
        assert_eq!(urls("smtp://me:pa/ss@mail:25"), "smtp://mail:25");
        assert_eq!(urls("smtp://me:p@ss@mail"), "smtp://mail");
        assert_eq!(urls("http://[::1]:8545/v3/KEY"), "http://[::1]:8545");
    }

    #[test]
    fn every_url_in_a_text_is_cut_and_the_rest_is_kept() {
        let text = r#"Transport(Custom(reqwest::Error { kind: Request, url: "http://127.0.0.1:9/v3/SECRET", source: ConnectError("tcp connect error", 127.0.0.1:9) })) then ws://node.example/KEY2 and "https://a.example/?k=SECRET3""#;
        let redacted = urls(text);
        for secret in ["SECRET", "KEY2"] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        assert_eq!(
            redacted,
            r#"Transport(Custom(reqwest::Error { kind: Request, url: "http://127.0.0.1:9", source: ConnectError("tcp connect error", 127.0.0.1:9) })) then ws://node.example and "https://a.example""#
        );
    }

    #[test]
    fn escaped_json_ends_a_url() {
        assert_eq!(
            urls(r#"{\"url\":\"https://h.example/v3/KEY\"}"#),
            r#"{\"url\":\"https://h.example\"}"#
        );
    }

    #[test]
    fn text_without_a_url_is_unchanged() {
        for text in ["", "chain 1 is unavailable", "a: b", "ends with ://"] {
            assert_eq!(urls(text), text);
        }
    }

    #[test]
    fn the_log_writer_redacts_each_line() {
        use std::io::Write;
        let mut writer = RedactingWriter(Vec::new());
        writer
            .write_all(br#"{"span":{"url":"https://h.example/v3/KEY"}}"#)
            .unwrap();
        writer.write_all(b" and no url\n").unwrap();
        assert_eq!(
            String::from_utf8(writer.0).unwrap(),
            "{\"span\":{\"url\":\"https://h.example\"}} and no url\n"
        );
    }

    #[test]
    fn redacted_shows_an_error_and_its_chain_without_the_url() {
        let err = anyhow::anyhow!("error sending request for url (https://h.example/v3/KEY)")
            .context("chain 1");
        assert_eq!(Redacted(&err).to_string(), "chain 1");
        assert_eq!(
            format!("{:#}", Redacted(&err)),
            "chain 1: error sending request for url (https://h.example)"
        );
        assert_eq!(
            format!("{:?}", Redacted("u://x:y@h/p")),
            "u://h",
            "Debug is redacted too"
        );
    }
}
