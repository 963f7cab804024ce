//! The bundled scenario catalog (`scenarios/catalog/*.toml` under the stack's root) and
//! how a `NAME|PATH` argument finds its file.

use std::path::{Path, PathBuf};

/// The catalog folder of a stack rooted at `root`.
pub fn dir(root: &Path) -> PathBuf {
    root.join("scenarios").join("catalog")
}

/// Every `*.toml` in `dir`, sorted by file name.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    out.sort();
    Ok(out)
}

/// Finds a scenario: an existing path as is, otherwise `NAME` in the catalog.
pub fn find(arg: &str, dir: &Path) -> Result<PathBuf, String> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let named = dir.join(format!("{arg}.toml"));
    if named.is_file() {
        return Ok(named);
    }
    let known = files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect::<Vec<_>>();
    Err(format!(
        "no scenario {arg:?}: not a file and not in the catalog ({}); known: {}",
        dir.display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_are_found() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("smoke.toml"), "").expect("write");
        std::fs::write(d.path().join("notes.txt"), "").expect("write");
        assert_eq!(files(d.path()).expect("list").len(), 1);
        assert_eq!(
            find("smoke", d.path()).expect("by name"),
            d.path().join("smoke.toml")
        );
        let p = d.path().join("smoke.toml");
        assert_eq!(find(&p.to_string_lossy(), d.path()).expect("by path"), p);
        let err = find("nope", d.path()).expect_err("unknown");
        assert!(err.contains("known: smoke"), "{err}");
    }
}
