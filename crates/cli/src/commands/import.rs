//! `lathe import gguf FILE --name NAME` and `lathe import hf DIR --name NAME`: a model made
//! elsewhere becomes a Lathe version, checked completely before anything is published.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use lathe_registry::{FileSource, Publishing, Repository};
use lathe_types::ModelRef;

use crate::Cli;

/// Import models made elsewhere.
#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// A Hugging Face folder: a causal language model (config.json naming LlamaForCausalLM,
    /// MistralForCausalLM or Qwen2ForCausalLM, *.safetensors in f32/f16/bf16, tokenizer.json,
    /// chat template, generation_config.json) or a sentence-transformers encoder
    /// (config.json, model.safetensors, tokenizer.json, 1_Pooling/config.json).
    ///
    /// Examples:
    ///   lathe import hf ../shared/models/tiny-llama-random --name tiny-llama
    ///   lathe import hf ../shared/models/all-MiniLM-L6-v2 --name minilm
    Hf {
        /// The folder.
        dir: PathBuf,
        /// Model name to publish under.
        #[arg(long, env = "LATHE_NAME")]
        name: String,
    },
    /// A GGUF file (llama.cpp's format) of a llama, mistral or qwen2 model with tensors in
    /// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K; copied into the
    /// version and memory-mapped when used.
    ///
    /// Example: lathe import gguf ../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf --name smollm2
    Gguf {
        /// The file.
        file: PathBuf,
        /// Model name to publish under.
        #[arg(long, env = "LATHE_NAME")]
        name: String,
    },
}

pub fn run(cli: &Cli, cmd: &ImportCommand) -> Result<()> {
    match cmd {
        ImportCommand::Hf { dir, name } if lathe_generation::import::is_causal_lm_folder(dir) => {
            import_language_model(cli, dir, true, name)
        }
        ImportCommand::Hf { dir, name } => import_embedding(cli, dir, name),
        ImportCommand::Gguf { file, name } => import_language_model(cli, file, false, name),
    }
}

fn import_embedding(cli: &Cli, dir: &Path, name: &str) -> Result<()> {
    ModelRef::validate_name(name)?;
    let (files, manifest) = lathe_embedding::import_hf(dir, name, &lathe_train::rfc3339_now())
        .with_context(|| format!("importing {}", dir.display()))?;
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let published = Repository::new(&cli.repo).publish(name, &refs, manifest)?;
    report(cli, dir, name, published)
}

fn import_language_model(cli: &Cli, source: &Path, hf: bool, name: &str) -> Result<()> {
    ModelRef::validate_name(name)?;
    let import = lathe_generation::import::prepare(source, hf, name, &lathe_train::rfc3339_now())
        .with_context(|| format!("importing {}", source.display()))?;
    let total: u64 = import.files.iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar =
        if !cli.json && std::io::stderr().is_terminal() { ProgressBar::new(total) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("copying [{bar:28}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let sources: Vec<(&str, FileSource)> =
        import.files.iter().map(|(n, p)| (n.as_str(), FileSource::Copy(p.as_path()))).collect();
    let spec = import.manifest.causal_lm().cloned().expect("a causal-lm manifest");
    let mut hooks = Publishing {
        progress: Box::new(|n| bar.set_position(n)),
        // What is published is what was checked: the copy opens and matches the source.
        check: Box::new(|dir: &Path| lathe_generation::import::check_copy(dir, &spec).map_err(|e| e.to_string())),
    };
    let published = Repository::new(&cli.repo).publish_from(name, &sources, import.manifest, &mut hooks)?;
    bar.finish_and_clear();
    report(cli, source, name, published)
}

fn report(cli: &Cli, source: &Path, name: &str, published: lathe_registry::Published) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::json!({ "name": name, "version": published.version, "path": published.path }));
    } else {
        println!("imported {} as {name}:{} at {}", source.display(), published.version, published.path.display());
    }
    Ok(())
}
