//! Embeds the dashboard (`dashboard/public`) in the binary: writes the list of its files,
//! each as `include_bytes!`, to `$OUT_DIR/dashboard_files.rs`.

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
    let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboard/public");
    println!("cargo:rerun-if-changed={}", public.display());
    let mut list = Vec::new();
    files(&public, &public, &mut list);
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
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("dashboard_files.rs");
    std::fs::write(out, code).expect("writing the dashboard's file list");
}
