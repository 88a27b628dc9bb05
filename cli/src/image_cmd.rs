//! `skiff image`: pull, import, list, remove and garbage-collect images in the node's store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use skiff_runtime::image::{DEFAULT_ROOT, ImageInfo, ImageStore, PullOptions, reference};

/// Arguments of `skiff image`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The node's root directory; images live under `<root>/images`.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Pull an image from its registry.
    Pull {
        /// A registry (`host:port`) to reach over plain HTTP; loopback registries always are.
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure_registries: Vec<String>,
        /// Registry username.
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// Registry password.
        #[arg(
            long,
            env = "SKIFF_REGISTRY_PASSWORD",
            requires = "username",
            hide_env_values = true
        )]
        password: Option<String>,
        /// The image reference (`busybox`, `127.0.0.1:5000/app:1`, `name@sha256:...`).
        reference: String,
    },
    /// Import an OCI-layout or `docker save` archive, or with --rootfs a root-filesystem
    /// tarball as NAME:TAG.
    Import {
        /// Treat FILE as a plain root-filesystem tarball (like `docker import`).
        #[arg(long, requires = "name")]
        rootfs: bool,
        /// The archive or tarball.
        file: PathBuf,
        /// The image name for --rootfs.
        name: Option<String>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Remove an image (its layers stay until `gc`).
    #[command(alias = "remove")]
    Rm {
        /// References or image ids.
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove blobs and layers no image references.
    Gc,
}

/// Runs an image command.
pub fn run(args: ImageArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: ImageArgs) -> anyhow::Result<()> {
    let store = ImageStore::open(&args.root)?;
    match args.command {
        ImageCommand::Pull {
            insecure_registries,
            username,
            password,
            reference,
        } => {
            let options = PullOptions {
                insecure_registries,
                auth: username.zip(password),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let info = runtime.block_on(store.pull(&reference, &options))?;
            println!(
                "{}: pulled {} ({})",
                info.reference,
                short_id(&info.id),
                info.digest
            );
        }
        ImageCommand::Import {
            rootfs: true,
            file,
            name,
        } => {
            let name = name.expect("clap requires a name with --rootfs");
            let info = store.import_rootfs(&file, &name)?;
            println!("{}: imported {}", info.reference, short_id(&info.id));
        }
        ImageCommand::Import {
            rootfs: false,
            file,
            name,
        } => {
            anyhow::ensure!(name.is_none(), "a NAME is only taken with --rootfs");
            for info in store.import_archive(&file)? {
                println!("{}: imported {}", info.reference, short_id(&info.id));
            }
        }
        ImageCommand::Ls => print!("{}", table(&store.list()?)),
        ImageCommand::Rm { references } => {
            for r in references {
                let info = store.remove(&r)?;
                println!("Untagged: {}", info.reference);
            }
        }
        ImageCommand::Gc => {
            let report = store.gc()?;
            println!(
                "removed {} layers, {} blobs, {} scratch entries",
                report.layers, report.blobs, report.scratch
            );
        }
    }
    Ok(())
}

/// The `ls` table: REPOSITORY, TAG, IMAGE ID, SIZE, columns aligned like `docker images`.
fn table(images: &[ImageInfo]) -> String {
    let mut rows = vec![[
        "REPOSITORY".into(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ]];
    for i in images {
        let (repo, tag) = if i.reference.starts_with("sha256:") {
            ("<none>".to_string(), "<none>".to_string())
        } else {
            reference::repo_and_tag(&i.reference)
        };
        rows.push([repo, tag, short_id(&i.id).to_string(), human_size(i.size)]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let line: Vec<String> = (0..4)
                .map(|c| format!("{:<w$}", r[c], w = widths[c]))
                .collect();
            format!("{}\n", line.join("   ").trim_end())
        })
        .collect()
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Sizes as Docker prints them (decimal units).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[unit]
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ImageArgs,
    }

    #[test]
    fn commands_parse() {
        let w = Wrapper::try_parse_from([
            "x",
            "pull",
            "--insecure-registry",
            "reg:5000",
            "reg:5000/a:1",
        ])
        .unwrap();
        assert_eq!(w.args.root, PathBuf::from(DEFAULT_ROOT));
        assert!(
            matches!(w.args.command, ImageCommand::Pull { ref insecure_registries, .. } if insecure_registries == &["reg:5000"])
        );
        let w =
            Wrapper::try_parse_from(["x", "--root", "/r", "import", "--rootfs", "f.tar", "app:1"])
                .unwrap();
        assert!(
            matches!(w.args.command, ImageCommand::Import { rootfs: true, ref name, .. } if name.as_deref() == Some("app:1"))
        );
        assert!(Wrapper::try_parse_from(["x", "import", "--rootfs", "f.tar"]).is_err());
        assert!(Wrapper::try_parse_from(["x", "rm"]).is_err());
    }

    #[test]
    fn ls_prints_an_aligned_table() {
        let image = |reference: &str, size| ImageInfo {
            reference: reference.into(),
            id: format!("sha256:{}", "ab".repeat(32)),
            digest: String::new(),
            config: Default::default(),
            layers: vec![],
            size,
        };
        let out = table(&[
            image("docker.io/library/busybox:latest", 2_155_000),
            image("127.0.0.1:5000/app:1", 999),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        let header = format!(
            "REPOSITORY{}TAG{}IMAGE ID{}SIZE",
            " ".repeat(18),
            " ".repeat(6),
            " ".repeat(7)
        );
        assert_eq!(lines[0], header);
        assert_eq!(
            lines[1],
            "docker.io/library/busybox   latest   abababababab   2.155MB"
        );
        let second = format!(
            "127.0.0.1:5000/app{}1{}abababababab   999B",
            " ".repeat(10),
            " ".repeat(8)
        );
        assert_eq!(lines[2], second);
    }
}
