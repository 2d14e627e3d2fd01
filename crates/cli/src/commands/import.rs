//! `lathe import gguf FILE --name NAME`, `lathe import hf DIR --name NAME` and
//! `lathe import onnx FILE --name NAME`: a model made elsewhere becomes a Lathe version,
//! checked completely before anything is published.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use lathe_registry::{FileSource, Publishing};
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
    /// An ONNX graph exported from Keras (tf2onnx), PyTorch (torch.onnx.export) or scikit-learn
    /// (skl2onnx), served with tract. Checked before publishing: every operator supported, the
    /// default operator set 9 to 18, the graph typed and optimized for its declared shapes and
    /// run once; external data files beside it are copied into the version.
    ///
    /// Examples:
    ///   lathe import onnx mnist.onnx --name mnist-keras --class-names 0,1,2,3,4,5,6,7,8,9
    ///   lathe import onnx iris.onnx --name iris --class-names classes.txt --batching off
    Onnx {
        /// The .onnx file.
        file: PathBuf,
        /// Model name to publish under.
        #[arg(long, env = "LATHE_NAME")]
        name: String,
        /// Class names of a classifier in output order, `a,b,c` or a file with one per line;
        /// they label `:classify` and the V2 classification extension.
        #[arg(long, env = "LATHE_CLASS_NAMES")]
        class_names: Option<String>,
        /// Concatenate requests along the first dimension: `auto` when every input and output
        /// starts with the same symbolic dimension, `on` (an error otherwise) or `off`.
        #[arg(long, env = "LATHE_BATCHING", default_value = "auto", value_parser = ["auto", "on", "off"])]
        batching: String,
    },
}

pub fn run(cli: &Cli, cmd: &ImportCommand) -> Result<()> {
    match cmd {
        ImportCommand::Hf { dir, name } if lathe_generation::import::is_causal_lm_folder(dir) => {
            import_language_model(cli, dir, true, name)
        }
        ImportCommand::Hf { dir, name } => import_embedding(cli, dir, name),
        ImportCommand::Gguf { file, name } => import_language_model(cli, file, false, name),
        ImportCommand::Onnx { file, name, class_names, batching } => {
            let options = lathe_engine::ImportOptions {
                class_names: class_names.as_deref().map(read_class_names).transpose()?.unwrap_or_default(),
                batching: batching.parse().map_err(anyhow::Error::msg)?,
                created_at: lathe_train::rfc3339_now(),
            };
            let repo = cli.repository()?;
            let importer = crate::loaders::FileImporter;
            let (published, _) =
                lathe_server::model_upload::publish_import(&repo, &importer, "onnx", file, name, &options)
                    .map_err(|e| anyhow::anyhow!("importing {}: {}", file.display(), e.message))?;
            report(cli, file, name, published)
        }
    }
}

/// `a,b,c`, or the lines of a file when a file of that name exists.
fn read_class_names(arg: &str) -> Result<Vec<String>> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("reading class names from {arg}"))?
    } else {
        arg.replace(',', "\n")
    };
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

fn import_embedding(cli: &Cli, dir: &Path, name: &str) -> Result<()> {
    ModelRef::validate_name(name)?;
    let (files, manifest) = lathe_embedding::import_hf(dir, name, &lathe_train::rfc3339_now())
        .with_context(|| format!("importing {}", dir.display()))?;
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let published = cli.repository()?.publish(name, &refs, manifest)?;
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
    let published = cli.repository()?.publish_from(name, &sources, import.manifest, &mut hooks)?;
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
