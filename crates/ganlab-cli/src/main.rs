//! `ganlab`: train GANs, sample from runs and reproduce the seed papers' experiments.
//! Exit codes: 0 success; 2 bad input or config (one line naming the problem); 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench_cmd;
mod data_cmd;
mod digits_cmd;
mod dist_cmd;
mod edit_cmd;
mod experiment_cmd;
mod sample_cmd;
mod translate_cmd;

use clap::{Args, Parser, Subcommand};
use ganlab::error::GanError;
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
    Sample(sample_cmd::SampleArgs),
    /// Walk the latent space of a run: ROWS paths of STEPS codes between random endpoints
    /// (slerp): interpolation.png (one path per row) or interpolation.svg (2-D), and .npy.
    Interpolate(sample_cmd::InterpolateArgs),
    /// Improve a trained run by moving latent codes (Wasserstein gradient flow with KRR or
    /// KDE estimates, DOT, DDLS): refined samples, latents, a before/after figure, summary.json.
    Refine(RefineArgs),
    /// Compare two image sets: FID, KID, IS, precision/recall, density/coverage (docs/METRICS.md).
    Eval(EvalArgs),
    /// Time workloads in ganlab and in PyTorch (bench/pytorch_ref.py) in one sitting.
    Bench(bench_cmd::BenchArgs),
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
    Experiment(experiment_cmd::ExperimentArgs),
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
    /// The `--set` list with --steps appended as run.steps (later entries win). The
    /// multi-seed experiments take this: their seeds come from `--seeds` or `--seed`.
    fn set_and_steps(&self) -> Vec<String> {
        let mut v = self.set.clone();
        v.extend(self.steps.map(|s| format!("run.steps={s}")));
        v
    }

    /// The `--set` list with --steps and --seed appended (later entries win).
    fn sets(&self) -> Vec<String> {
        let mut v = self.set_and_steps();
        v.extend(self.seed.map(|s| format!("run.seed={s}")));
        v
    }

    /// The config in `path` (or `default`) with the overrides applied and validated.
    fn load(
        &self,
        path: Option<&Path>,
        default: impl FnOnce() -> ganlab::Result<TrainConfig>,
    ) -> anyhow::Result<TrainConfig> {
        let sets = self.sets();
        Ok(match path {
            Some(p) => TrainConfig::load_with(p, &sets)?,
            None if sets.is_empty() => default()?,
            None => TrainConfig::from_toml_with(
                &default()?.to_toml(),
                Path::new("<built-in config>"),
                &sets,
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
        Command::Sample(a) => sample_cmd::sample(a),
        Command::Interpolate(a) => sample_cmd::interpolate(a),
        Command::Eval(a) => eval(a),
        Command::Describe(a) => translate_cmd::describe(a),
        Command::Translate(a) => translate_cmd::translate(a),
        Command::Rasterize(a) => data_cmd::run(a),
        Command::RenderDigits(a) => digits_cmd::run(a),
        Command::Refine(a) => refine(a),
        Command::Bench(b) => bench_cmd::command(b),
        Command::Experiment(a) => experiment_cmd::run(a),
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
