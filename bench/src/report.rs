//! Writing a benchmark's section into BENCHMARKS.md, replacing the previous figures of the
//! same benchmark and keeping the others.

use std::path::Path;

/// Replaces (or appends) the section titled `## <title>` in the markdown file.
pub fn write_section(path: &Path, title: &str, body: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\nFigures measured on the development machine (2 cores). Each benchmark compares against a reference measured in the same run.\n".into());
    let header = format!("## {title}\n");
    let section = format!("{header}\n{}\n", body.trim_end());
    let new = match old.find(&header) {
        Some(start) => {
            let rest = &old[start + header.len()..];
            let end = rest
                .find("\n## ")
                .map(|i| start + header.len() + i + 1)
                .unwrap_or(old.len());
            format!("{}{}\n{}", &old[..start], section, &old[end..])
                .trim_end()
                .to_string()
                + "\n"
        }
        None => format!("{}\n\n{section}", old.trim_end()),
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_its_own_section() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("B.md");
        write_section(&p, "A", "one").unwrap();
        write_section(&p, "B", "two").unwrap();
        write_section(&p, "A", "three").unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(
            s.contains("## A\n\nthree") && s.contains("## B\n\ntwo") && !s.contains("one"),
            "{s}"
        );
    }
}
