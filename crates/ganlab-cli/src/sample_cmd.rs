//! `ganlab sample` and `ganlab interpolate`: draws from a trained generative run.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ganlab::error::GanError;
use ganlab::run::Run;

/// Arguments of `ganlab sample`.
#[derive(Args, Debug)]
pub(crate) struct SampleArgs {
    /// Run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 2500)]
    pub n: i64,
    /// Output directory (created; must be new or empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the latent codes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Class-conditional runs: all samples of this class (default: classes in turn).
    #[arg(long)]
    pub class: Option<i64>,
    /// Text-to-image runs (gan_int_cls, stackgan): all samples of this caption.
    #[arg(long, conflicts_with = "class")]
    pub text: Option<String>,
}

/// Arguments of `ganlab interpolate`.
#[derive(Args, Debug)]
pub(crate) struct InterpolateArgs {
    /// Run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Output directory (created; must be new or empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of paths.
    #[arg(long, default_value_t = 8)]
    pub rows: i64,
    /// Codes per path, endpoints included.
    #[arg(long, default_value_t = 10)]
    pub steps: i64,
    /// Seed of the endpoints.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Straight lines instead of slerp.
    #[arg(long)]
    pub linear: bool,
}

/// Runs `ganlab sample`.
pub(crate) fn sample(a: SampleArgs) -> anyhow::Result<()> {
    let SampleArgs {
        run,
        n,
        out,
        seed,
        class,
        text,
    } = a;
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

/// Runs `ganlab interpolate`.
pub(crate) fn interpolate(a: InterpolateArgs) -> anyhow::Result<()> {
    let InterpolateArgs {
        run,
        out,
        rows,
        steps,
        seed,
        linear,
    } = a;
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
            ganlab::models::latent_path(&ends.get(2 * r), &ends.get(2 * r + 1), steps, !linear)
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
