//! Fetching MNIST from the public mirrors, verified against the published MD5 digests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};

/// Mirrors tried in order.
const MIRRORS: [&str; 2] =
    ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"];

/// The four files and their MD5 digests as published with the data set.
const FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
];

/// Makes sure `dir` holds MNIST, downloading missing files; returns `dir`.
pub fn ensure_mnist(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    for (file, md5) in FILES {
        let target = dir.join(file);
        if target.is_file() {
            continue;
        }
        let mut errors = Vec::new();
        let mut done = false;
        for mirror in MIRRORS {
            let url = format!("{mirror}{file}");
            eprintln!("downloading {url}");
            match fetch(&agent, &url) {
                Ok(bytes) if hex::encode(Md5::digest(&bytes)) == md5 => {
                    lathe_formats::atomic::write_atomic(&target, &bytes)
                        .with_context(|| format!("writing {}", target.display()))?;
                    done = true;
                    break;
                }
                Ok(bytes) => {
                    errors.push(format!("{url}: checksum mismatch (md5 {})", hex::encode(Md5::digest(&bytes))))
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        if !done {
            bail!(
                "could not download MNIST ({}); if this machine is offline, pass --data DIR with the four IDX files",
                errors.join("; ")
            );
        }
    }
    Ok(dir.to_path_buf())
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>> {
    let mut response = agent.get(url).call()?;
    Ok(response.body_mut().with_config().limit(64 << 20).read_to_vec()?)
}
