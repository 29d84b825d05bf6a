//! `ganlab describe` (each network's layers and parameter counts, from any config or run)
//! and `ganlab translate` (a translation run applied to image files).

use std::path::{Path, PathBuf};

use clap::Args;
use ganlab::data::folder::{image_files, load_image, resize_crop, to_channels};
use ganlab::error::GanError;
use ganlab::run::Run;
use ganlab::tasks::Mode;
use ganlab::train::TrainConfig;

/// Arguments of `ganlab describe`.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// A TOML config, or a run directory (its config.toml).
    config: PathBuf,
    /// Override config fields (repeatable), as for `train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also list every layer (default: one line per network).
    #[arg(long)]
    layers: bool,
}

/// Arguments of `ganlab translate`.
#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// Run directory of a translation task (pix2pix, cyclegan, ugatit, ladiffgan) or of a
    /// multi-attribute task (bridgegan).
    #[arg(long)]
    run: PathBuf,
    /// An image file (PNG/JPEG) or a folder of them.
    #[arg(long)]
    input: PathBuf,
    /// Output directory (created; must be new or empty): one PNG per input, same name.
    #[arg(long)]
    out: PathBuf,
    /// Direction (a2b or b2a; default: the run's first, a2b for unpaired runs).
    #[arg(long)]
    direction: Option<String>,
    /// Seed of the generator's noise (pix2pix: dropout, as at test time in the paper;
    /// attribute runs: the style noise R).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Attribute runs: target attributes, e.g. `Man=1,Skin_Tone_3=1` (repeatable: one grid
    /// row per target); the source's attributes are read by the model's classifier.
    #[arg(long = "set", value_name = "ATTR=0|1,...")]
    set: Vec<String>,
    /// Attribute runs: reference image(s) whose style the target attributes take (file or
    /// folder); without --set the target is each reference's own attributes.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Attribute runs: mix of label-based (1) and reference-based (0) style codes (default:
    /// 0 with --reference, else 1); several values (e.g. 0,0.25,0.5,0.75,1) give one grid
    /// row per value, an interpolation walk.
    #[arg(long, value_delimiter = ',')]
    alpha: Vec<f64>,
    /// Attribute runs: label-based samples per input and target (different noise R).
    #[arg(long, default_value_t = 1)]
    samples: i64,
}

/// `ganlab describe`.
pub fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let path = if a.config.is_dir() {
        a.config.join("config.toml")
    } else {
        a.config.clone()
    };
    let mut sets = a.set.clone();
    // Describing needs no accelerator.
    sets.push("run.device=\"cpu\"".into());
    let cfg = TrainConfig::load_with(&path, &sets)?;
    let task = ganlab::tasks::build(&cfg, Mode::Inference)?;
    let mut groups = Vec::new();
    let mut total = 0;
    for g in task.groups().iter() {
        let layers = g.layers();
        total += g.numel();
        let nets = networks(&layers);
        groups.push(serde_json::json!({
            "group": g.name(),
            "params": g.numel(),
            "networks": nets.iter().map(|(n, p)| serde_json::json!({"name": n, "params": p})).collect::<Vec<_>>(),
            "layers": layers,
        }));
    }
    if a.json {
        let v = serde_json::json!({ "task": task.kind(), "params": total, "groups": groups });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("task {} ({})", task.kind(), path.display());
    for g in task.groups().iter() {
        println!(
            "group {:<4} {:>14} parameters",
            g.name(),
            fmt_count(g.numel())
        );
        let layers = g.layers();
        let nets = networks(&layers);
        if !nets.is_empty() {
            for (n, p) in &nets {
                println!("  network {:<20} {:>14}", n, fmt_count(*p));
            }
        }
        if a.layers {
            for l in g.layers() {
                let shapes: Vec<String> = l
                    .variables
                    .iter()
                    .map(|(n, s)| format!("{n} {s:?}"))
                    .collect();
                println!(
                    "  {:<32} {:>12}  {}",
                    l.layer,
                    fmt_count(l.params),
                    shapes.join(", ")
                );
            }
        }
    }
    println!("total      {:>14} parameters", fmt_count(total));
    Ok(())
}

/// Parameters per network of a group that holds several: by convention such a group names
/// them `<group>_<suffix>` (`g.g_a.model.1` is in network `g.g_a`, `d.d_gb.cam` in `d.d_gb`).
/// A group with one network (the GAN task's `g.up0`, pix2pix's `g.block0`) gets no entries.
fn networks(layers: &[ganlab::train::networks::LayerSummary]) -> Vec<(String, i64)> {
    let mut nets: Vec<(String, i64)> = Vec::new();
    for l in layers {
        let mut parts = l.layer.split('.');
        let (Some(group), Some(net)) = (parts.next(), parts.next()) else {
            return Vec::new();
        };
        if !net.starts_with(&format!("{group}_")) {
            return Vec::new();
        }
        let net = format!("{group}.{net}");
        match nets.iter_mut().find(|(n, _)| *n == net) {
            Some((_, p)) => *p += l.params,
            None => nets.push((net, l.params)),
        }
    }
    nets
}

/// 54414211 → "54,414,211".
fn fmt_count(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `ganlab translate`.
pub fn translate(a: TranslateArgs) -> anyhow::Result<()> {
    let run = Run::open(&a.run)?;
    if let Some(ed) = run.task().editor() {
        return crate::edit_cmd::edit(
            ed,
            crate::edit_cmd::EditArgs {
                run: &a.run,
                step: run.step(),
                input: &a.input,
                out: &a.out,
                set: &a.set,
                reference: a.reference.as_deref(),
                alpha: &a.alpha,
                samples: a.samples,
                seed: a.seed,
            },
        );
    }
    if !a.set.is_empty() || a.reference.is_some() || !a.alpha.is_empty() || a.samples != 1 {
        return Err(GanError::Input(format!(
            "--set, --reference, --alpha and --samples apply to attribute runs; {} is a {} run",
            a.run.display(),
            run.task().kind()
        ))
        .into());
    }
    let tr = run.translator()?;
    let direction = a
        .direction
        .unwrap_or_else(|| tr.directions()[0].to_string());
    let [c, h, _] = tr.input_shape(&direction)?;
    let files = if a.input.is_dir() {
        image_files(&a.input)?
    } else if a.input.is_file() {
        vec![a.input.clone()]
    } else {
        return Err(GanError::Input(format!(
            "--input {}: no such file or folder",
            a.input.display()
        ))
        .into());
    };
    ganlab::io::check_output_dir(&a.out)?;
    let mut seen = std::collections::BTreeSet::new();
    for p in &files {
        let name = Path::new(p.file_name().unwrap_or_default()).with_extension("png");
        if !seen.insert(name.clone()) {
            return Err(GanError::Input(format!(
                "--input: two inputs would both be written as {} (e.g. {}); rename one",
                name.display(),
                p.display()
            ))
            .into());
        }
    }
    // Every input is read and checked before anything is written.
    let inputs: Vec<(PathBuf, tch::Tensor)> = files
        .into_iter()
        .map(|p| {
            let x = load_image(&p)?;
            let x = to_channels(resize_crop(&x, h).unsqueeze(0), c);
            Ok((p, x))
        })
        .collect::<ganlab::Result<_>>()?;
    ganlab::io::create_output_dir(&a.out)?;
    tch::manual_seed(ganlab::train::step_seed(a.seed, u64::MAX - 5));
    let mut pairs = Vec::new();
    for (p, x) in &inputs {
        let y = tr.translate(x, &direction)?.to_device(tch::Device::Cpu);
        let name = Path::new(p.file_name().unwrap_or_default()).with_extension("png");
        ganlab::data::write_png(&a.out.join(&name), &y.get(0))?;
        if pairs.len() < 32 {
            let cmax = x.size()[1].max(y.size()[1]);
            pairs.push(to_channels(x.shallow_clone(), cmax));
            pairs.push(to_channels(y, cmax));
        }
    }
    // The overview grid, unless an input is itself called grid.png (never overwrite an output).
    let grid_path = a.out.join("grid.png");
    if !grid_path.exists() {
        let grid = ganlab::data::grid(&tch::Tensor::cat(&pairs, 0), 8, 2)?;
        ganlab::data::write_png(&grid_path, &grid)?;
    }
    println!(
        "translated {} image(s) ({direction}) with {} (step {}) into {}; grid.png: input | output pairs",
        inputs.len(),
        a.run.display(),
        run.step(),
        a.out.display()
    );
    Ok(())
}
