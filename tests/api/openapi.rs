//! `/api/openapi.json`: generated from the same declarations that build the router, so every
//! route is in it; this test checks that each described route answers, and that no code adds
//! a route around the declarations.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, AUTH_SECRET, OWNER_ID};

#[tokio::test]
async fn every_route_is_described_and_every_description_is_a_route() {
    let app = spawn_app().await;
    let (s, spec) = app.get_json("/api/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    let mut ops = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}"
            );
            assert!(op["x-access"].is_string(), "{method} {path}");
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                assert!(
                    params.contains(&seg.trim_matches(['{', '}'])),
                    "{path}: {seg} undescribed"
                );
            }
            ops.push((method.to_uppercase(), path.clone()));
        }
    }
    // The plugins' routes are there under their names, the host's too.
    let tags: std::collections::BTreeSet<&str> = paths
        .values()
        .flat_map(|i| i.as_object().unwrap().values())
        .filter_map(|op| op["tags"][0].as_str())
        .collect();
    for t in [
        "host",
        "dev",
        "tags",
        "moderation",
        "modmail",
        "suggestions",
        "dashboard",
    ] {
        assert!(tags.contains(t), "{t} missing from {tags:?}");
    }
    assert!(ops.len() >= 35, "{}", ops.len());

    // Each described route exists: it answers anything but "no such endpoint" (404
    // not_found) or "not that method" (405).
    let token = heimdall_host::auth::mint(
        AUTH_SECRET,
        OWNER_ID.parse().unwrap(),
        Duration::from_secs(600),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Signing out last: it ends the token used for the rest.
    ops.sort_by_key(|(_, p)| p.contains("/auth/logout") || p.contains("/auth/revoke"));
    for (method, path) in ops {
        let url = path
            .replace("{guild}", "610000000000000001")
            .replace("{plugin}", "moderation")
            .replace("{user}", "610000000000000009")
            .split('/')
            .map(|s| if s.starts_with('{') { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let mut req = http
            .request(method.parse().unwrap(), format!("{}{url}", app.address))
            .bearer_auth(&token);
        if method == "POST" || method == "PUT" {
            req = req.json(&serde_json::json!({}));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            !(status == 404 && body["code"] == "not_found") && status != 405,
            "{method} {path} is described but not served: {status} {body}"
        );
    }
}

#[test]
fn no_code_adds_a_route_around_the_declarations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src/host", "plugins"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
    }
    assert!(files.len() > 40);
    for f in files {
        let code = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        for (at, _) in code.match_indices(".route(") {
            let line = code[at..].lines().next().unwrap_or_default();
            let allowed = rel == "src/host/routes.rs"
                || (rel == "src/host/api.rs" && line.contains("\"/api/{*rest}\""));
            assert!(
                allowed,
                "{rel} adds a route that /api/openapi.json does not describe: {line}"
            );
        }
    }
}
