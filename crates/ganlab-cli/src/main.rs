//! `ganlab`: train GANs, sample from runs and reproduce the seed papers' experiments.
//! Exit codes: 0 success; 2 bad input or config (one line naming the problem); 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench_cmd;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ganlab::error::GanError;
use ganlab::experiments::{gaussians25, js_toy};
use ganlab::train::{Progress, ProgressBar, Silent, TrainConfig, Trainer};

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
    /// Train a GAN. Without CONFIG: Diffusion-GAN on the built-in 25-Gaussians set.
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
        #[arg(long, conflicts_with_all = ["config", "out", "seed"])]
        resume: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Draw samples from a trained run (2-D: samples.npy and a scatter plot).
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
    },
    /// Time workloads in ganlab and in PyTorch (bench/pytorch_ref.py) in one sitting.
    Bench(BenchArgs),
    /// Reproduce a seed claim: gaussians25 (Fig. 5), js-toy (Fig. 2).
    Experiment {
        /// Experiment name.
        name: String,
        /// Output directory (default: runs/experiment-<name>). Must be new or empty.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

/// Arguments of `ganlab bench`.
#[derive(Args, Debug)]
struct BenchArgs {
    /// Comma-separated workloads (default: all of mlp_gan, mlp_diffusion_gan, sample_mlp).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Untimed calls before timing.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
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

/// Config overrides shared by `train` and `experiment`.
#[derive(Args, Debug)]
struct Overrides {
    /// Override run.steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Override run.seed.
    #[arg(long)]
    seed: Option<u64>,
}

impl Overrides {
    /// Writes the given overrides into `cfg` (validate afterwards).
    fn apply(&self, cfg: &mut TrainConfig) {
        if let Some(s) = self.steps {
            cfg.run.steps = s;
        }
        if let Some(s) = self.seed {
            cfg.run.seed = s;
        }
    }
}

fn main() -> ExitCode {
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

/// A free directory under runs/: runs/<name>, else runs/<name>-2, -3, ...
fn default_dir(name: &str) -> PathBuf {
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

fn print_summary(dir: &Path, s: &ganlab::train::Summary) -> anyhow::Result<()> {
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
        } => {
            if let Some(dir) = resume {
                let mut t = Trainer::resume(&dir, overrides.steps)?;
                if let Some(d) = device {
                    anyhow::ensure!(d == t.config().run.device, GanError::Input(format!("--device {d} differs from the run's device {}; resume on the same device", t.config().run.device)));
                }
                eprintln!(
                    "resuming {} at step {} of {}",
                    dir.display(),
                    t.step(),
                    t.config().run.steps
                );
                let s = t.run(progress(quiet, "train").as_mut())?;
                return print_summary(&dir, &s);
            }
            let mut cfg = match &config {
                Some(p) => TrainConfig::load(p)?,
                None => TrainConfig::default(),
            };
            overrides.apply(&mut cfg);
            if let Some(d) = device {
                cfg.run.device = d;
            }
            // Trainer::new validates the overridden config before creating anything.
            let dir = out.unwrap_or_else(|| default_dir(&cfg.run.name));
            let mut t = Trainer::new(cfg, &dir)?;
            eprintln!(
                "training {} for {} steps into {}",
                t.config().run.name,
                t.config().run.steps,
                dir.display()
            );
            let s = t.run(progress(quiet, "train").as_mut())?;
            print_summary(&dir, &s)
        }
        Command::Sample { run, n, out, seed } => {
            anyhow::ensure!(
                (1..=10_000_000).contains(&n),
                GanError::Input(format!("--n must be in [1, 10000000], got {n}"))
            );
            let t = Trainer::open(&run)?;
            ganlab::train::create_output_dir(&out)?;
            let x = t.sample(n, seed);
            ganlab::report::npy::write_f32(&out.join("samples.npy"), &x)?;
            if x.size().get(1) == Some(&2) {
                let svg = t.scatter_svg(&x, &format!("{} samples, step {}", n, t.step()))?;
                std::fs::write(out.join("samples.svg"), svg)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            println!(
                "wrote {n} samples of {} (step {}) to {}",
                run.display(),
                t.step(),
                out.display()
            );
            Ok(())
        }
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
            out,
            overrides,
            quiet,
        } => {
            let dir = out.unwrap_or_else(|| default_dir(&format!("experiment-{name}")));
            match name.as_str() {
                "gaussians25" => {
                    let mut base = TrainConfig::default();
                    overrides.apply(&mut base);
                    base.validate()?;
                    ganlab::train::create_output_dir(&dir)?;
                    let rows = gaussians25::run(&base, &dir, !quiet)?;
                    println!("{}", gaussians25::table_markdown(&rows));
                    println!("figure: {}", dir.join("figure.svg").display());
                    Ok(())
                }
                "js-toy" => {
                    ganlab::train::create_output_dir(&dir)?;
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
