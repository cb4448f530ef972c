//! The three lists of functions (functions/, template.yaml, stack.yml) and the routes agree.

use gantry::function::needs::CHAIN_RPC;
use gantry::function::{FunctionSpec, Need};
use std::collections::BTreeSet;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{name}")).unwrap()
}

fn function_dirs() -> BTreeSet<String> {
    std::fs::read_dir(format!("{ROOT}/functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// `Binary: <name>` entries (one per AWS::Serverless::Function's cargo-lambda metadata).
fn sam_functions() -> BTreeSet<String> {
    read("template.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary: "))
        .map(str::to_owned)
        .collect()
}

/// Keys under `functions:` in stack.yml.
fn openfaas_functions() -> BTreeSet<String> {
    let text = read("stack.yml");
    let mut inside = false;
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("functions:") {
            inside = true;
            continue;
        }
        if inside && !line.starts_with(' ') && !line.trim().is_empty() {
            inside = false;
        }
        if inside
            && line.starts_with("  ")
            && !line.starts_with("   ")
            && line.trim_end().ends_with(':')
        {
            names.insert(line.trim().trim_end_matches(':').to_owned());
        }
    }
    names
}

#[test]
fn every_function_is_deployed_by_both_sam_and_openfaas() {
    let dirs = function_dirs();
    let table: BTreeSet<String> = gantry::app::FUNCTIONS
        .iter()
        .map(|f| f.name.to_owned())
        .collect();
    assert_eq!(dirs, table, "functions/ vs gantry::app::FUNCTIONS");
    assert_eq!(dirs, sam_functions(), "functions/ vs template.yaml");
    assert_eq!(dirs, openfaas_functions(), "functions/ vs stack.yml");
}

/// `Path:`/`Method:` pairs of the HttpApi events in template.yaml.
fn sam_routes() -> BTreeSet<(String, String)> {
    let text = read("template.yaml");
    let mut routes = BTreeSet::new();
    let mut path = None;
    for line in text.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("Path: ") {
            path = Some(p.to_owned());
        } else if let Some(m) = line.strip_prefix("Method: ")
            && let Some(p) = path.take()
        {
            routes.insert((m.to_ascii_lowercase(), p));
        }
    }
    routes
}

/// Every route in the function table, as (method, path).
fn table_routes() -> BTreeSet<(String, String)> {
    gantry::app::FUNCTIONS
        .iter()
        .flat_map(|f| f.routes())
        .map(|r| {
            let method = serde_json::to_value(r.method).unwrap();
            (method.as_str().unwrap().to_owned(), r.path.to_owned())
        })
        .collect()
}

#[test]
fn the_sam_routes_are_the_api_routes() {
    let spec: serde_json::Value = serde_json::from_str(&gantry::app::spec_json()).unwrap();
    let mut api = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            api.insert((method.clone(), path.clone()));
        }
    }
    // Each function answers its own /health; SAM does not route it publicly.
    api.remove(&("get".to_owned(), "/health".to_owned()));
    assert_eq!(sam_routes(), api, "template.yaml vs openapi.json");
    assert_eq!(
        table_routes(),
        api,
        "gantry::app::FUNCTIONS vs openapi.json"
    );
}

/// A function whose table entry needs the ephemeral table is built with gantry's `dynamodb`
/// feature (else it refuses to start where SAM gives it the table), and no other function links
/// the SDK; the table template.yaml creates has the key and TTL attribute the store writes.
#[test]
fn the_functions_that_use_the_ephemeral_table_link_dynamodb_and_only_they() {
    use gantry::function::needs::EPHEMERAL_TABLE;
    for f in gantry::app::FUNCTIONS {
        let manifest = read(&format!("functions/{}/Cargo.toml", f.name));
        let links = manifest.contains("\"dynamodb\"");
        let needs = f.needs.iter().any(|n| **n == EPHEMERAL_TABLE);
        assert_eq!(links, needs, "{}: dynamodb feature vs need", f.name);
    }
    let template = read("template.yaml");
    let table = template
        .split("\n  EphemeralTable:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("template.yaml declares EphemeralTable");
    assert!(
        table.contains(&format!(
            "AttributeName: {}\n          AttributeType: S",
            gantry::store::PARTITION_KEY
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "TimeToLiveSpecification:\n        AttributeName: {}\n        Enabled: true",
            gantry::store::TTL_ATTRIBUTE
        )),
        "{table}"
    );
}

/// The PDF writer and its font make a zip about 2 MB larger: only the worker that renders the
/// documents links them (the local gateway and the tests too, which are not deployed).
#[test]
fn only_the_document_worker_links_the_pdf_writer() {
    let linking: BTreeSet<String> = function_dirs()
        .into_iter()
        .filter(|name| read(&format!("functions/{name}/Cargo.toml")).contains("\"documents\""))
        .collect();
    assert_eq!(
        linking,
        BTreeSet::from([gantry::payments::billing::render::QUEUE.to_owned()])
    );
}

/// Resource `resource` of template.yaml, up to the next commented section.
fn resource_section<'a>(template: &'a str, resource: &str) -> &'a str {
    let start = template
        .find(&format!("\n  {resource}:\n"))
        .unwrap_or_else(|| panic!("{resource} in template.yaml"));
    let body = &template[start + 1..];
    let end = body[3..].find("\n  # ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// A run of `reconcile` reads many objects back: it may take five minutes under Lambda, and its
/// queue hides a message six times as long; every other function keeps the stack's 10 s.
#[test]
fn the_reconcile_worker_has_the_time_it_needs() {
    let template = read("template.yaml");
    let reconcile = resource_section(&template, "ReconcileFunction");
    assert!(reconcile.contains("      Timeout: 300\n"), "{reconcile}");
    assert!(resource_section(&template, "ReconcileQueue").contains("VisibilityTimeout: 1800"));
    assert!(resource_section(&template, "BillingRemindersQueue").contains("VisibilityTimeout: 60"));
    assert_eq!(
        template.matches("      Timeout: ").count(),
        1,
        "only reconcile's"
    );
}

/// The workers that store documents (the PDFs, the ledger anchors) may write the bucket; a
/// worker that only reads blocks, and a function of GETs only, may only read it.
#[test]
fn only_the_functions_that_store_documents_may_write_the_bucket() {
    let template = read("template.yaml");
    let policy = |resource: &str| {
        let body = resource_section(&template, resource);
        ["S3CrudPolicy", "S3ReadPolicy"]
            .into_iter()
            .find(|p| body.contains(p))
            .unwrap_or("none")
    };
    for (resource, expected) in [
        ("BillingDocumentsFunction", "S3CrudPolicy"),
        ("ReconcileFunction", "S3CrudPolicy"),
        ("PinToIpfsFunction", "S3CrudPolicy"),
        ("PinFollowUpFunction", "S3ReadPolicy"),
        ("InvoiceDocumentsFunction", "S3ReadPolicy"),
        ("IpfsGetFunction", "S3ReadPolicy"),
        ("InvoicesFunction", "none"),
        ("RefundsFunction", "none"),
        ("CreditNotesFunction", "none"),
    ] {
        assert_eq!(policy(resource), expected, "{resource}");
    }
}

#[test]
fn the_committed_manifests_are_current() {
    let functions = gantry::app::FUNCTIONS;
    for (name, generated) in [
        ("template.yaml", gantry::manifests::template_yaml(functions)),
        ("stack.yml", gantry::manifests::stack_yml(functions)),
    ] {
        assert!(
            read(name) == generated,
            "{name} is stale: run `cargo run -p gantry-cli -- manifests`"
        );
    }
}

/// A need (and the variable it brings) that no function has.
static EXTRA: Need = Need {
    name: "extra",
    can_be_unavailable: false,
    vars: &[gantry::function::Var {
        name: "EXTRA_SETTING",
        sam: gantry::function::required("ExtraSetting", false, "A setting no function reads"),
        openfaas: gantry::function::secret("gantry-extra-setting"),
    }],
    aws: &[],
};

/// The deploy files of the table with `login` replaced by a copy that also needs `need`.
fn manifests_with_login_also_needing(need: &'static Need) -> (String, String) {
    let table = gantry::app::FUNCTIONS;
    let login = **table.iter().find(|f| f.name == "login").unwrap();
    assert!(!login.needs.contains(&need), "{}", need.name);
    let needs: Vec<&'static Need> = login.needs.iter().copied().chain([need]).collect();
    let login = FunctionSpec {
        needs: Box::leak(needs.into_boxed_slice()),
        ..login
    };
    let functions: Vec<&FunctionSpec> = table
        .iter()
        .map(|f| if f.name == login.name { &login } else { *f })
        .collect();
    (
        gantry::manifests::template_yaml(&functions),
        gantry::manifests::stack_yml(&functions),
    )
}

/// The text after `start`, up to the next `end`.
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let rest = text.split_once(start).map_or("", |(_, rest)| rest);
    rest.split(end).next().unwrap_or(rest)
}

/// What makes the staleness test able to fail: when a function gains a need (a variable, with
/// its parameter and secret), the files no longer match until they are regenerated.
#[test]
fn a_changed_need_changes_the_manifests() {
    let (template, stack) = (read("template.yaml"), read("stack.yml"));
    let login = |template: &str, stack: &str| {
        (
            section(template, "\n  LoginFunction:\n", "\n\n").to_owned(),
            section(stack, "\n  login:\n", "\n  # ").to_owned(),
        )
    };
    let (sam, faas) = login(&template, &stack);
    assert!(sam.contains("DATABASE_URL: !Ref DatabaseUrl"), "{sam}");
    assert!(!sam.contains("CHAIN_RPC_URLS") && !faas.contains("CHAIN_RPC_URLS"));

    let (new_template, new_stack) = manifests_with_login_also_needing(&CHAIN_RPC);
    assert_ne!(new_template, template);
    assert_ne!(new_stack, stack);
    let (sam, faas) = login(&new_template, &new_stack);
    assert!(sam.contains("CHAIN_RPC_URLS: !Ref ChainRpcUrls"), "{sam}");
    assert!(
        faas.contains("CHAIN_RPC_URLS_FILE: /var/openfaas/secrets/gantry-chain-rpc-urls"),
        "{faas}"
    );
    assert!(faas.contains("      - gantry-chain-rpc-urls\n"), "{faas}");

    let (new_template, new_stack) = manifests_with_login_also_needing(&EXTRA);
    let parameter =
        "  ExtraSetting:\n    Type: String\n    Description: \"A setting no function reads\"\n";
    assert!(!template.contains(parameter) && new_template.contains(parameter));
    let (sam, faas) = login(&new_template, &new_stack);
    assert!(sam.contains("EXTRA_SETTING: !Ref ExtraSetting"), "{sam}");
    assert!(faas.contains("      - gantry-extra-setting\n"), "{faas}");
}

#[test]
fn the_manifests_do_not_depend_on_the_table_order() {
    let mut reversed = gantry::app::FUNCTIONS.to_vec();
    reversed.reverse();
    assert_eq!(
        gantry::manifests::template_yaml(&reversed),
        read("template.yaml")
    );
    assert_eq!(gantry::manifests::stack_yml(&reversed), read("stack.yml"));
}
