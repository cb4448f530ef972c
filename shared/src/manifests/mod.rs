//! The deploy files, written from the function table: `template.yaml` (AWS SAM, [`template_yaml`])
//! and `stack.yml` (OpenFaaS, [`stack_yml`]). Each function is read through
//! [`FunctionSpec::describe`]: its name, its trigger (HTTP routes, or a queue and its schedule)
//! and its needs (variables, AWS access). `gantry manifests` writes both files and a deploy test
//! checks that the committed ones are current. Core: the table is a parameter.

mod openfaas;
mod sam;

pub use openfaas::stack_yml;
pub use sam::template_yaml;

use crate::function::{FunctionDescription, FunctionSpec, Var};
use std::fmt;

/// The CloudFormation resource stem of a function: its kebab-case name in PascalCase
/// (`login-blockchain` → `LoginBlockchain`, as in `LoginBlockchainFunction`).
pub fn resource_name(name: &str) -> String {
    name.split('-').map(capitalize).collect()
}

/// The first character in upper case and the rest in lower case: `GET` → `Get`, `jwks` → `Jwks`.
fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The functions, described, in name order: the files do not change when the table is
/// reordered.
fn describe(functions: &[&FunctionSpec]) -> Vec<FunctionDescription> {
    let mut table: Vec<FunctionDescription> = functions.iter().map(|f| f.describe()).collect();
    table.sort_by_key(|f| f.name);
    table
}

fn is_queue(f: &FunctionDescription) -> bool {
    f.trigger == "queue"
}

/// What the function answers, for comments and descriptions: `queue mailer`, or its routes
/// (`POST /login, GET /profile`).
fn doc(f: &FunctionDescription) -> String {
    if is_queue(f) {
        return format!("queue {}", f.name);
    }
    let routes: Vec<String> = f
        .routes
        .iter()
        .map(|r| format!("{} {}", r.method.http(), r.path))
        .collect();
    routes.join(", ")
}

/// Every variable of the function's needs, in the order it declares them.
fn vars<'a>(f: &'a FunctionDescription) -> impl Iterator<Item = &'static Var> + 'a {
    f.needs.iter().flat_map(|need| need.vars)
}

/// A double-quoted scalar, in ASCII: a JSON string with anything else as `\uXXXX` (YAML reads
/// the same escapes).
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// A value as YAML: a tag such as `!Ref X` as it is, anything else quoted.
fn yaml_scalar(value: &str) -> String {
    if value.starts_with('!') {
        value.to_owned()
    } else {
        quoted(value)
    }
}

/// What `write` writes into a new string (writing to a `String` never fails).
fn written(write: impl FnOnce(&mut String) -> fmt::Result) -> String {
    let mut out = String::new();
    let _ = write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_name_is_the_function_name_in_pascal_case() {
        assert_eq!(resource_name("login-blockchain"), "LoginBlockchain");
        assert_eq!(resource_name("mfa"), "Mfa");
        assert_eq!(
            resource_name("create-btcpay-invoice"),
            "CreateBtcpayInvoice"
        );
        assert_eq!(resource_name("pin-to-ipfs"), "PinToIpfs");
    }

    #[test]
    fn a_tag_stays_bare_and_anything_else_is_quoted() {
        assert_eq!(yaml_scalar("!Ref EphemeralTable"), "!Ref EphemeralTable");
        assert_eq!(yaml_scalar("s3"), "\"s3\"");
        assert_eq!(yaml_scalar("a \"b\"\\n"), r#""a \"b\"\\n""#);
        assert_eq!(yaml_scalar(""), "\"\"");
        assert_eq!(
            yaml_scalar("sk_live_… 😀\u{1}"),
            r#""sk_live_\u2026 \ud83d\ude00\u0001""#
        );
    }
}
