//! Writing a benchmark's section into BENCHMARKS.md, replacing the previous figures of the
//! same benchmark and keeping the others.

use std::path::Path;

/// Replaces (or appends) the section titled `## <title>` in the markdown file. Parts
/// (`### <title>`) of the old section that `body` does not write again are kept after it:
/// another benchmark wrote them (`write_subsection`).
pub fn write_section(path: &Path, title: &str, body: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\nFigures measured on the development machine (2 cores). Each benchmark compares against a reference measured in the same run.\n".into());
    let header = format!("## {title}\n");
    let new = match old.find(&header) {
        Some(start) => {
            let rest = &old[start + header.len()..];
            let end = rest
                .find("\n## ")
                .map(|i| start + header.len() + i + 1)
                .unwrap_or(old.len());
            let mut section = format!("{header}\n{}\n", body.trim_end());
            for part in old[start..end].split("\n### ").skip(1) {
                let title = part.lines().next().unwrap_or_default();
                if !body.contains(&format!("### {title}\n")) {
                    section.push_str(&format!("\n### {}\n", part.trim_end()));
                }
            }
            format!("{}{}\n{}", &old[..start], section, &old[end..])
                .trim_end()
                .to_string()
                + "\n"
        }
        None => format!("{}\n\n{header}\n{}\n", old.trim_end(), body.trim_end()),
    };
    std::fs::write(path, new)
}

/// Replaces (or appends) the part titled `### <title>` inside the section `## <section>`
/// (made, with the file, when missing), keeping the rest of that section.
pub fn write_subsection(
    path: &Path,
    section: &str,
    title: &str,
    body: &str,
) -> std::io::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(old) => old,
        // A new file: written as a new section.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let header = format!("## {section}\n");
    let Some(start) = old.find(&header) else {
        return write_section(path, section, &format!("### {title}\n\n{body}"));
    };
    let end = old[start + header.len()..]
        .find("\n## ")
        .map(|i| start + header.len() + i + 1)
        .unwrap_or(old.len());
    let part = format!("### {title}\n\n{}\n", body.trim_end());
    let sub = format!("### {title}\n");
    let inner = &old[start..end];
    let new_inner = match inner.find(&sub) {
        Some(s) => {
            let rest = &inner[s + sub.len()..];
            let e = rest
                .find("\n### ")
                .map(|i| s + sub.len() + i + 1)
                .unwrap_or(inner.len());
            format!("{}{part}\n{}", &inner[..s], &inner[e..])
        }
        None => format!("{}\n\n{part}\n", inner.trim_end()),
    };
    let new = format!("{}{}{}", &old[..start], new_inner, &old[end..]);
    std::fs::write(path, new.trim_end().to_string() + "\n")
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
        write_subsection(&p, "A", "X", "x1").unwrap();
        write_subsection(&p, "A", "X", "x2").unwrap();
        let s2 = std::fs::read_to_string(&p).unwrap();
        assert!(
            s2.contains("## A\n\nthree\n\n### X\n\nx2\n")
                && !s2.contains("x1")
                && s2.contains("## B\n\ntwo"),
            "{s2}"
        );
        assert!(
            s.contains("## A\n\nthree") && s.contains("## B\n\ntwo") && !s.contains("one"),
            "{s}"
        );
    }

    #[test]
    fn a_section_written_again_keeps_the_parts_others_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        write_section(&path, "Jobs", "jobs v1\n\n### Own part\n\nown v1").unwrap();
        write_subsection(&path, "Jobs", "StatefulSet startup", "sts figures").unwrap();
        write_section(&path, "Other", "other").unwrap();
        write_section(&path, "Jobs", "jobs v2\n\n### Own part\n\nown v2").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("jobs v2") && !text.contains("jobs v1"),
            "{text}"
        );
        assert!(
            text.contains("own v2") && !text.contains("own v1"),
            "{text}"
        );
        assert_eq!(text.matches("### Own part").count(), 1, "{text}");
        assert!(
            text.contains("### StatefulSet startup\n\nsts figures"),
            "{text}"
        );
        let jobs = text.find("## Jobs").unwrap();
        let sts = text.find("### StatefulSet startup").unwrap();
        let other = text.find("## Other").unwrap();
        assert!(jobs < sts && sts < other, "kept inside its section: {text}");
    }
}
