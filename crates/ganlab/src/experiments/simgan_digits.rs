//! SimGAN's claim at CPU scale (Shrivastava et al. 2017 §3: a model trained on *refined*
//! synthetic images does better on real images than one trained on the raw synthetic
//! ones), on digits: synthetic digits drawn from fonts (`scripts/fetch-data synth-digits`)
//! refined toward real MNIST (`scripts/fetch-data mnist`).
//!
//! Per seed: (1) a SimGAN run (configs/simgan-digits.toml, `--set` applies to it);
//! (2) its refiner (EMA weights where kept) refines the first `classifier_images` synthetic
//! training digits, written as an MNIST-layout set `refined-s<seed>/` (8-bit, as the other
//! two sets); (3) three digit classifiers of the same architecture (ccexam's MNIST CNN,
//! from scratch), budget and seed are trained on: the raw synthetic digits, the refined
//! ones (same labels), and the first `classifier_images` real MNIST training digits with
//! their labels (the upper reference); (4) each is scored on the whole real MNIST test
//! split (10,000 digits). The refiner never sees a real label.
//!
//! `--set experiment.classifier_steps=2000`, `experiment.classifier_images=20000` change the
//! classifiers' budget; everything else is resumable: a finished SimGAN run is reused and
//! scored classifiers are kept in results.json.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::mean_sd;
use crate::data::{load_idx_images, Split};
use crate::error::{GanError, Result};
use crate::io::write_atomic;
use crate::metrics::extractors::MnistCnn;
use crate::train::optim::{FlatOptimizer, OptimizerConfig};
use crate::train::{step_seed, TrainConfig};

/// The classifiers' budget.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierPlan {
    /// Adam steps (batch 64, lr 1e-3, β (0.9, 0.999)).
    pub steps: u64,
    /// Training digits per classifier (the first n of each source).
    pub images: i64,
}

/// What the experiment runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The SimGAN run (seed set per run).
    pub simgan: TrainConfig,
    /// The classifiers.
    pub classifier: ClassifierPlan,
}

/// One scored classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// run.seed of the SimGAN run and the classifier.
    pub seed: u64,
    /// What it was trained on: "synthetic", "refined" or "real".
    pub source: String,
    /// Accuracy on the real test split.
    pub accuracy: f64,
    /// Accuracy per digit 0–9.
    pub per_digit: Vec<f64>,
    /// Test digits scored.
    pub test_images: i64,
}

/// The sources, in table order.
pub const SOURCES: [&str; 3] = ["synthetic", "refined", "real"];

/// The built-in plan with `sets` applied (module docs).
pub fn plan(sets: &[String]) -> Result<Plan> {
    let mut classifier = ClassifierPlan {
        steps: 2000,
        images: 20000,
    };
    let mut own = Vec::new();
    for s in sets {
        let Some(rest) = s.strip_prefix("experiment.") else {
            own.push(s.clone());
            continue;
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        let bad = |m: &str| GanError::config(format!("experiment.{key}"), m.to_string());
        let num = value.trim().parse::<i64>();
        match key.trim() {
            "classifier_steps" => match num {
                Ok(n) if (1..=1_000_000).contains(&n) => classifier.steps = n as u64,
                _ => return Err(bad(&format!("must be in [1, 1000000], got {value:?}"))),
            },
            "classifier_images" => match num {
                Ok(n) if (10..=60_000).contains(&n) => classifier.images = n,
                _ => return Err(bad(&format!("must be in [10, 60000], got {value:?}"))),
            },
            _ => return Err(bad("unknown; use classifier_steps or classifier_images")),
        }
    }
    let simgan = TrainConfig::from_toml_with(
        include_str!("../../../../configs/simgan-digits.toml"),
        Path::new("configs/simgan-digits.toml"),
        &own,
    )?;
    Ok(Plan { simgan, classifier })
}

/// Images in [−1, 1] quantised to 8 bits and back, as an MNIST-layout file holds them.
fn quantise(x: &Tensor) -> Tensor {
    ((x + 1.0) * 127.5).round().clamp(0.0, 255.0) / 127.5 - 1.0
}

/// Writes images [n, 1, s, s] in [−1, 1] with labels as an MNIST-layout training set.
fn write_set(dir: &Path, x: &Tensor, labels: &Tensor) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| GanError::Input(format!("{}: {e}", dir.display())))?;
    let s: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    let bytes: Vec<u8> =
        Vec::<f32>::try_from(((x + 1.0) * 127.5).round().clamp(0.0, 255.0).flatten(0, -1))?
            .into_iter()
            .map(|v| v as u8)
            .collect();
    let l: Vec<u8> = Vec::<i64>::try_from(labels)?
        .into_iter()
        .map(|v| v as u8)
        .collect();
    crate::data::idx::write_idx(
        &dir.join("train-images-idx3-ubyte.gz"),
        &[s[0], s[2], s[3]],
        &bytes,
    )?;
    crate::data::idx::write_idx(&dir.join("train-labels-idx1-ubyte.gz"), &[s[0]], &l)
}

/// Trains a digit classifier (ccexam's layout, random init) on images [n, 1, 28, 28] in
/// [−1, 1] with labels [n]: `steps` Adam steps on batches of 64 drawn with replacement,
/// every draw seeded from `seed`.
pub fn train_classifier(x: &Tensor, y: &Tensor, steps: u64, seed: u64) -> Result<MnistCnn> {
    tch::manual_seed(step_seed(seed, u64::MAX - 7));
    let net = MnistCnn::random(Device::Cpu);
    let cfg = OptimizerConfig {
        beta1: 0.9,
        ..OptimizerConfig::adam(1e-3)
    };
    let mut opt = FlatOptimizer::new(cfg, net.var_store().trainable_variables())?;
    for step in 0..steps {
        tch::manual_seed(step_seed(seed, step));
        let idx = Tensor::randint(x.size()[0], [64], (Kind::Int64, Device::Cpu));
        let (_, logits) = net.forward(&x.index_select(0, &idx))?;
        let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
        opt.zero_grad();
        loss.backward();
        opt.step()?;
    }
    Ok(net)
}

/// Accuracy of `net` on images `x` with labels `y`, overall and per digit 0–9.
pub fn accuracy(net: &MnistCnn, x: &Tensor, y: &Tensor) -> Result<(f64, Vec<f64>)> {
    let _g = tch::no_grad_guard();
    let n = x.size()[0];
    let preds: Vec<Tensor> = (0..n)
        .step_by(500)
        .map(|i| {
            Ok(net
                .forward(&x.narrow(0, i, 500.min(n - i)))?
                .1
                .argmax(1, false))
        })
        .collect::<Result<_>>()?;
    let right = Tensor::cat(&preds, 0).eq_tensor(y).to_kind(Kind::Float);
    let per_digit = (0..10)
        .map(|d| {
            let m = y.eq(d).to_kind(Kind::Float);
            (&right * &m).sum(Kind::Float).double_value(&[])
                / m.sum(Kind::Float).double_value(&[]).max(1.0)
        })
        .collect();
    Ok((right.mean(Kind::Float).double_value(&[]), per_digit))
}

/// The first `n` images and labels of a labelled MNIST-layout training set.
fn labelled(dir: &Path, split: Split, n: i64) -> Result<(Tensor, Tensor)> {
    let set = load_idx_images(dir, split)?;
    let labels = set
        .labels
        .ok_or_else(|| GanError::Input(format!("{}: no labels file", dir.display())))?;
    let n = n.min(set.images.size()[0]);
    Ok((set.images.narrow(0, 0, n), labels.narrow(0, 0, n)))
}

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| GanError::Input(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| GanError::Input(format!("{}: {e}", path.display())))
}

/// Runs the plan at every seed into `dir` (resuming what is there); the scored rows.
pub fn run(plan: &Plan, seeds: &[u64], dir: &Path, progress: bool) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir).map_err(|e| GanError::Input(format!("{}: {e}", dir.display())))?;
    let results = dir.join("results.json");
    let mut rows: Vec<Row> = read_rows(&results)?
        .into_iter()
        .filter(|r| seeds.contains(&r.seed))
        .collect();
    let data = &plan.simgan.simgan.data;
    let k = &plan.classifier;
    let (test_x, test_y) = labelled(&data.real, Split::Test, i64::MAX)?;
    for &seed in seeds {
        if SOURCES
            .iter()
            .all(|s| rows.iter().any(|r| r.seed == seed && r.source == *s))
        {
            continue;
        }
        let mut cfg = plan.simgan.clone();
        cfg.run.seed = seed;
        let run_dir = dir.join(format!("simgan-s{seed}"));
        let label = format!("simgan seed {seed}");
        super::train_or_resume(&cfg, &run_dir, progress.then_some(label.as_str()))?;
        let (syn_x, syn_y) = labelled(&data.synthetic, Split::Train, k.images)?;
        let refined_dir = dir.join(format!("refined-s{seed}"));
        if !refined_dir.join("train-labels-idx1-ubyte.gz").is_file() {
            let run = crate::run::Run::open(&run_dir)?;
            let refined = run.translator()?.translate(&syn_x, "a2b")?;
            write_set(&refined_dir, &refined, &syn_y)?;
        }
        let (ref_x, ref_y) = labelled(&refined_dir, Split::Train, k.images)?;
        let (real_x, real_y) = labelled(&data.real, Split::Train, k.images)?;
        for (source, x, y) in [
            ("synthetic", &syn_x, &syn_y),
            ("refined", &ref_x, &ref_y),
            ("real", &real_x, &real_y),
        ] {
            if rows.iter().any(|r| r.seed == seed && r.source == source) {
                continue;
            }
            let net = train_classifier(&quantise(x), y, k.steps, seed)?;
            let (acc, per_digit) = accuracy(&net, &test_x, &test_y)?;
            if progress {
                eprintln!(
                    "seed {seed}: classifier on {source} digits: {:.2} % on the real test split",
                    100.0 * acc
                );
            }
            rows.push(Row {
                seed,
                source: source.into(),
                accuracy: acc,
                per_digit,
                test_images: test_x.size()[0],
            });
            write_atomic(&results, serde_json::to_string_pretty(&rows)?.as_bytes())?;
        }
    }
    write_atomic(&dir.join("results.md"), markdown(&rows).as_bytes())?;
    Ok(rows)
}

/// The results as Markdown: one row per training source (accuracy per seed, mean ± sd) and
/// the paired gain of refined over synthetic.
pub fn markdown(rows: &[Row]) -> String {
    let mut seeds: Vec<u64> = rows.iter().map(|r| r.seed).collect();
    seeds.sort();
    seeds.dedup();
    let acc = |s: u64, src: &str| {
        rows.iter()
            .find(|r| r.seed == s && r.source == src)
            .map(|r| 100.0 * r.accuracy)
    };
    let n = rows.first().map_or(0, |r| r.test_images);
    let mut out = format!(
        "Digit classifier accuracy (%) on the real MNIST test split (n = {n}), by training data\n\n| trained on | {} | mean ± sd |\n|---|{}---|\n",
        seeds.iter().map(|s| format!("seed {s}")).collect::<Vec<_>>().join(" | "),
        "---|".repeat(seeds.len())
    );
    for src in SOURCES {
        let v: Vec<f64> = seeds.iter().filter_map(|&s| acc(s, src)).collect();
        let cells: Vec<String> = seeds
            .iter()
            .map(|&s| acc(s, src).map_or("–".into(), |a| format!("{a:.2}")))
            .collect();
        let (m, sd) = if v.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            mean_sd(&v)
        };
        out += &format!(
            "| {src} digits | {} | {m:.2} ± {sd:.2} |\n",
            cells.join(" | ")
        );
    }
    let gains: Vec<f64> = seeds
        .iter()
        .filter_map(|&s| Some(acc(s, "refined")? - acc(s, "synthetic")?))
        .collect();
    if !gains.is_empty() {
        let (m, sd) = mean_sd(&gains);
        out +=
            &format!(
            "\nRefined − synthetic, paired by seed: {} (mean {m:+.2} ± {sd:.2} points, n = {})\n",
            gains.iter().map(|g| format!("{g:+.2}")).collect::<Vec<_>>().join(", "),
            gains.len()
        );
    }
    out
}

/// Where a seed's grid of synthetic | refined | real probes lies.
pub fn grid_path(dir: &Path, seed: u64) -> PathBuf {
    dir.join(format!("simgan-s{seed}")).join("samples.png")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's keys and their errors; a classifier trained on separable toy "digits"
    /// (digit d = a bright row band at 2d + 4) scores 100 % on them after 60 steps, per
    /// digit too; the Markdown's mean ± sd (closed form) and its gain paired by seed.
    #[test]
    fn plan_classifier_and_table() {
        let _rng = crate::test_rng_lock();
        let p = plan(&["experiment.classifier_steps=5".into(), "run.steps=7".into()]).unwrap();
        assert_eq!((p.classifier.steps, p.simgan.run.steps), (5, 7));
        for bad in [
            "experiment.classifier_images=3",
            "experiment.colour=1",
            "experiment.classifier_steps=x",
        ] {
            let e = plan(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{e}");
        }
        let x = Tensor::full([100, 1, 28, 28], -1.0, (Kind::Float, Device::Cpu));
        let y = Tensor::arange(100, (Kind::Int64, Device::Cpu)).remainder(10);
        for i in 0..100 {
            let _ = x.get(i).narrow(1, 2 * (i % 10) + 4, 2).fill_(1.0);
        }
        let net = train_classifier(&x, &y, 60, 0).unwrap();
        let (a, per) = accuracy(&net, &x, &y).unwrap();
        assert_eq!((a, per.len()), (1.0, 10));
        let rows: Vec<Row> = [
            (0, "synthetic", 0.5),
            (0, "refined", 0.6),
            (1, "synthetic", 0.4),
            (1, "refined", 0.7),
        ]
        .iter()
        .map(|&(seed, source, accuracy)| Row {
            seed,
            source: source.into(),
            accuracy,
            per_digit: vec![],
            test_images: 10,
        })
        .collect();
        let md = markdown(&rows);
        assert!(
            md.contains("| refined digits | 60.00 | 70.00 | 65.00 ± 7.07 |"),
            "{md}"
        );
        assert!(
            md.contains("+10.00, +30.00 (mean +20.00 ± 14.14 points, n = 2)"),
            "{md}"
        );
    }
}
