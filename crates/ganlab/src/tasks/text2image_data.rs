//! What the text-to-image tasks (GAN-INT-CLS, StackGAN) share: the frozen text encoder, the
//! captioned data with every training caption embedded once, the step's batch (images,
//! right and wrong captions), and — written once on the [`TextGan`] trait — drawing for
//! captions, the grids, the interpolation walks, the R-precision and the run's final outputs.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::gan_int_cls::TextToImage;
use super::text_encoder::{CaptionDataConfig, TextEmbedder};
use super::{Curve, Mode, Outputs, Scalars, Section};
use crate::data::captions::CaptionSet;
use crate::error::{GanError, Result};
use crate::run::Run;
use crate::train::config::TrainConfig;
use crate::train::step_seed;

/// The encoder and the data of a text-to-image task.
#[derive(Debug)]
pub struct TextData {
    encoder: Run,
    device: Device,
    /// Training images, the embedding of every caption [N_captions, dim], and each image's
    /// caption rows.
    train: Option<(CaptionSet, Tensor, Vec<Vec<i64>>)>,
    /// Test images and captions.
    test: Option<CaptionSet>,
}

impl TextData {
    /// Opens the text encoder run `encoder` (`field` names it in errors) and, in training
    /// mode, loads both splits of `data` and embeds the training captions.
    pub fn new(
        encoder: &Path,
        field: &str,
        data: &CaptionDataConfig,
        mode: Mode,
        batch_size: i64,
        device: Device,
    ) -> Result<Self> {
        let run = Run::open(encoder)
            .map_err(|e| GanError::config(field, format!("{}: {e}", encoder.display())))?;
        if run.task().text_embedder().is_none() {
            return Err(GanError::config(
                field,
                format!("{} is not a text_encoder run", encoder.display()),
            ));
        }
        let mut out = Self {
            encoder: run,
            device,
            train: None,
            test: None,
        };
        if mode == Mode::Train {
            let set = data.load(&data.train)?;
            if (set.len() as i64) < batch_size.max(2) {
                return Err(GanError::config(
                    "run.batch_size",
                    format!(
                        "must be at most the {} training images (and at least 2)",
                        set.len()
                    ),
                ));
            }
            let mut rows = Vec::new();
            let mut all: Vec<&str> = Vec::new();
            for caps in &set.captions {
                rows.push((all.len() as i64..(all.len() + caps.len()) as i64).collect());
                all.extend(caps.iter().map(String::as_str));
            }
            let h = out.embed(&all);
            out.train = Some((set, h, rows));
            out.test = Some(data.load(&data.test)?);
        }
        Ok(out)
    }

    /// The frozen encoder.
    pub fn embedder(&self) -> &dyn TextEmbedder {
        self.encoder
            .task()
            .text_embedder()
            .expect("checked in TextData::new")
    }

    /// Caption embeddings on the task's device.
    pub fn embed(&self, captions: &[&str]) -> Tensor {
        self.embedder().embed_text(captions).to_device(self.device)
    }

    /// The test split (None when opened for inference).
    pub fn test(&self) -> Option<&CaptionSet> {
        self.test.as_ref()
    }

    /// A training batch of `m` distinct images with one caption each, drawn from libtorch's
    /// generator: (images, their caption embeddings h, wrong captions ĥ = the next image's).
    pub fn batch(&self, m: i64) -> Result<(Tensor, Tensor, Tensor)> {
        let (set, h_all, rows) = self.train.as_ref().ok_or_else(|| {
            GanError::Input("this run was opened for inference; resume it to train".into())
        })?;
        let idx = crate::dist::distinct(set.len() as i64, m, "training pairs")?;
        let u = crate::dist::rand(&[m], (Kind::Float, Device::Cpu));
        let cap: Vec<i64> = Vec::<i64>::try_from(&idx)?
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let r = &rows[i as usize];
                r[((u.double_value(&[k as i64]) * r.len() as f64) as usize).min(r.len() - 1)]
            })
            .collect();
        let h = h_all.index_select(0, &Tensor::from_slice(&cap).to_device(self.device));
        let x = set.images.index_select(0, &idx).to_device(self.device);
        let wrong = h.roll([1], [0]);
        Ok((x, h, wrong))
    }
}

/// The report's curves of a text-to-image task: its `losses`, and D's three outputs.
pub fn text_curves(losses: Vec<&'static str>) -> Vec<Curve> {
    vec![
        Curve {
            title: "losses",
            ylabel: "loss",
            series: losses,
        },
        Curve {
            title: "discriminator outputs",
            ylabel: "mean σ(D)",
            series: vec!["d_real", "d_wrong", "d_fake"],
        },
    ]
}

/// Two captions a walk goes between.
pub type CaptionPair = (String, String);

/// A text-to-image task's model as the shared code uses it.
pub trait TextGan {
    /// The encoder and data.
    fn text_data(&self) -> &TextData;
    /// The task's config.
    fn config(&self) -> &TrainConfig;
    /// Noise dimension.
    fn noise_dim(&self) -> i64;
    /// (test captions in the grid, draws per caption).
    fn grid_shape(&self) -> (i64, i64);
    /// Final images for embeddings `h` [n, dim] and noise `z` [n, noise_dim] on the task's
    /// device, without gradient (EMA weights where kept).
    fn draw(&self, h: &Tensor, z: &Tensor) -> Tensor;

    /// [`TextGan::draw`] in batches of 256.
    fn draw_all(&self, h: &Tensor, z: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let n = h.size()[0];
        let outs: Vec<Tensor> = (0..n)
            .step_by(256)
            .map(|i| {
                let k = 256.min(n - i);
                self.draw(&h.narrow(0, i, k), &z.narrow(0, i, k))
            })
            .collect();
        Tensor::cat(&outs, 0)
    }

    /// Images for `captions` (one each), noise from `seed`.
    fn draw_captions(&self, captions: &[&str], seed: u64) -> Result<Tensor> {
        if captions.is_empty() {
            return Err(GanError::Input("no captions to draw".into()));
        }
        let h = self.text_data().embed(captions);
        tch::manual_seed(step_seed(seed, u64::MAX - 1));
        let z = Tensor::randn(
            [captions.len() as i64, self.noise_dim()],
            (Kind::Float, h.device()),
        );
        Ok(self.draw_all(&h, &z))
    }

    /// The grid: test captions (rows) × draws, and the captions in row order.
    fn caption_grid(&self) -> Result<Option<(Tensor, Vec<String>)>> {
        let Some(test) = self.text_data().test() else {
            return Ok(None);
        };
        let (probes, per) = self.grid_shape();
        let k = (probes as usize).min(test.len());
        let caps: Vec<String> = (0..k)
            .map(|i| test.captions[i * test.len() / k][0].clone())
            .collect();
        let rows: Vec<&str> = caps
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.as_str(), per as usize))
            .collect();
        let x = self.draw_captions(&rows, self.config().run.seed)?;
        Ok(Some((
            crate::data::grid(&x.to_device(Device::Cpu), per, 2)?,
            caps,
        )))
    }

    /// Text interpolation walks (Reed et al.'s Fig. 8): for half as many test-caption pairs as
    /// grid rows, 8 images from the first caption's embedding to the second's,
    /// h = (1 − β) h₁ + β h₂, β = 0, 1/7, …, 1, one noise vector per row (only the text
    /// changes); and the pairs.
    fn walks(&self) -> Result<Option<(Tensor, Vec<CaptionPair>)>> {
        let data = self.text_data();
        let Some(test) = data.test() else {
            return Ok(None);
        };
        let (rows, n) = ((self.grid_shape().0 / 2).max(1) as usize, test.len());
        if n < 2 {
            return Ok(None);
        }
        let pairs: Vec<CaptionPair> = (0..rows)
            .map(|r| {
                let i = (r * n / rows) % n;
                (
                    test.captions[i][0].clone(),
                    test.captions[(i + n / 2) % n][0].clone(),
                )
            })
            .collect();
        let ends: Vec<&str> = pairs
            .iter()
            .flat_map(|(a, b)| [a.as_str(), b.as_str()])
            .collect();
        let h = data.embed(&ends).view([rows as i64, 2, -1]);
        let dev = h.device();
        let beta = Tensor::linspace(0.0, 1.0, 8, (Kind::Float, dev)).view([1, 8, 1]);
        let (h1, h2) = (h.narrow(1, 0, 1), h.narrow(1, 1, 1));
        let hw = (&h1 * (beta.ones_like() - &beta) + &h2 * &beta).flatten(0, 1);
        tch::manual_seed(step_seed(self.config().run.seed, u64::MAX - 5));
        let zd = self.noise_dim();
        let z = Tensor::randn([rows as i64, 1, zd], (Kind::Float, dev))
            .expand([rows as i64, 8, zd], false)
            .flatten(0, 1);
        let x = self.draw(&hw, &z).to_device(Device::Cpu);
        Ok(Some((crate::data::grid(&x, 8, 2)?, pairs)))
    }

    /// R-precision of images drawn for the test split's first captions (at most
    /// `run.eval_samples`), 100 candidates, scored with the encoder's image side.
    fn test_r_precision(&self) -> Result<Option<f64>> {
        let data = self.text_data();
        let Some(test) = data.test() else {
            return Ok(None);
        };
        let n = test.len().min(self.config().run.eval_samples as usize);
        let caps: Vec<&str> = test.captions[..n].iter().map(|c| c[0].as_str()).collect();
        let x = self.draw_captions(&caps, self.config().run.seed ^ 0xE7A1)?;
        let e = data.embedder();
        let v = e.embed_images(&crate::data::folder::resize_batch(&x, e.image_size()))?;
        let t = e.embed_text(&caps);
        let seed = step_seed(self.config().run.seed, u64::MAX - 11) as u64;
        let cpu = |t: Tensor| t.to_device(Device::Cpu);
        Ok(Some(crate::metrics::retrieval::r_precision(
            &cpu(v),
            &cpu(t),
            100,
            seed,
        )))
    }

    /// [`super::Task::visuals`] of a text-to-image task: the caption grid.
    fn text_visuals(&self) -> Result<Option<Tensor>> {
        Ok(self.caption_grid()?.map(|(g, _)| g))
    }

    /// [`super::Task::evaluate`] of a text-to-image task: the test R-precision.
    fn text_evaluate(&self) -> Result<Scalars> {
        Ok(match self.test_r_precision()? {
            Some(r) => Scalars::new().with("r_precision", r),
            None => Scalars::new(),
        })
    }

    /// The run's final outputs: R-precision, samples.png and interpolation.png.
    fn text_outputs(&self, dir: &Path) -> Result<Outputs> {
        let mut summary = serde_json::Map::new();
        if let Some(r) = self.test_r_precision()? {
            summary.insert("r_precision".into(), r.into());
        }
        let esc = crate::report::svg::escape;
        let mut sections = Vec::new();
        if let Some((grid, caps)) = self.caption_grid()? {
            crate::data::write_png(&dir.join("samples.png"), &grid)?;
            let list: String = caps
                .iter()
                .map(|c| format!("<li>{}</li>", esc(c)))
                .collect();
            sections.push(Section {
                heading: "Samples (one row per test caption)".into(),
                html: format!(
                    "<img src=\"samples.png\" alt=\"samples per caption\"><ol>{list}</ol>"
                ),
            });
        }
        if let Some((grid, pairs)) = self.walks()? {
            crate::data::write_png(&dir.join("interpolation.png"), &grid)?;
            let list: String = pairs
                .iter()
                .map(|(a, b)| format!("<li>{} → {}</li>", esc(a), esc(b)))
                .collect();
            sections.push(Section {
                heading: "Text interpolation (one row per caption pair, one noise vector per row)"
                    .into(),
                html: format!("<img src=\"interpolation.png\" alt=\"text walks\"><ol>{list}</ol>"),
            });
        }
        Ok(Outputs { summary, sections })
    }
}

impl<T: TextGan> TextToImage for T {
    fn sample_text(&self, captions: &[&str], seed: u64) -> Result<Tensor> {
        self.draw_captions(captions, seed)
    }

    fn sample_embedded(&self, h: &Tensor, z: &Tensor) -> Tensor {
        self.draw_all(h, z)
    }

    fn embedder(&self) -> &dyn TextEmbedder {
        self.text_data().embedder()
    }

    fn z_dim(&self) -> i64 {
        self.noise_dim()
    }
}
