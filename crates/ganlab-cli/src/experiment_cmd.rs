//! `ganlab experiment NAME`: the seed papers' experiments, each a function in
//! `ganlab::experiments`; this module maps the name to it and prints its table.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ganlab::error::GanError;
use ganlab::experiments::{gaussians25, js_toy};

use crate::{data_dir, default_dir, Overrides};

/// Arguments of `ganlab experiment`.
#[derive(Args, Debug)]
pub(crate) struct ExperimentArgs {
    /// Experiment name.
    pub name: String,
    /// A config instead of the built-in one: configs/gaussians25-diffusion.toml (a
    /// training config) for gaussians25, configs/refine-*.toml for refine-*.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (default: $GANLAB_DATA, else ./data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory (default: runs/experiment-<name>). Must be new or empty, except
    /// that ladiffgan-emoji, multi-attribute-emoji, limited-data, simgan-digits and
    /// text2image-emoji resume their own.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
    /// Seeds to run every arm at, e.g. 0,1,2 (gaussians25, translation-emoji,
    /// ladiffgan-emoji, multi-attribute-emoji, limited-data, simgan-digits,
    /// text2image-emoji; default: run.seed).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The experiments that do not take `--seeds` (each of the others trains every arm per seed).
const UNSEEDED: [&str; 4] = [
    "js-toy",
    "refine-gaussians25",
    "refine-mnist",
    "pix2pix-openmoji",
];

/// Refuses the flags in `given` (`--config`, and `--data` where the experiment reads no data
/// directory) for an experiment that takes its configs from configs/; `why` says which and
/// how to change them.
fn built_in_configs_only(given: &[&Option<PathBuf>], why: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        given.iter().all(|f| f.is_none()),
        GanError::Input(why.into())
    );
    Ok(())
}

/// The error for a name that is not an experiment.
fn unknown(name: &str) -> GanError {
    GanError::Input(format!(
        "unknown experiment {name:?}; available: {}",
        ganlab::experiments::NAMES.join(", ")
    ))
}

/// `--seeds` if given, else the one seed `default`.
fn seeds_or(seeds: Vec<u64>, default: u64) -> Vec<u64> {
    if seeds.is_empty() {
        vec![default]
    } else {
        seeds
    }
}

/// Runs the experiment `a.name`.
pub(crate) fn run(a: ExperimentArgs) -> anyhow::Result<()> {
    let ExperimentArgs {
        name,
        config,
        data,
        out,
        overrides,
        seeds,
        quiet,
    } = a;
    let dir = out.unwrap_or_else(|| default_dir(&format!("experiment-{name}")));
    anyhow::ensure!(
        seeds.is_empty() || !UNSEEDED.contains(&name.as_str()),
        GanError::Input(format!(
            "--seeds applies to {} only, not {name}",
            ganlab::experiments::NAMES
                .iter()
                .filter(|n| !UNSEEDED.contains(n))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    );
    if name.starts_with("refine-") {
        use ganlab::experiments::refine::{self as exp, RefineExperiment};
        let e = match &config {
            Some(p) => RefineExperiment::from_toml_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
                &p.display().to_string(),
            )?,
            None => RefineExperiment::built_in(&name).ok_or_else(|| unknown(&name))??,
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
            let seeds = seeds_or(seeds, base.run.seed);
            ganlab::io::create_output_dir(&dir)?;
            let rows = gaussians25::run(&base, &seeds, &dir, !quiet)?;
            println!("{}", gaussians25::table_markdown(&rows));
            println!("figure: {}", dir.join("figure.svg").display());
            Ok(())
        }
        "pix2pix-openmoji" => {
            let base = overrides.load(config.as_deref(), ganlab::experiments::pix2pix::built_in)?;
            ganlab::io::create_output_dir(&dir)?;
            let rows = ganlab::experiments::pix2pix::run(&base, &dir, &data_dir(data), !quiet)?;
            println!("{}", ganlab::experiments::pix2pix::table_markdown(&rows));
            println!(
                "grid (input | L1 | pix2pix | target): {}",
                dir.join("grid.png").display()
            );
            Ok(())
        }
        "translation-emoji" => {
            use ganlab::experiments::translation as exp;
            built_in_configs_only(
                &[&config, &data],
                "translation-emoji takes its configs from configs/{cyclegan,ugatit}-emoji.toml; change them with --set (e.g. --set ugatit.data.dir=...)",
            )?;
            let sets = overrides.set_and_steps();
            let arms = exp::with_overrides(exp::built_in()?, &sets)?;
            let seeds = seeds_or(seeds, overrides.seed.unwrap_or(arms[0].1.run.seed));
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
            built_in_configs_only(
                &[&config, &data],
                "ladiffgan-emoji takes its configs from configs/{autoencoder,ddpm,ugatit,ladiffgan}-emoji.toml; change them with --set (e.g. --set ugatit.data.dir=..., --set pretrain.run.steps=...)",
            )?;
            let sets = overrides.set_and_steps();
            let plan = exp::plan(&dir, &sets)?;
            let seeds = seeds_or(seeds, overrides.seed.unwrap_or(plan.arms[0].1.run.seed));
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
            built_in_configs_only(
                &[&config],
                "multi-attribute-emoji takes its configs from configs/{attribute-classifier,stargan,bridgegan}-emoji.toml; change them with --set (e.g. --set run.steps=..., --set classifier.run.steps=...)",
            )?;
            let mut sets = overrides.set_and_steps();
            if let Some(d) = &data {
                sets.push(format!("data.dir={:?}", d.join("emoji-people")));
            }
            let plan = exp::plan(&sets)?;
            let seeds = seeds_or(seeds, overrides.seed.unwrap_or(plan.arms[0].1.run.seed));
            let (judge, rows) = exp::run(&plan, &seeds, &dir, !quiet)?;
            let names = &plan.arms[1].1.bridgegan.data.attributes;
            println!("{}", exp::markdown(names, &judge, &rows));
            println!("results: {}", dir.join("results.md").display());
            Ok(())
        }
        "limited-data" => {
            use ganlab::experiments::limited_data as exp;
            built_in_configs_only(
                &[&config],
                "limited-data takes its configs from configs/fashion-{dcgan,sngan}-diffusion.toml; change them with --set (e.g. --set run.steps=..., --set experiment.subsets=[200,1000])",
            )?;
            let mut sets = overrides.set_and_steps();
            let data = data_dir(data);
            sets.push(format!("data.idx.dir={:?}", data.join("fashion-mnist")));
            let plan = exp::plan(&sets)?;
            let seeds = seeds_or(seeds, overrides.seed.unwrap_or(plan.arms[0].cfg.run.seed));
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
            built_in_configs_only(
                &[&config],
                "simgan-digits takes its config from configs/simgan-digits.toml; change it with --set (e.g. --set run.steps=..., --set experiment.classifier_steps=...)",
            )?;
            let mut sets = overrides.set_and_steps();
            if let Some(d) = &data {
                sets.push(format!(
                    "simgan.data.synthetic={:?}",
                    d.join("synth-digits")
                ));
                sets.push(format!("simgan.data.real={:?}", d.join("mnist")));
            }
            let plan = exp::plan(&sets)?;
            let seeds = seeds_or(seeds, overrides.seed.unwrap_or(plan.simgan.run.seed));
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
            built_in_configs_only(
                &[&config],
                "text2image-emoji takes its configs from configs/{text-encoder,gan-int-cls,stackgan-stage1,stackgan-stage2}-emoji.toml; change them with --set (encoder.KEY, stage1.KEY, stage2.KEY, gan_int_cls.*, stackgan.*, run.*)",
            )?;
            let mut sets = overrides.set_and_steps();
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
            let seeds = seeds_or(seeds, overrides.seed.unwrap_or(plan.gan_int_cls.run.seed));
            let device = ganlab::device::resolve_device(&plan.gan_int_cls.run.device)?;
            let ex = ganlab::metrics::eval::ExtractorKind::Inception.load(&data, device)?;
            // An existing directory of this experiment is resumed, stage by stage.
            let (bound, rows) = exp::run(&plan, &seeds, &dir, Some(ex.as_ref()), !quiet)?;
            println!("{}", exp::markdown(bound, &rows));
            println!(
                "grids and walks: samples.png and interpolation.png in each run directory under {}",
                dir.display()
            );
            Ok(())
        }
        "js-toy" => {
            built_in_configs_only(&[&config], "js-toy takes no --config")?;
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
        other => Err(unknown(other).into()),
    }
}
