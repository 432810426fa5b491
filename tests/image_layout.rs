//! The two ways to build `parity-operator:dev` agree: the Dockerfile's final stage (for users
//! with Docker) and `hack/testenv/images parity` (podman, FROM scratch, for the test node).
//! The Dockerfile is parsed; the podman image is read from its OCI archive (index, manifest,
//! config, layer listing), so no container engine has to run the image.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What the Dockerfile's final stage says about the image's runtime layout.
#[derive(Debug, Default)]
struct FinalStage {
    user: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    exposed: Vec<String>,
    copied_to: Vec<String>,
}

/// Parses the instructions after the last `FROM` (line continuations are not used there).
fn final_stage(dockerfile: &str) -> FinalStage {
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("the Dockerfile has a FROM line");
    let mut stage = FinalStage::default();
    for line in &lines[last_from + 1..] {
        let Some((instr, rest)) = line.split_once(' ') else {
            continue;
        };
        match instr {
            "USER" => rest.trim().clone_into(&mut stage.user),
            "ENTRYPOINT" => {
                stage.entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form")
            }
            "CMD" => stage.cmd = serde_json::from_str(rest).expect("CMD in exec form"),
            "EXPOSE" => stage.exposed.extend(rest.split_whitespace().map(|p| {
                if p.contains('/') {
                    p.to_owned()
                } else {
                    format!("{p}/tcp")
                }
            })),
            "COPY" => stage.copied_to.push(
                rest.split_whitespace()
                    .last()
                    .expect("COPY destination")
                    .to_owned(),
            ),
            _ => {}
        }
    }
    stage
}

/// One file of the OCI archive, as bytes.
fn archive_file(archive: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar -xOf {} {name}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn blob(archive: &Path, digest: &str) -> Vec<u8> {
    archive_file(
        archive,
        &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
    )
}

/// Builds (or finds cached) the podman image from the binary this test run built.
fn podman_archive() -> PathBuf {
    let out = Command::new(Path::new(ROOT).join("hack/testenv/images"))
        .arg("parity")
        .env("PARITY_BIN", env!("CARGO_BIN_EXE_parity"))
        .output()
        .expect("run hack/testenv/images");
    assert!(
        out.status.success(),
        "hack/testenv/images parity failed (it needs podman: hack/testenv/node-deps installs it as root):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 path");
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("images prints the archive path")
            .trim(),
    )
}

#[test]
fn podman_image_matches_the_dockerfile_final_stage() {
    let dockerfile =
        std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("read Dockerfile");
    let want = final_stage(&dockerfile);
    assert_eq!(
        want.user, "65532:65532",
        "the Dockerfile's final stage runs as nonroot"
    );

    let archive = podman_archive();
    let index: Value =
        serde_json::from_slice(&archive_file(&archive, "index.json")).expect("index.json");
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("a manifest in index.json");
    let manifest: Value =
        serde_json::from_slice(&blob(&archive, manifest_digest)).expect("manifest");
    let config: Value = serde_json::from_slice(&blob(
        &archive,
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    ))
    .expect("image config");
    let cfg = &config["config"];

    assert_eq!(cfg["User"].as_str(), Some(want.user.as_str()), "user");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(strings(&cfg["Entrypoint"]), want.entrypoint, "entrypoint");
    assert_eq!(strings(&cfg["Cmd"]), want.cmd, "cmd");
    let mut exposed: Vec<String> = cfg["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    exposed.sort();
    let mut want_exposed = want.exposed.clone();
    want_exposed.sort();
    assert_eq!(exposed, want_exposed, "exposed ports");

    // Every path the final stage copies in, plus what the distroless base provides and the
    // binary needs: CA certificates, a passwd entry for 65532 and glibc's loader.
    let mut files = Vec::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let bytes = blob(&archive, layer["digest"].as_str().expect("layer digest"));
        let gzip = layer["mediaType"]
            .as_str()
            .is_some_and(|m| m.ends_with("gzip"));
        let mut tar = Command::new("tar")
            .arg(if gzip { "-tzf" } else { "-tf" })
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run tar -tz");
        std::io::Write::write_all(&mut tar.stdin.take().expect("stdin"), &bytes)
            .expect("feed the layer to tar");
        let out = tar.wait_with_output().expect("tar -tz");
        assert!(out.status.success(), "listing a layer failed");
        files.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| format!("/{}", l.trim_start_matches("./"))),
        );
    }
    for path in want
        .copied_to
        .iter()
        .map(String::as_str)
        .chain(["/etc/ssl/certs/ca-certificates.crt", "/etc/passwd"])
    {
        assert!(
            files.iter().any(|f| f == path),
            "{path} is missing from the podman image (has {} files)",
            files.len()
        );
    }
    assert!(
        files.iter().any(|f| f.ends_with("/libc.so.6")),
        "glibc (libc.so.6) is missing from the podman image"
    );
}

#[test]
fn final_stage_parser_reads_the_instructions() {
    let stage = final_stage(
        "FROM a AS build\nUSER 1\nFROM b\nCOPY --from=build /x /usr/local/bin/x\nUSER 2:2\nEXPOSE 80 53/udp\n\
         ENTRYPOINT [\"/usr/local/bin/x\"]\nCMD [\"run\"]\n",
    );
    assert_eq!(stage.user, "2:2");
    assert_eq!(stage.entrypoint, ["/usr/local/bin/x"]);
    assert_eq!(stage.cmd, ["run"]);
    assert_eq!(stage.exposed, ["80/tcp", "53/udp"]);
    assert_eq!(stage.copied_to, ["/usr/local/bin/x"]);
}
