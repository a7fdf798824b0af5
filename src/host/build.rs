//! Embeds the dashboard in the binary: the built app (`dashboard/dist`, made by `npm run
//! build`; it holds `dashboard/public` too) or, when it was not built, `dashboard/public` and a
//! page saying how to build the app. Writes the list of files, each as `include_bytes!`, to
//! `$OUT_DIR/dashboard_files.rs`.

use std::path::{Path, PathBuf};

fn files(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            out.push((url, p.canonicalize().unwrap_or(p.clone())));
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboard");
    let (dist, public) = (root.join("dist"), root.join("public"));
    println!("cargo:rerun-if-changed={}", dist.display());
    println!(
        "cargo:rerun-if-changed={}",
        dist.join("index.html").display()
    );
    println!("cargo:rerun-if-changed={}", public.display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let mut list = Vec::new();
    if dist.join("index.html").exists() {
        files(&dist, &dist, &mut list);
    } else {
        println!("cargo:warning=dashboard/dist is missing: the binary serves a page saying how to build the dashboard (cd dashboard && npm ci && npm run build; ./scripts/run.sh does it)");
        files(&public, &public, &mut list);
        let page = out_dir.join("not-built.html");
        std::fs::write(
            &page,
            "<!doctype html><meta charset=utf-8><title>Heimdall</title><h1>Heimdall</h1>\n\
             <p>The dashboard app was not built into this binary. Build it with \
             <code>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</code> and rebuild the bot \
             (<code>./scripts/run.sh</code> does both). The API runs.</p>\n",
        )
        .expect("writing the placeholder page");
        list.retain(|(url, _)| url != "/index.html");
        list.push(("/index.html".into(), page));
    }
    for (_, p) in &list {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let mut code = String::from("/// The dashboard's files: URL path and contents.\npub static FILES: &[(&str, &[u8])] = &[\n");
    for (url, p) in &list {
        code.push_str(&format!(
            "    ({url:?}, include_bytes!({:?})),\n",
            p.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = out_dir.join("dashboard_files.rs");
    std::fs::write(out, code).expect("writing the dashboard's file list");
}
