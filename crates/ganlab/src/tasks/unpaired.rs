//! What the unpaired translation tasks (CycleGAN, U-GAT-IT) share: the two domains' data,
//! fixed probes, the grids of input | translated | reconstructed per direction, per-direction
//! FID/KID of translated test images against the target domain's test images, and the
//! [`super::Translator`] checks. Each task keeps its own networks and step.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::{Mode, Outputs, Section, Translator};
use crate::data::unpaired::{JitterSampler, UnpairedDataConfig};
use crate::diffusion::Diffusion;
use crate::error::{GanError, Result};
use crate::metrics::eval::{evaluate, EvalOptions};
use crate::train::step_seed;

/// A translation direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Domain A → domain B.
    A2b,
    /// Domain B → domain A.
    B2a,
}

impl Direction {
    /// Both directions, a2b first.
    pub const BOTH: [Direction; 2] = [Direction::A2b, Direction::B2a];

    /// "a2b" or "b2a".
    pub fn name(self) -> &'static str {
        match self {
            Direction::A2b => "a2b",
            Direction::B2a => "b2a",
        }
    }

    /// Parses a name of [`Direction::name`]; anything else names `--direction`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "a2b" => Ok(Direction::A2b),
            "b2a" => Ok(Direction::B2a),
            other => Err(GanError::config(
                "--direction",
                format!("must be a2b or b2a, got {other:?}"),
            )),
        }
    }
}

/// The two domains of an unpaired task (see module docs).
#[derive(Debug)]
pub struct Domains {
    cfg: UnpairedDataConfig,
    seed: u64,
    device: Device,
    train: Option<[JitterSampler; 2]>,
    /// Fixed probes (A, B) on the device, from the test split when there is one.
    probes: Option<[Tensor; 2]>,
    /// Test images (A, B) on the CPU (None without a test split).
    test: Option<[Tensor; 2]>,
}

/// `k` indices spread evenly over `n` (sorted file names cluster content).
fn spread(n: i64, k: i64) -> Tensor {
    let k = k.min(n);
    Tensor::from_slice(&(0..k).map(|i| i * n / k).collect::<Vec<i64>>())
}

impl Domains {
    /// Loads the data of a validated config (`Mode::Train` only); `probes` per domain.
    pub fn new(
        cfg: &UnpairedDataConfig,
        probes: i64,
        seed: u64,
        mode: Mode,
        device: Device,
    ) -> Result<Self> {
        let mut d = Self {
            cfg: cfg.clone(),
            seed,
            device,
            train: None,
            probes: None,
            test: None,
        };
        if mode == Mode::Inference {
            return Ok(d);
        }
        let (a, b) = cfg.load("train", cfg.stored_size())?;
        let test = if cfg.has_split("test") {
            let (ta, tb) = cfg.load("test", cfg.image_size)?;
            Some([ta, tb])
        } else {
            None
        };
        let src = match &test {
            Some([ta, tb]) => [ta.shallow_clone(), tb.shallow_clone()],
            None if cfg.load_size == 0 || cfg.load_size == cfg.image_size => {
                [a.shallow_clone(), b.shallow_clone()]
            }
            None => {
                let (ta, tb) = cfg.load("train", cfg.image_size)?;
                [ta, tb]
            }
        };
        d.probes = Some(src.map(|x| {
            x.index_select(0, &spread(x.size()[0], probes))
                .to_device(device)
        }));
        d.train = Some([
            JitterSampler::new(a, cfg.image_size, cfg.flip),
            JitterSampler::new(b, cfg.image_size, cfg.flip),
        ]);
        d.test = test;
        Ok(d)
    }

    /// A random batch of `m` images of each domain (A, B) on the device.
    pub fn sample(&self, m: i64) -> Result<(Tensor, Tensor)> {
        let [a, b] = self.train.as_ref().ok_or_else(|| {
            GanError::Input("this run was opened for inference; resume it to train".into())
        })?;
        Ok((a.sample(m, self.device), b.sample(m, self.device)))
    }

    /// The shape [C, H, W] of the images of either domain.
    pub fn image_shape(&self) -> [i64; 3] {
        [self.cfg.channels, self.cfg.image_size, self.cfg.image_size]
    }

    /// Checks `x` is a batch of this run's images for translation.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let [c, h, w] = self.image_shape();
        let s = x.size();
        if s.len() != 4 || s[1..] != [c, h, w] {
            return Err(GanError::Input(format!(
                "translate: expected images [n, {c}, {h}, {w}], got {s:?}"
            )));
        }
        Ok(())
    }

    /// The rows of one direction: probe i's columns `cols(source, direction)` side by side
    /// (each [n, C', H, W] in [−1, 1]; grey columns shown as RGB), and the column count.
    fn rows(
        &self,
        x: &Tensor,
        d: Direction,
        cols: &dyn Fn(&Tensor, Direction) -> Result<Vec<Tensor>>,
    ) -> Result<(Tensor, i64)> {
        tch::manual_seed(step_seed(self.seed, u64::MAX - 3));
        let cs: Vec<Tensor> = cols(x, d)?
            .into_iter()
            .map(|c| crate::data::folder::to_channels(c.to_device(Device::Cpu), 3))
            .collect();
        Ok((Tensor::stack(&cs, 1).flatten(0, 1), cs.len() as i64))
    }

    /// A grid of [`Domains::rows`] of both directions, a2b rows first (the loop's
    /// samples/step-N.png).
    pub fn visuals(
        &self,
        cols: &dyn Fn(&Tensor, Direction) -> Result<Vec<Tensor>>,
    ) -> Result<Option<Tensor>> {
        let Some(probes) = &self.probes else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        let mut width = 0;
        for (d, x) in Direction::BOTH.iter().zip(probes) {
            let (r, w) = self.rows(x, *d, cols)?;
            rows.push(r);
            width = w;
        }
        Ok(Some(crate::data::grid(&Tensor::cat(&rows, 0), width, 2)?))
    }

    /// Per-direction FID and KID of the translated test images against the target domain's
    /// test images, with the Inception of the config (None when there is no test split or
    /// the Inception is missing: the reason is returned instead).
    pub fn scores(
        &self,
        translate: &dyn Fn(&Tensor, Direction) -> Result<Tensor>,
    ) -> Result<std::result::Result<serde_json::Map<String, serde_json::Value>, String>> {
        let Some(test) = &self.test else {
            return Ok(Err("no test split".into()));
        };
        if !self.cfg.inception.is_file() {
            return Ok(Err(format!(
                "{} is missing (scripts/fetch-data inception)",
                self.cfg.inception.display()
            )));
        }
        let ex = crate::metrics::InceptionFid::load(&self.cfg.inception, self.device)?;
        let mut out = serde_json::Map::new();
        for (i, dir) in Direction::BOTH.iter().enumerate() {
            let (src, dst) = (&test[i], &test[1 - i]);
            tch::manual_seed(step_seed(self.seed, u64::MAX - 5));
            let mut ys = Vec::new();
            for start in (0..src.size()[0]).step_by(32) {
                let len = 32.min(src.size()[0] - start);
                let x = src.narrow(0, start, len).to_device(self.device);
                ys.push(translate(&x, *dir)?.to_device(Device::Cpu));
            }
            let y = Tensor::cat(&ys, 0);
            let opts = EvalOptions {
                metrics: vec!["fid".into(), "kid".into()],
                // Subsets of up to 100 images: test splits of a few hundred images would
                // make torch-fidelity's 1000-image subsets the whole set every time.
                kid_subsets: 100,
                kid_subset_size: 100,
                is_splits: 10,
                seed: 0,
                cache_dir: None,
            };
            let r = evaluate(&ex, dst, &y, &opts, &mut crate::progress::Silent)?;
            let d = dir.name();
            out.insert(format!("fid_{d}"), r.fid.into());
            if let Some(k) = r.kid {
                out.insert(format!("kid_{d}"), k.mean.into());
                out.insert(format!("kid_{d}_std"), k.std.into());
            }
            out.insert(format!("test_{d}"), src.size()[0].into());
        }
        Ok(Ok(out))
    }

    /// Mean |F(G(x)) − x| over the test images of each direction (at most `limit`), with
    /// `cycle(x, direction)` the reconstruction: scalars `test_cycle_a2b`, `test_cycle_b2a`.
    pub fn test_cycle(
        &self,
        limit: i64,
        cycle: &dyn Fn(&Tensor, Direction) -> Result<Tensor>,
    ) -> Result<super::Scalars> {
        let mut s = super::Scalars::new();
        let Some(test) = &self.test else {
            return Ok(s);
        };
        for (i, dir) in Direction::BOTH.iter().enumerate() {
            let n = test[i].size()[0].min(limit);
            tch::manual_seed(step_seed(self.seed, u64::MAX - 4));
            let mut total = 0.0;
            for start in (0..n).step_by(32) {
                let len = 32.min(n - start);
                let x = test[i].narrow(0, start, len).to_device(self.device);
                total += (cycle(&x, *dir)? - &x)
                    .abs()
                    .sum(Kind::Double)
                    .double_value(&[]);
            }
            let per = n * test[i].size()[1..].iter().product::<i64>();
            s.push(
                if *dir == Direction::A2b {
                    "test_cycle_a2b"
                } else {
                    "test_cycle_b2a"
                },
                total / per as f64,
            );
        }
        Ok(s)
    }

    /// Writes one grid per direction (`translations_<dir>.png`) and returns the report
    /// sections showing them; `columns` names the columns.
    pub fn write_grids(
        &self,
        dir: &Path,
        columns: &str,
        cols: &dyn Fn(&Tensor, Direction) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Section>> {
        let Some(probes) = &self.probes else {
            return Ok(Vec::new());
        };
        let mut sections = Vec::new();
        for (d, x) in Direction::BOTH.iter().zip(probes) {
            let (rows, width) = self.rows(x, *d, cols)?;
            let grid = crate::data::grid(&rows, width, 2)?;
            let file = format!("translations_{}.png", d.name());
            crate::data::write_png(&dir.join(&file), &grid)?;
            sections.push(Section {
                heading: format!("{} ({columns})", d.name()),
                html: format!(
                    "<img src=\"{file}\" alt=\"{} probes: {columns}\">",
                    d.name()
                ),
            });
        }
        Ok(sections)
    }
}

/// A heat map [n, 1, h, w] as images [n, 1, H, W] in [−1, 1] at the image side `size`,
/// each normalised to its own range (U-GAT-IT's test script does the same before its
/// colour map).
pub fn heatmap_image(h: &Tensor, size: i64) -> Tensor {
    let n = h.size()[0];
    let flat = h.detach().view([n, -1]);
    let (lo, hi) = (flat.amin(&[1i64][..], true), flat.amax(&[1i64][..], true));
    let u = (&flat - &lo) / (hi - lo + 1e-8);
    (u.view_as(h)
        .upsample_bilinear2d([size, size], false, None, None)
        * 2.0
        - 1.0)
        .clamp(-1.0, 1.0)
}

/// Σ over images of sign(mean patch output − 0.5): the LSGAN discriminator's votes on real
/// images, which drive the adaptive diffusion controller's r_d (targets 1 real, 0 fake, so
/// 0.5 is the boundary).
pub fn lsgan_sign_sum(pred_real: &Tensor) -> f64 {
    let n = pred_real.size()[0];
    (pred_real
        .detach()
        .view([n, -1])
        .mean_dim(1, false, Kind::Float)
        - 0.5)
        .sign()
        .sum(Kind::Float)
        .double_value(&[])
}

/// Least-squares GAN loss: mean (x − target)².
pub fn mse(x: &Tensor, target: f64) -> Tensor {
    (x - target).square().mean(Kind::Float)
}

/// Mean |x − y|.
pub fn l1(x: &Tensor, y: &Tensor) -> Tensor {
    (x - y).abs().mean(Kind::Float)
}

/// A finished unpaired run's outputs: the per-direction grids (`columns` names their
/// columns), FID/KID per direction in the summary and a table in the report (or the reason
/// they are missing), and the final T with Diffusion-GAN.
pub fn finish(
    domains: &Domains,
    diffusion: &Diffusion,
    diffusion_on: bool,
    dir: &Path,
    columns: &str,
    cols: &dyn Fn(&Tensor, Direction) -> Result<Vec<Tensor>>,
    translate: &dyn Fn(&Tensor, Direction) -> Result<Tensor>,
) -> Result<Outputs> {
    let mut summary = serde_json::Map::new();
    let mut sections = domains.write_grids(dir, columns, cols)?;
    match domains.scores(translate)? {
        Ok(scores) => {
            let cell = |k: &str, d: usize| {
                scores
                    .get(k)
                    .and_then(|v| v.as_f64())
                    .map_or("—".to_string(), |v| format!("{v:.d$}"))
            };
            let mut html = String::from(
                "<table><tr><th>direction</th><th>FID</th><th>KID</th><th>test images</th></tr>",
            );
            for d in Direction::BOTH {
                let n = d.name();
                html += &format!(
                    "<tr><td>{n}</td><td>{}</td><td>{} ± {}</td><td>{}</td></tr>",
                    cell(&format!("fid_{n}"), 2),
                    cell(&format!("kid_{n}"), 4),
                    cell(&format!("kid_{n}_std"), 4),
                    cell(&format!("test_{n}"), 0)
                );
            }
            html += "</table><p>Translated test images of the source domain against the target domain's test images (FID Inception; KID over subsets of up to 100).</p>";
            sections.push(Section {
                heading: "FID and KID per direction".into(),
                html,
            });
            summary.extend(scores);
        }
        Err(why) => {
            summary.insert("scores_skipped".into(), why.into());
        }
    }
    if diffusion_on {
        summary.insert("final_T".into(), diffusion.t_cur().into());
    }
    Ok(Outputs { summary, sections })
}

/// What an unpaired task exposes for translation; every such task is a [`Translator`] of
/// both directions through it.
pub trait UnpairedTask {
    /// The task's data and image shape.
    fn domains(&self) -> &Domains;
    /// The device of the networks.
    fn device(&self) -> Device;
    /// G(x) for direction `d`, no gradient, EMA weights where kept.
    fn translate_dir(&self, x: &Tensor, d: Direction) -> Tensor;
}

impl<T: UnpairedTask> Translator for T {
    fn directions(&self) -> Vec<&'static str> {
        Direction::BOTH.iter().map(|d| d.name()).collect()
    }

    fn input_shape(&self, direction: &str) -> Result<[i64; 3]> {
        Direction::parse(direction)?;
        Ok(self.domains().image_shape())
    }

    fn translate(&self, x: &Tensor, direction: &str) -> Result<Tensor> {
        let d = Direction::parse(direction)?;
        self.domains().check_input(x)?;
        Ok(self.translate_dir(&x.to_device(self.device()), d))
    }
}
