//! `ganlab`: train GANs, sample from runs and reproduce the seed papers' experiments.
//! Exit codes: 0 success; 2 bad input or config (one line naming the problem); 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench_cmd;
mod data_cmd;
mod digits_cmd;
mod dist_cmd;
mod edit_cmd;
mod translate_cmd;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ganlab::error::GanError;
use ganlab::experiments::{gaussians25, js_toy};
use ganlab::progress::{Progress, ProgressBar, Silent};
use ganlab::run::Run;
use ganlab::train::{TrainConfig, Trainer};

#[derive(Parser, Debug)]
#[command(
    name = "ganlab",
    version,
    about = "GAN laboratory: Diffusion-GAN and classic GANs on libtorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a task (GAN, pix2pix, ...). Without CONFIG: Diffusion-GAN on the built-in
    /// 25-Gaussians set.
    Train {
        /// TOML config (see configs/); every field is optional.
        config: Option<PathBuf>,
        /// Run directory (default: runs/<run.name>, numbered if taken). Must be new or empty.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
        /// Override run.device: auto, cpu, cuda, cuda:N.
        #[arg(long)]
        device: Option<String>,
        /// Continue the run in DIR from its newest checkpoint (with --steps: a new budget).
        #[arg(long, conflicts_with_all = ["config", "out", "seed", "set"])]
        resume: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        dist: dist_cmd::DistArgs,
    },
    /// Print each network of a config (or of a run's config): layers, shapes, parameter counts.
    Describe(translate_cmd::DescribeArgs),
    /// Render paired SVGs to PNGs in the paired-folder layout (used by scripts/fetch-data).
    #[command(hide = true)]
    Rasterize(data_cmd::RasterizeArgs),
    /// Render synthetic digits from fonts in MNIST's layout (used by scripts/fetch-data).
    #[command(hide = true)]
    RenderDigits(digits_cmd::RenderDigitsArgs),
    /// Translate images with a trained translation run (pix2pix, cyclegan, ugatit, ladiffgan): one PNG per
    /// input; or edit them by attributes with a multi-attribute run (bridgegan: --set, --reference).
    Translate(translate_cmd::TranslateArgs),
    /// Draw samples from a trained run: samples.npy, plus a scatter plot (2-D) or PNGs in
    /// images/ and grid.png (images).
    Sample {
        /// Run directory.
        #[arg(long)]
        run: PathBuf,
        /// Number of samples.
        #[arg(long, default_value_t = 2500)]
        n: i64,
        /// Output directory (created; must be new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the latent codes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Class-conditional runs: all samples of this class (default: classes in turn).
        #[arg(long)]
        class: Option<i64>,
        /// Text-to-image runs (gan_int_cls): all samples of this caption.
        #[arg(long, conflicts_with = "class")]
        text: Option<String>,
    },
    /// Walk the latent space of a run: ROWS paths of STEPS codes between random endpoints
    /// (slerp): interpolation.png (one path per row) or interpolation.svg (2-D), and .npy.
    Interpolate {
        /// Run directory.
        #[arg(long)]
        run: PathBuf,
        /// Output directory (created; must be new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Number of paths.
        #[arg(long, default_value_t = 8)]
        rows: i64,
        /// Codes per path, endpoints included.
        #[arg(long, default_value_t = 10)]
        steps: i64,
        /// Seed of the endpoints.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Straight lines instead of slerp.
        #[arg(long)]
        linear: bool,
    },
    /// Improve a trained run by moving latent codes (Wasserstein gradient flow with KRR or
    /// KDE estimates, DOT, DDLS): refined samples, latents, a before/after figure, summary.json.
    Refine(RefineArgs),
    /// Compare two image sets: FID, KID, IS, precision/recall, density/coverage (docs/METRICS.md).
    Eval(EvalArgs),
    /// Time workloads in ganlab and in PyTorch (bench/pytorch_ref.py) in one sitting.
    Bench(BenchArgs),
    /// Reproduce a seed claim: gaussians25 (Fig. 5), js-toy (Fig. 2), refine-gaussians25 and
    /// refine-mnist (latent refinement, all methods at equal budget), pix2pix-openmoji
    /// (pix2pix vs an L1-only U-Net on line art → colour), translation-emoji (CycleGAN,
    /// U-GAT-IT and U-GAT-IT + Diffusion-GAN on Twitter ↔ Google emoji), ladiffgan-emoji
    /// (autoencoders → latent DDPMs → U-GAT-IT, + Diffusion-GAN, LaDiffGAN's two latent terms
    /// alone and together; resumable), multi-attribute-emoji (an attribute classifier, then
    /// StarGAN and label-/reference-based multi-attribute translation on emoji people: Tables
    /// 1–2; resumable), limited-data (Diffusion-GAN §4.3 and Table 8: DCGAN ± Diffusion-GAN on
    /// 200 / 1k / 5k Fashion-MNIST images, DCGAN and SNGAN ± Diffusion-GAN on all, FID of 5k
    /// samples against the test split; resumable), simgan-digits (SimGAN refines font-drawn
    /// digits toward real MNIST; digit classifiers trained on synthetic, refined and real
    /// digits scored on the real test split; resumable), text2image-emoji (text encoder, then
    /// GAN-INT-CLS, StackGAN Stage-I and Stage-I+II on emoji captions: R-precision and FID;
    /// resumable).
    Experiment {
        /// Experiment name.
        name: String,
        /// A config instead of the built-in one: configs/gaussians25-diffusion.toml (a
        /// training config) for gaussians25, configs/refine-*.toml for refine-*.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $GANLAB_DATA, else ./data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output directory (default: runs/experiment-<name>). Must be new or empty, except
        /// that ladiffgan-emoji, multi-attribute-emoji, limited-data, simgan-digits and
        /// text2image-emoji resume their own.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
        /// Seeds to run every arm at, e.g. 0,1,2 (gaussians25, translation-emoji,
        /// ladiffgan-emoji, multi-attribute-emoji, limited-data, simgan-digits,
        /// text2image-emoji; default: run.seed).
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<u64>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

/// Arguments of `ganlab refine` (defaults: docs/REFINE.md).
#[derive(Args, Debug)]
struct RefineArgs {
    /// Run directory (G and D from its newest checkpoint; EMA weights for G when kept).
    #[arg(long)]
    run: PathBuf,
    /// krr-wgf, kde, dot or ddls.
    #[arg(long, default_value = "krr-wgf")]
    method: String,
    /// Number of updates.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Step size ε.
    #[arg(long, default_value_t = 0.3)]
    step_size: f64,
    /// none, class:K (a mode of a 2-D set, or an MNIST CNN class), or
    /// inpaint:I[:top|left|centre] (test image I of the run's data; the named part known).
    #[arg(long, default_value = "none")]
    condition: String,
    /// Kernel features: d (D's penultimate layer), data, or mnist-cnn.
    #[arg(long, default_value = "d")]
    kernel: String,
    /// Number of particles.
    #[arg(long, default_value_t = 1000)]
    n: i64,
    /// Seed of the codes, real samples and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Weight of the data term (flows).
    #[arg(long)]
    eta_data: Option<f64>,
    /// Weight of the entropy term (flows).
    #[arg(long)]
    eta_entropy: Option<f64>,
    /// Weight of the discriminator term.
    #[arg(long)]
    eta_critic: Option<f64>,
    /// Weight of the condition term.
    #[arg(long)]
    eta_condition: Option<f64>,
    /// KRR regularisation λ, relative to the kernel matrix's largest eigenvalue.
    #[arg(long)]
    lambda: Option<f64>,
    /// Kernel bandwidth (0: median heuristic).
    #[arg(long)]
    bandwidth: Option<f64>,
    /// Mollifier standard deviation in data units (krr-wgf; 0: none).
    #[arg(long)]
    mollifier_std: Option<f64>,
    /// Mollifier samples (krr-wgf).
    #[arg(long)]
    mollifier_samples: Option<i64>,
    /// Real samples for the data term.
    #[arg(long)]
    n_real: Option<i64>,
    /// DDLS noise scale (0: no noise).
    #[arg(long)]
    langevin_noise: Option<f64>,
    /// σ of the inpainting observation model.
    #[arg(long, default_value_t = 0.1)]
    inpaint_sigma: f64,
    /// Output directory (default: runs/<run name>-refine-<method>). Must be new or empty.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data directory (default: $GANLAB_DATA, else ./data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print summary.json instead of the table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ganlab eval`.
#[derive(Args, Debug)]
struct EvalArgs {
    /// Real images: mnist[:train|:test], fashion-mnist[:test], a folder of PNG/JPEG images,
    /// an IDX directory[:split], or a float32 .npy [n, C, H, W] in [-1, 1].
    #[arg(long)]
    real: String,
    /// Generated images, same forms as --real, or a run directory (samples from its newest
    /// checkpoint, or DIR@STEP: from the kept checkpoint of that step; --n of them, default
    /// its eval_samples).
    #[arg(long)]
    fake: String,
    /// Comma-separated: fid, kid, is, pr (precision/recall, k = 3), dc (density/coverage, k = 5).
    #[arg(long, value_delimiter = ',', default_value = "fid,kid,pr,dc")]
    metrics: Vec<String>,
    /// Feature extractor: inception (FID Inception-v3) or mnist-cnn (ccexam, has logits for is).
    #[arg(long, default_value = "inception")]
    extractor: String,
    /// Use the first N images of each set (default: all).
    #[arg(long)]
    n: Option<i64>,
    /// Resize and centre-crop folder images to SIZE×SIZE (needed when their sizes differ).
    #[arg(long)]
    size: Option<i64>,
    /// KID subsets.
    #[arg(long, default_value_t = 100)]
    kid_subsets: usize,
    /// KID subset size (clipped to the smaller set).
    #[arg(long, default_value_t = 1000)]
    kid_subset_size: i64,
    /// Seed of KID's subsets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Data directory (default: $GANLAB_DATA, else ./data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Do not read or write the real-feature cache (<data>/.cache/features).
    #[arg(long)]
    no_cache: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `ganlab bench`.
#[derive(Args, Debug)]
struct BenchArgs {
    /// Comma-separated workloads (default: all of mlp_gan, mlp_diffusion_gan, sample_mlp,
    /// inception_features; the last needs scripts/fetch-data inception).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Untimed calls before timing (default: per workload).
    #[arg(long)]
    warmup: Option<usize>,
    /// Calls per timed block (default: per workload, about a second each).
    #[arg(long)]
    iters: Option<usize>,
    /// Timed blocks per process; the table shows the median over all blocks.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Rounds: each runs every workload once in ganlab and once in PyTorch, alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// libtorch intra-op threads on both sides (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: i64,
    /// Python with torch for the reference side (scripts/bench passes the set-up venv's).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/pytorch_ref.py")]
    reference: PathBuf,
    /// Also write the table as JSON here (must not exist).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one workload in this process and print its measurement.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

/// Config overrides shared by the commands that take a config.
#[derive(Args, Debug)]
struct Overrides {
    /// Override run.steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Override run.seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override any config field, e.g. --set run.batch_size=64 --set diffusion.enabled=false
    /// (repeatable; checked exactly as the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl Overrides {
    /// The `--set` list with --steps and --seed appended (later entries win).
    fn sets(&self) -> Vec<String> {
        let mut v = self.set.clone();
        if let Some(s) = self.steps {
            v.push(format!("run.steps={s}"));
        }
        if let Some(s) = self.seed {
            v.push(format!("run.seed={s}"));
        }
        v
    }

    /// The config in `path` (or `default`) with the overrides applied and validated.
    fn load(
        &self,
        path: Option<&Path>,
        default: impl FnOnce() -> ganlab::Result<TrainConfig>,
    ) -> anyhow::Result<TrainConfig> {
        Ok(match path {
            Some(p) => TrainConfig::load_with(p, &self.sets())?,
            None if self.sets().is_empty() => default()?,
            None => TrainConfig::from_toml_with(
                &default()?.to_toml(),
                Path::new("<built-in config>"),
                &self.sets(),
            )?,
        })
    }
}

fn main() -> ExitCode {
    ganlab::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let user = e
                .downcast_ref::<GanError>()
                .is_some_and(GanError::is_user_error);
            eprintln!("error: {e:#}");
            ExitCode::from(if user { 2 } else { 1 })
        }
    }
}

/// Prints a finished training run's summary; ranks other than 0 of a multi-process run
/// print nothing (rank 0 prints the run's).
fn train_summary(dir: &Path, s: &serde_json::Value) -> anyhow::Result<()> {
    if !ganlab::dist::is_main() {
        return Ok(());
    }
    print_summary(dir, s)
}

/// A free directory under runs/: runs/<name>, else runs/<name>-2, -3, ...
pub(crate) fn default_dir(name: &str) -> PathBuf {
    let base = Path::new("runs").join(name);
    if !base.exists() {
        return base;
    }
    (2..)
        .map(|i| Path::new("runs").join(format!("{name}-{i}")))
        .find(|p| !p.exists())
        .expect("unbounded")
}

fn progress(quiet: bool, label: &str) -> Box<dyn Progress> {
    if quiet {
        Box::new(Silent)
    } else {
        Box::new(ProgressBar::new(label))
    }
}

fn print_summary(dir: &Path, s: &serde_json::Value) -> anyhow::Result<()> {
    println!("run directory: {}", dir.display());
    println!("{}", serde_json::to_string_pretty(s)?);
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train {
            config,
            out,
            overrides,
            device,
            resume,
            quiet,
            dist,
        } => {
            if dist.launches() {
                // Workers get an explicit directory: a default one is numbered when taken,
                // and each worker would number it anew.
                let out = match (&resume, out) {
                    (None, None) => {
                        let cfg =
                            overrides.load(config.as_deref(), || Ok(TrainConfig::built_in()))?;
                        Some(default_dir(&cfg.run.name))
                    }
                    (_, o) => o,
                };
                let args = dist_cmd::worker_args(
                    config.as_ref(),
                    out.as_ref(),
                    resume.as_ref(),
                    (overrides.steps, overrides.seed, &overrides.set),
                    device.as_deref(),
                    quiet,
                );
                return dist_cmd::launch(&dist, &args);
            }
            let worker = dist_cmd::join_if_worker()?;
            let quiet = quiet || !ganlab::dist::is_main();
            if worker && resume.is_none() && out.is_none() {
                anyhow::bail!(GanError::config(
                    "--out",
                    "is needed in a multi-process run (WORLD_SIZE is set): every rank must name the same directory"
                ));
            }
            if let Some(dir) = resume {
                let mut t = Trainer::resume(&dir, overrides.steps, device.as_deref())?;
                if !quiet {
                    eprintln!(
                        "resuming {} at step {} of {}",
                        dir.display(),
                        t.step(),
                        t.config().run.steps
                    );
                }
                let s = t.run(progress(quiet, "train").as_mut())?;
                return train_summary(&dir, &s);
            }
            let mut ov = overrides;
            if let Some(d) = device {
                ov.set.push(format!("run.device={d:?}"));
            }
            let cfg = ov.load(config.as_deref(), || Ok(TrainConfig::built_in()))?;
            let dir = out.unwrap_or_else(|| default_dir(&cfg.run.name));
            let mut t = Trainer::new(cfg, &dir)?;
            if !quiet {
                eprintln!(
                    "training {} for {} steps into {}",
                    t.config().run.name,
                    t.config().run.steps,
                    dir.display()
                );
            }
            let s = t.run(progress(quiet, "train").as_mut())?;
            train_summary(&dir, &s)
        }
        Command::Sample {
            run,
            n,
            out,
            seed,
            class,
            text,
        } => {
            anyhow::ensure!(
                (1..=10_000_000).contains(&n),
                GanError::Input(format!("--n must be in [1, 10000000], got {n}"))
            );
            let r = Run::open(&run)?;
            let x = match (text, class) {
                (Some(caption), _) => {
                    let t = r.task().text_to_image().ok_or_else(|| {
                        GanError::config(
                            "--text",
                            format!("{} is not a text-to-image run", run.display()),
                        )
                    })?;
                    t.sample_text(&vec![caption.as_str(); n as usize], seed)?
                }
                (None, Some(k)) => r.generative()?.sample_class(n, seed, k)?,
                (None, None) => r.generative()?.sample(n, seed),
            };
            ganlab::io::create_output_dir(&out)?;
            ganlab::report::npy::write_f32(&out.join("samples.npy"), &x)?;
            if x.dim() == 2 && x.size()[1] == 2 {
                let svg = ganlab::tasks::gan::scatter_svg(
                    r.config(),
                    &x,
                    &format!("{} samples, step {}", n, r.step()),
                )?;
                std::fs::write(out.join("samples.svg"), svg)
                    .with_context(|| format!("writing {}", out.display()))?;
            } else if x.dim() == 4 {
                // One PNG per sample in images/ (an image-folder SPEC for `ganlab eval`) and
                // an 8-wide grid of the first 64.
                let x = x.to_device(tch::Device::Cpu);
                let images = out.join("images");
                std::fs::create_dir_all(&images)
                    .with_context(|| format!("creating {}", images.display()))?;
                for i in 0..n {
                    ganlab::data::write_png(&images.join(format!("{i:06}.png")), &x.get(i))?;
                }
                let g = ganlab::data::grid(&x.narrow(0, 0, n.min(64)), 8, 2)?;
                ganlab::data::write_png(&out.join("grid.png"), &g)?;
            }
            println!(
                "wrote {n} samples of {} (step {}) to {}",
                run.display(),
                r.step(),
                out.display()
            );
            Ok(())
        }
        Command::Interpolate {
            run,
            out,
            rows,
            steps,
            seed,
            linear,
        } => {
            for (flag, v) in [("--rows", rows), ("--steps", steps)] {
                anyhow::ensure!(
                    (2..=1000).contains(&v),
                    GanError::config(flag, format!("must be in [2, 1000], got {v}"))
                );
            }
            let r = Run::open(&run)?;
            let t = r.generative()?;
            ganlab::io::create_output_dir(&out)?;
            let ends = t.latent_codes(2 * rows, seed);
            let paths: Vec<tch::Tensor> = (0..rows)
                .map(|r| {
                    ganlab::models::latent_path(
                        &ends.get(2 * r),
                        &ends.get(2 * r + 1),
                        steps,
                        !linear,
                    )
                })
                .collect();
            let x = t
                .generate(&tch::Tensor::cat(&paths, 0), None)
                .to_device(tch::Device::Cpu);
            ganlab::report::npy::write_f32(&out.join("interpolation.npy"), &x)?;
            if x.dim() == 4 {
                let g = ganlab::data::grid(&x, steps, 2)?;
                ganlab::data::write_png(&out.join("interpolation.png"), &g)?;
            } else {
                let svg = ganlab::tasks::gan::scatter_svg(
                    r.config(),
                    &x,
                    &format!("{rows} latent paths of {steps} codes"),
                )?;
                std::fs::write(out.join("interpolation.svg"), svg)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            println!("wrote {rows} paths of {steps} codes to {}", out.display());
            Ok(())
        }
        Command::Eval(a) => eval(a),
        Command::Describe(a) => translate_cmd::describe(a),
        Command::Translate(a) => translate_cmd::translate(a),
        Command::Rasterize(a) => data_cmd::run(a),
        Command::RenderDigits(a) => digits_cmd::run(a),
        Command::Refine(a) => refine(a),
        Command::Bench(b) => {
            let workloads = if b.only.is_empty() {
                ganlab::bench::WORKLOADS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                b.only.clone()
            };
            for w in &workloads {
                if !ganlab::bench::WORKLOADS.contains(&w.as_str()) {
                    return Err(GanError::config(
                        "--only",
                        format!(
                            "unknown workload {w:?}; known: {}",
                            ganlab::bench::WORKLOADS.join(", ")
                        ),
                    )
                    .into());
                }
            }
            let o = bench_cmd::BenchOptions {
                workloads,
                warmup: b.warmup,
                iters: b.iters,
                repeats: b.repeats.max(1),
                rounds: b.rounds.max(1),
                threads: b.threads,
                python: b.python,
                reference: b.reference,
                json: b.json,
            };
            match &b.worker {
                Some(w) => bench_cmd::worker(w, &o),
                None => bench_cmd::run(&o),
            }
        }
        Command::Experiment {
            name,
            config,
            data,
            out,
            overrides,
            seeds,
            quiet,
        } => {
            let dir = out.unwrap_or_else(|| default_dir(&format!("experiment-{name}")));
            anyhow::ensure!(
                seeds.is_empty()
                    || [
                        "gaussians25",
                        "translation-emoji",
                        "ladiffgan-emoji",
                        "multi-attribute-emoji",
                        "limited-data",
                        "simgan-digits",
                        "text2image-emoji"
                    ]
                    .contains(&name.as_str()),
                GanError::Input(format!(
                    "--seeds applies to gaussians25, translation-emoji, ladiffgan-emoji, multi-attribute-emoji, limited-data, simgan-digits and text2image-emoji only, not {name}"
                ))
            );
            if name.starts_with("refine-") {
                use ganlab::experiments::refine::{self as exp, RefineExperiment};
                let e = match &config {
                    Some(p) => RefineExperiment::from_toml_str(
                        &std::fs::read_to_string(p)
                            .with_context(|| format!("reading {}", p.display()))?,
                        &p.display().to_string(),
                    )?,
                    None => RefineExperiment::built_in(&name).ok_or_else(|| {
                        GanError::Input(format!(
                            "unknown experiment {name:?}; available: {}",
                            ganlab::experiments::NAMES.join(", ")
                        ))
                    })??,
                };
                anyhow::ensure!(
                    overrides.sets().is_empty(),
                    GanError::Input(
                        "refine experiments take steps and seed from their config (no --steps, --seed or --set)".into()
                    )
                );
                let rows = exp::run(&e, &dir, &data_dir(data), quiet)?;
                println!("{}", exp::table_markdown(&rows));
                println!("results: {}", dir.join("results.md").display());
                return Ok(());
            }
            match name.as_str() {
                "gaussians25" => {
                    let base = overrides.load(config.as_deref(), gaussians25::built_in)?;
                    let seeds = if seeds.is_empty() {
                        vec![base.run.seed]
                    } else {
                        seeds
                    };
                    ganlab::io::create_output_dir(&dir)?;
                    let rows = gaussians25::run(&base, &seeds, &dir, !quiet)?;
                    println!("{}", gaussians25::table_markdown(&rows));
                    println!("figure: {}", dir.join("figure.svg").display());
                    Ok(())
                }
                "pix2pix-openmoji" => {
                    let base = overrides
                        .load(config.as_deref(), ganlab::experiments::pix2pix::built_in)?;
                    ganlab::io::create_output_dir(&dir)?;
                    let rows =
                        ganlab::experiments::pix2pix::run(&base, &dir, &data_dir(data), !quiet)?;
                    println!("{}", ganlab::experiments::pix2pix::table_markdown(&rows));
                    println!(
                        "grid (input | L1 | pix2pix | target): {}",
                        dir.join("grid.png").display()
                    );
                    Ok(())
                }
                "translation-emoji" => {
                    use ganlab::experiments::translation as exp;
                    anyhow::ensure!(
                        config.is_none() && data.is_none(),
                        GanError::Input(
                            "translation-emoji takes its configs from configs/{cyclegan,ugatit}-emoji.toml; change them with --set (e.g. --set ugatit.data.dir=...)".into()
                        )
                    );
                    let mut sets = overrides.set.clone();
                    if let Some(s) = overrides.steps {
                        sets.push(format!("run.steps={s}"));
                    }
                    let arms = exp::with_overrides(exp::built_in()?, &sets)?;
                    let seeds = if seeds.is_empty() {
                        vec![overrides.seed.unwrap_or(arms[0].1.run.seed)]
                    } else {
                        seeds
                    };
                    ganlab::io::create_output_dir(&dir)?;
                    let rows = exp::run(&arms, &seeds, &dir, !quiet)?;
                    println!("{}", exp::table_markdown(&rows));
                    println!(
                        "grids (input | CycleGAN | U-GAT-IT | U-GAT-IT + Diffusion-GAN): {}, {}",
                        dir.join("grid_a2b.png").display(),
                        dir.join("grid_b2a.png").display()
                    );
                    Ok(())
                }
                "ladiffgan-emoji" => {
                    use ganlab::experiments::ladiffgan as exp;
                    anyhow::ensure!(
                        config.is_none() && data.is_none(),
                        GanError::Input(
                            "ladiffgan-emoji takes its configs from configs/{autoencoder,ddpm,ugatit,ladiffgan}-emoji.toml; change them with --set (e.g. --set ugatit.data.dir=..., --set pretrain.run.steps=...)".into()
                        )
                    );
                    let mut sets = overrides.set.clone();
                    if let Some(s) = overrides.steps {
                        sets.push(format!("run.steps={s}"));
                    }
                    let plan = exp::plan(&dir, &sets)?;
                    let seeds = if seeds.is_empty() {
                        vec![overrides.seed.unwrap_or(plan.arms[0].1.run.seed)]
                    } else {
                        seeds
                    };
                    // An existing directory of this experiment is resumed, stage by stage.
                    let (stages, rows) = exp::run(&plan, &seeds, &dir, !quiet)?;
                    println!("{}", exp::markdown(&stages, &rows));
                    println!(
                        "grids (input | U-GAT-IT | + Diffusion-GAN | LaDiffGAN (a) | (b) | (a + b)): {}, {}",
                        dir.join("grid_a2b.png").display(),
                        dir.join("grid_b2a.png").display()
                    );
                    Ok(())
                }
                "multi-attribute-emoji" => {
                    use ganlab::experiments::multi_attribute as exp;
                    anyhow::ensure!(
                        config.is_none(),
                        GanError::Input(
                            "multi-attribute-emoji takes its configs from configs/{attribute-classifier,stargan,bridgegan}-emoji.toml; change them with --set (e.g. --set run.steps=..., --set classifier.run.steps=...)".into()
                        )
                    );
                    let mut sets = overrides.set.clone();
                    if let Some(s) = overrides.steps {
                        sets.push(format!("run.steps={s}"));
                    }
                    if let Some(d) = &data {
                        sets.push(format!("data.dir={:?}", d.join("emoji-people")));
                    }
                    let plan = exp::plan(&sets)?;
                    let seeds = if seeds.is_empty() {
                        vec![overrides.seed.unwrap_or(plan.arms[0].1.run.seed)]
                    } else {
                        seeds
                    };
                    let (judge, rows) = exp::run(&plan, &seeds, &dir, !quiet)?;
                    let names = &plan.arms[1].1.bridgegan.data.attributes;
                    println!("{}", exp::markdown(names, &judge, &rows));
                    println!("results: {}", dir.join("results.md").display());
                    Ok(())
                }
                "limited-data" => {
                    use ganlab::experiments::limited_data as exp;
                    anyhow::ensure!(
                        config.is_none(),
                        GanError::Input(
                            "limited-data takes its configs from configs/fashion-{dcgan,sngan}-diffusion.toml; change them with --set (e.g. --set run.steps=..., --set experiment.subsets=[200,1000])".into()
                        )
                    );
                    let mut sets = overrides.set.clone();
                    if let Some(s) = overrides.steps {
                        sets.push(format!("run.steps={s}"));
                    }
                    let data = data_dir(data);
                    sets.push(format!("data.idx.dir={:?}", data.join("fashion-mnist")));
                    let plan = exp::plan(&sets)?;
                    let seeds = if seeds.is_empty() {
                        vec![overrides.seed.unwrap_or(plan.arms[0].cfg.run.seed)]
                    } else {
                        seeds
                    };
                    let device = ganlab::device::resolve_device(&plan.arms[0].cfg.run.device)?;
                    let ex = ganlab::metrics::eval::ExtractorKind::Inception.load(&data, device)?;
                    // An existing directory of this experiment is resumed, run by run.
                    let rows = exp::run(&plan, &seeds, &dir, Some(ex.as_ref()), !quiet)?;
                    println!("{}", exp::markdown(&rows));
                    println!("curves: {}", dir.join("curves.svg").display());
                    Ok(())
                }
                "simgan-digits" => {
                    use ganlab::experiments::simgan_digits as exp;
                    anyhow::ensure!(
                        config.is_none(),
                        GanError::Input(
                            "simgan-digits takes its config from configs/simgan-digits.toml; change it with --set (e.g. --set run.steps=..., --set experiment.classifier_steps=...)".into()
                        )
                    );
                    let mut sets = overrides.set.clone();
                    if let Some(s) = overrides.steps {
                        sets.push(format!("run.steps={s}"));
                    }
                    if let Some(d) = &data {
                        sets.push(format!(
                            "simgan.data.synthetic={:?}",
                            d.join("synth-digits")
                        ));
                        sets.push(format!("simgan.data.real={:?}", d.join("mnist")));
                    }
                    let plan = exp::plan(&sets)?;
                    let seeds = if seeds.is_empty() {
                        vec![overrides.seed.unwrap_or(plan.simgan.run.seed)]
                    } else {
                        seeds
                    };
                    // An existing directory of this experiment is resumed.
                    let rows = exp::run(&plan, &seeds, &dir, !quiet)?;
                    println!("{}", exp::markdown(&rows));
                    for s in &seeds {
                        println!(
                            "grid (synthetic | refined | real): {}",
                            exp::grid_path(&dir, *s).display()
                        );
                    }
                    Ok(())
                }
                "text2image-emoji" => {
                    use ganlab::experiments::text2image as exp;
                    anyhow::ensure!(
                        config.is_none(),
                        GanError::Input(
                            "text2image-emoji takes its configs from configs/{text-encoder,gan-int-cls,stackgan-stage1,stackgan-stage2}-emoji.toml; change them with --set (encoder.KEY, stage1.KEY, stage2.KEY, gan_int_cls.*, stackgan.*, run.*)".into()
                        )
                    );
                    let mut sets = overrides.set.clone();
                    if let Some(s) = overrides.steps {
                        sets.push(format!("run.steps={s}"));
                    }
                    let data = data_dir(data);
                    let (images, captions) = (
                        data.join("openmoji"),
                        data.join("emoji-captions/captions.tsv"),
                    );
                    for section in ["encoder.text_encoder", "gan_int_cls", "stackgan"] {
                        sets.push(format!("{section}.data.dir={images:?}"));
                        sets.push(format!("{section}.data.captions={captions:?}"));
                    }
                    let plan = exp::plan(&sets)?;
                    let seeds = if seeds.is_empty() {
                        vec![overrides.seed.unwrap_or(plan.gan_int_cls.run.seed)]
                    } else {
                        seeds
                    };
                    let device = ganlab::device::resolve_device(&plan.gan_int_cls.run.device)?;
                    let ex = ganlab::metrics::eval::ExtractorKind::Inception.load(&data, device)?;
                    // An existing directory of this experiment is resumed, stage by stage.
                    let (bound, rows) = exp::run(&plan, &seeds, &dir, Some(ex.as_ref()), !quiet)?;
                    println!("{}", exp::markdown(bound, &rows));
                    println!("grids and walks: samples.png and interpolation.png in each run directory under {}", dir.display());
                    Ok(())
                }
                "js-toy" => {
                    anyhow::ensure!(
                        config.is_none(),
                        GanError::Input("js-toy takes no --config".into())
                    );
                    ganlab::io::create_output_dir(&dir)?;
                    let r = js_toy::run(&js_toy::JsToyConfig::default(), &dir)?;
                    println!(
                        "theta grid: {} points in [-1, 1]; integration error estimate {:.2e} nats",
                        r.theta.len(),
                        r.integration_error
                    );
                    for c in &r.curves {
                        let at = |th: f64| {
                            r.theta
                                .iter()
                                .position(|x| (*x - th).abs() < 1e-9)
                                .map(|i| c.js[i])
                                .unwrap_or(f64::NAN)
                        };
                        println!(
                            "t = {:>4}: JS(θ=0.1) = {:.4}  JS(θ=0.5) = {:.4}  JS(θ=1) = {:.4}",
                            c.t,
                            at(0.1),
                            at(0.5),
                            at(1.0)
                        );
                    }
                    println!("figure: {}", dir.join("js_toy.svg").display());
                    Ok(())
                }
                other => Err(GanError::Input(format!(
                    "unknown experiment {other:?}; available: {}",
                    ganlab::experiments::NAMES.join(", ")
                ))
                .into()),
            }
        }
    }
}

/// The data directory: the flag, else $GANLAB_DATA, else ./data.
fn data_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("GANLAB_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"))
}

fn refine(a: RefineArgs) -> anyhow::Result<()> {
    use ganlab::refine::run::{refine_run, write_outputs, KernelSpace, RunOptions};
    use ganlab::refine::{Condition, Method, RefineConfig};
    let mut cfg = RefineConfig {
        method: Method::parse(&a.method).map_err(|_| {
            GanError::config(
                "--method",
                format!(
                    "must be one of {}, got {:?}",
                    Method::NAMES.join(", "),
                    a.method
                ),
            )
        })?,
        steps: a.steps,
        step_size: a.step_size,
        ..Default::default()
    };
    let set = |dst: &mut f64, v: Option<f64>| {
        if let Some(v) = v {
            *dst = v;
        }
    };
    set(&mut cfg.eta_data, a.eta_data);
    set(&mut cfg.eta_entropy, a.eta_entropy);
    set(&mut cfg.eta_critic, a.eta_critic);
    set(&mut cfg.eta_condition, a.eta_condition);
    set(&mut cfg.lambda, a.lambda);
    set(&mut cfg.bandwidth, a.bandwidth);
    set(&mut cfg.mollifier_std, a.mollifier_std);
    set(&mut cfg.langevin_noise, a.langevin_noise);
    if let Some(m) = a.mollifier_samples {
        cfg.mollifier_samples = m;
    }
    if let Some(m) = a.n_real {
        cfg.n_real = m;
    }
    cfg.validate()?;
    let o = RunOptions {
        refine: cfg,
        n: a.n,
        seed: a.seed,
        condition: Condition::parse(&a.condition)?,
        inpaint_sigma: a.inpaint_sigma,
        kernel: KernelSpace::parse(&a.kernel)?,
        data_dir: data_dir(a.data),
    };
    let t = Run::open(&a.run)?;
    let out = a.out.unwrap_or_else(|| {
        default_dir(&format!(
            "{}-refine-{}",
            t.config().run.name,
            o.refine.method.name()
        ))
    });
    // Refuse a used output directory before spending time (creating nothing).
    ganlab::io::check_output_dir(&out)?;
    let r = refine_run(&t, &o)?;
    write_outputs(&out, &r, &t)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r.report)?);
        return Ok(());
    }
    let rows = [ganlab::experiments::refine::Row {
        method: o.refine.method.name().into(),
        step_size: o.refine.step_size,
        steps: o.refine.steps,
        before: r.report.before.clone(),
        after: r.report.after.clone(),
        seconds: r.report.seconds,
    }];
    println!("{}", ganlab::experiments::refine::table_markdown(&rows));
    println!("wrote {} refined samples to {}", o.n, out.display());
    Ok(())
}

fn eval(a: EvalArgs) -> anyhow::Result<()> {
    use ganlab::metrics::eval::{evaluate, EvalOptions, ExtractorKind, ImageSpec};
    let data = data_dir(a.data);
    let device = ganlab::device::resolve_device(&a.device)?;
    let kind = ExtractorKind::parse(&a.extractor)?;
    let real = ImageSpec::parse(&a.real)?.load(&data, a.n, a.size)?;
    let fake = ImageSpec::parse(&a.fake)?.load(&data, a.n, a.size)?;
    let ex = kind.load(&data, device)?;
    let opts = EvalOptions {
        metrics: a.metrics,
        kid_subsets: a.kid_subsets,
        kid_subset_size: a.kid_subset_size,
        is_splits: 10,
        seed: a.seed,
        cache_dir: (!a.no_cache).then(|| data.join(".cache/features")),
    };
    let mut bar = progress(a.quiet || a.json, "features");
    let r = evaluate(ex.as_ref(), &real, &fake, &opts, bar.as_mut())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "extractor {}  real {}  fake {}  ({:.1} s extracting, {:.1} images/s{})",
        r.extractor,
        r.n_real,
        r.n_fake,
        r.extract_seconds,
        r.images_per_second,
        if r.real_cached {
            ", real features cached"
        } else {
            ""
        }
    );
    if let Some(v) = r.fid {
        println!("FID        {v:.4}");
    }
    if let Some(k) = r.kid {
        println!(
            "KID        {:.6} ± {:.6}  ({} subsets of {})",
            k.mean,
            k.std,
            opts.kid_subsets,
            r.kid_subset_size.unwrap_or(0)
        );
    }
    if let Some(s) = r.inception_score {
        println!("IS         {:.4} ± {:.4}  (10 splits)", s.mean, s.std);
    }
    if let (Some(p), Some(rc)) = (r.precision, r.recall) {
        println!("precision  {p:.4}   recall   {rc:.4}  (k = 3)");
    }
    if let (Some(d), Some(c)) = (r.density, r.coverage) {
        println!("density    {d:.4}   coverage {c:.4}  (k = 5)");
    }
    Ok(())
}
