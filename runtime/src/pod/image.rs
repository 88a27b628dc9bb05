//! From an image config to the container's process, with Kubernetes' override rules:
//! `command` replaces the entrypoint (and drops the image's cmd), `args` replaces cmd.

use std::path::PathBuf;

use crate::container::{ProcessSpec, User};
use crate::image::ImageConfig;

/// The process for a container of `image` with the pod's `command`, `args` and `env`
/// (later entries of `env` override the image's).
pub fn process_from_image(
    image: &ImageConfig,
    layers: &[PathBuf],
    command: &[String],
    args: &[String],
    env: &[String],
) -> ProcessSpec {
    let mut argv = if command.is_empty() {
        image.entrypoint.clone()
    } else {
        command.to_vec()
    };
    if !args.is_empty() {
        argv.extend_from_slice(args);
    } else if command.is_empty() {
        argv.extend(image.cmd.iter().cloned());
    }
    let mut merged: Vec<String> = Vec::new();
    for kv in image.env.iter().chain(env) {
        let key = kv.split('=').next().unwrap_or("");
        merged.retain(|e| e.split('=').next() != Some(key));
        merged.push(kv.clone());
    }
    if !merged.iter().any(|e| e.starts_with("PATH=")) {
        merged.insert(0, format!("PATH={}", crate::container::spec::DEFAULT_PATH));
    }
    ProcessSpec {
        args: argv,
        env: merged,
        cwd: image
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: image
            .user
            .as_deref()
            .map(|u| parse_user(u, layers))
            .unwrap_or_default(),
        rlimits: Vec::new(),
    }
}

/// `uid`, `uid:gid`, `name` or `name:group`; names are looked up in the image's
/// `/etc/passwd` and `/etc/group` (topmost layer that has them). Unknown names map to 0.
pub fn parse_user(spec: &str, layers: &[PathBuf]) -> User {
    let (u, g) = spec
        .split_once(':')
        .map_or((spec, None), |(u, g)| (u, Some(g)));
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        let text = layers
            .iter()
            .rev()
            .find_map(|l| std::fs::read_to_string(l.join(file)).ok())?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&name)).then(|| {
                Some((
                    f.get(2)?.parse().ok()?,
                    f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
                ))
            })?
        })
    };
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(uid) => (uid, lookup_by_uid(layers, uid).unwrap_or(0)),
        Err(_) => lookup("etc/passwd", u).unwrap_or((0, 0)),
    };
    if let Some(g) = g {
        gid = g
            .parse()
            .ok()
            .or_else(|| lookup("etc/group", g).map(|(id, _)| id))
            .unwrap_or(0);
    }
    User {
        uid,
        gid,
        additional_gids: Vec::new(),
    }
}

fn lookup_by_uid(layers: &[PathBuf], uid: u32) -> Option<u32> {
    let text = layers
        .iter()
        .rev()
        .find_map(|l| std::fs::read_to_string(l.join("etc/passwd")).ok())?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f.get(3)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/bin".into(), "MODE=prod".into()],
            working_dir: Some("/app".into()),
            user: Some("www".into()),
        }
    }

    #[test]
    fn kubernetes_command_and_args_override_rules() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nwww:x:33:34::/:/bin/sh\n",
        )
        .unwrap();
        let layers = vec![tmp.path().to_path_buf()];
        let p = process_from_image(&image(), &layers, &[], &[], &["MODE=dev".into()]);
        assert_eq!(p.args, ["/entry", "serve", "--port=80"]);
        assert_eq!(p.env, ["PATH=/bin", "MODE=dev"]);
        assert_eq!((p.cwd.as_str(), p.user.uid, p.user.gid), ("/app", 33, 34));
        let p = process_from_image(&image(), &layers, &[], &["x".into()], &[]);
        assert_eq!(p.args, ["/entry", "x"]);
        let p = process_from_image(&image(), &layers, &["sh".into()], &[], &[]);
        assert_eq!(p.args, ["sh"]);
        assert_eq!(
            parse_user("1000:50", &layers),
            User {
                uid: 1000,
                gid: 50,
                additional_gids: vec![]
            }
        );
        assert_eq!(parse_user("33", &layers).gid, 34);
    }
}
