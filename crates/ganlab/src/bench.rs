//! Benchmark workloads, timed the same way as their PyTorch twins in `bench/pytorch_ref.py`
//! (same shapes, optimizer and per-step host syncs): `warmup` untimed calls, then `repeats`
//! timed blocks of `iters` calls, each reported as items per second. `ganlab bench` runs
//! every workload in its own process (so peak RSS is per workload) and prints medians and
//! ratios; see docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{GanError, Result};
use crate::train::{TrainConfig, Trainer};

/// Workload names, in table order.
pub const WORKLOADS: &[&str] = &[
    "mlp_gan",
    "mlp_diffusion_gan",
    "sample_mlp",
    "dcgan32_gan",
    "dcgan64_gan",
    "sngan32_gan",
    "stylegan2_32_step",
    "diffusion_stylegan2_32_step",
    "diffusion_noise",
    "inception_features",
    "pix2pix64_step",
    "cyclegan64_step",
    "ugatit64_step",
    "autoencoder64_step",
    "ddpm_latent_step",
    "attribute64_step",
    "simgan28_step",
    "gan_int_cls64_step",
    "stackgan64_step",
    "stackgan2_128_step",
    "projected28_step",
    "diffusion_projected28_step",
];

/// Calls per timed block for `workload` (about one second each on 2 CPU cores).
pub fn default_iters(workload: &str) -> usize {
    match workload {
        "sample_mlp" => 40,
        "inception_features" => 2,
        "dcgan32_gan" => 10,
        "dcgan64_gan" => 3,
        "sngan32_gan" => 2,
        "stylegan2_32_step" | "diffusion_stylegan2_32_step" => 2,
        "pix2pix64_step" => 10,
        "cyclegan64_step" => 4,
        "ugatit64_step" => 2,
        "autoencoder64_step" => 2,
        "ddpm_latent_step" => 20,
        "attribute64_step" => 2,
        "simgan28_step" => 2,
        "gan_int_cls64_step" | "stackgan64_step" => 3,
        "stackgan2_128_step" => 2,
        "projected28_step" | "diffusion_projected28_step" => 3,
        "diffusion_noise" => 200,
        _ => 300,
    }
}

/// Untimed calls before timing for `workload`.
pub fn default_warmup(workload: &str) -> usize {
    match workload {
        "inception_features" | "dcgan64_gan" | "sngan32_gan" => 1,
        "stylegan2_32_step" | "diffusion_stylegan2_32_step" => 3,
        "pix2pix64_step"
        | "cyclegan64_step"
        | "ugatit64_step"
        | "autoencoder64_step"
        | "attribute64_step"
        | "simgan28_step"
        | "gan_int_cls64_step"
        | "stackgan64_step"
        | "stackgan2_128_step"
        | "projected28_step"
        | "diffusion_projected28_step" => 3,
        "ddpm_latent_step" => 10,
        "dcgan32_gan" => 3,
        _ => 50,
    }
}

/// The closed-form test images of the extractor fixtures: img[k, c, i, j] =
/// sin(0.1 (k+1) i + 0.07 (c+1) j + k), [n, c, h, w] in [-1, 1].
pub fn test_images(n: i64, c: i64, h: i64, w: i64) -> tch::Tensor {
    use tch::{Device, Kind, Tensor};
    let o = (Kind::Float, Device::Cpu);
    let k = Tensor::arange(n, o).view([n, 1, 1, 1]);
    let ch = Tensor::arange(c, o).view([1, c, 1, 1]);
    let i = Tensor::arange(h, o).view([1, 1, h, 1]);
    let j = Tensor::arange(w, o).view([1, 1, 1, w]);
    ((&k + 1.0) * 0.1 * i + (ch + 1.0) * 0.07 * j + k).sin()
}

/// What one process measured for one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Workload name.
    pub workload: String,
    /// Items per second, one per timed block.
    pub rates: Vec<f64>,
    /// Peak resident set size of the process in KiB (Linux `VmHWM`), if known.
    pub peak_rss_kb: Option<u64>,
    /// Intra-op threads libtorch used.
    pub threads: i64,
}

impl Measurement {
    /// Adds another process's rates; peak RSS is the larger.
    pub fn absorb(&mut self, other: Measurement) {
        self.rates.extend(other.rates);
        self.peak_rss_kb = self.peak_rss_kb.max(other.peak_rss_kb);
    }

    /// Median of the rates.
    pub fn median(&self) -> f64 {
        median(&self.rates)
    }
}

/// Median of a non-empty slice (mean of the middle two for even lengths).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Timing protocol.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    /// Untimed calls first.
    pub warmup: usize,
    /// Calls per timed block.
    pub iters: usize,
    /// Timed blocks.
    pub repeats: usize,
}

/// Peak RSS of this process in KiB from /proc/self/status (None off Linux).
pub fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The text-to-image workloads' data in `scratch`: 256 random 64-px training images and 8
/// test images with two captions each, and a 1-step text encoder run on them; returns the
/// image folder, the captions file and the encoder's run directory.
fn caption_fixture(scratch: &std::path::Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    tch::manual_seed(0);
    let dir = scratch.join("captions");
    let mut tsv = String::new();
    for (split, n) in [("trainB", 256), ("testB", 8)] {
        let d = dir.join(split);
        crate::error::IoContext::at(std::fs::create_dir_all(&d), &d)?;
        for i in 0..n {
            let x = tch::Tensor::rand([3, 64, 64], (tch::Kind::Float, tch::Device::Cpu)) * 2 - 1;
            let stem = format!("{split}-{i:03}");
            crate::data::write_png(&d.join(format!("{stem}.png")), &x)?;
            tsv += &format!("{stem}\tred square number {i}\n{stem}\tthing {i}\n");
        }
    }
    let captions = dir.join("captions.tsv");
    crate::error::IoContext::at(std::fs::write(&captions, tsv), &captions)?;
    let mut enc = TrainConfig::from_toml_str(
        include_str!("../../../configs/text-encoder-emoji.toml"),
        std::path::Path::new("text-encoder"),
    )?;
    enc.text_encoder.data.dir = dir.clone();
    enc.text_encoder.data.captions = captions.clone();
    enc.text_encoder.candidates = 8;
    enc.run.device = "cpu".into();
    enc.run.steps = 1;
    let enc_dir = scratch.join("encoder");
    Trainer::new(enc, &enc_dir)?.run(&mut crate::progress::Silent)?;
    Ok((dir, captions, enc_dir))
}

/// A scratch run directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("ganlab-bench-{name}-{}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one workload in this process.
pub fn run(workload: &str, p: Protocol) -> Result<Measurement> {
    let scratch = Scratch::new(workload);
    // Each call returns how many items it processed.
    let mut call: Box<dyn FnMut() -> Result<f64>> = match workload {
        "mlp_gan" | "mlp_diffusion_gan" => {
            let mut cfg = TrainConfig::default();
            cfg.diffusion.enabled = workload == "mlp_diffusion_gan";
            cfg.run.steps = 100_000_000;
            let mut t = Trainer::new(cfg, &scratch.0)?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "dcgan32_gan"
        | "dcgan64_gan"
        | "sngan32_gan"
        | "stylegan2_32_step"
        | "diffusion_stylegan2_32_step" => {
            // Batch 64 of RGB images, non-saturating Adam(2e-4, 0.5) for DCGAN (width 64, z
            // 100) at 32 or 64 px; SNGAN 32 px (G 128 / D 128 channels, z 128) with the hinge
            // loss and Adam(2e-4, 0, 0.9), one D step per G step. Data: 1024 fixed random
            // images drawn with replacement. StyleGAN2 32 px at CPU widths (z = w = 128, G
            // mapping 2 layers, 128 channels at every resolution, residual D, mbstd group 4,
            // batch 32), non-saturating loss, Adam(0.0025, 0, 0.99), no R1; the diffusion
            // variant adds Diffusion-GAN's noise (pixel config, T 500) and D's mapping of t
            // (2 layers).
            let size = if workload == "dcgan64_gan" { 64 } else { 32 };
            let mut cfg = TrainConfig::default();
            cfg.data.source = crate::train::DataSource::Idx;
            cfg.diffusion.enabled = false;
            cfg.run.batch_size = 64;
            if workload.ends_with("stylegan2_32_step") {
                cfg.model.family = crate::train::ModelFamily::Stylegan2;
                cfg.model.stylegan2 = crate::models::stylegan2::Stylegan2Config {
                    latent_dim: 128,
                    w_dim: 128,
                    channel_base: 4096,
                    channel_max: 128,
                    d_mapping_layers: 2,
                    mbstd_group: 4,
                    ..Default::default()
                };
                for o in [&mut cfg.optim.g, &mut cfg.optim.d] {
                    o.lr = 0.0025;
                    o.beta1 = 0.0;
                    o.beta2 = 0.99;
                }
                cfg.run.batch_size = 32;
                if workload.starts_with("diffusion") {
                    cfg.diffusion = crate::diffusion::DiffusionConfig {
                        enabled: true,
                        t_max: 500,
                        ..Default::default()
                    };
                }
            } else if workload == "sngan32_gan" {
                cfg.model.family = crate::train::ModelFamily::Sngan;
                cfg.model.sngan.g_width = 128;
                cfg.model.sngan.d_width = 128;
                cfg.objective.kind = crate::objectives::ObjectiveKind::Hinge;
                for o in [&mut cfg.optim.g, &mut cfg.optim.d] {
                    o.beta1 = 0.0;
                    o.beta2 = 0.9;
                }
            } else {
                cfg.model.family = crate::train::ModelFamily::Dcgan;
                cfg.model.dcgan.image_size = size;
                cfg.model.dcgan.channels = 3;
            }
            cfg.run.steps = 100_000_000;
            tch::manual_seed(0);
            let images =
                tch::Tensor::rand([1024, 3, size, size], (tch::Kind::Float, tch::Device::Cpu))
                    * 2.0
                    - 1.0;
            let data = Box::new(crate::data::TensorSampler::new(images)?);
            let task = crate::tasks::gan::GanTask::with_sampler(&cfg, data)?;
            let mut t = Trainer::with_task(cfg, &scratch.0, Box::new(task))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "pix2pix64_step" => {
            // pix2pix at 64 px as in bench/pytorch_ref.py: batch 1, U-Net ngf 64 (6 downs),
            // PatchGAN ndf 64, vanilla loss + 100·L1, Adam 2e-4; 256 random pairs written as
            // aligned PNGs (no crop, no flip).
            let data = scratch.0.join("pairs/train");
            crate::error::IoContext::at(std::fs::create_dir_all(&data), &data)?;
            tch::manual_seed(0);
            for i in 0..256 {
                let ab =
                    tch::Tensor::rand([3, 64, 128], (tch::Kind::Float, tch::Device::Cpu)) * 2 - 1;
                crate::data::write_png(&data.join(format!("{i:03}.png")), &ab)?;
            }
            let mut cfg = TrainConfig::from_toml_str(
                "[task]\nkind = \"pix2pix\"\n[run]\nbatch_size = 1\ndevice = \"cpu\"\n[pix2pix.data]\nload_size = 64\nflip = false\n",
                std::path::Path::new("pix2pix64_step"),
            )?;
            cfg.pix2pix.data.dir = scratch.0.join("pairs");
            cfg.run.steps = 100_000_000;
            let mut t = Trainer::new(cfg, &scratch.0.join("run"))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "cyclegan64_step" | "ugatit64_step" => {
            // CycleGAN / U-GAT-IT at 64 px as in bench/pytorch_ref.py: batch 1, reference
            // widths (ngf = ndf = 64; CycleGAN ResNet-6 and instance-norm PatchGANs; U-GAT-IT
            // light G with 4 blocks, global 6 / local 4 layer Ds), the references' losses and
            // optimizers; 256 random images per domain written as PNGs (no crop, no flip).
            let kind = workload.trim_end_matches("64_step");
            tch::manual_seed(0);
            for side in ["trainA", "trainB"] {
                let d = scratch.0.join("domains").join(side);
                crate::error::IoContext::at(std::fs::create_dir_all(&d), &d)?;
                for i in 0..256 {
                    let x = tch::Tensor::rand([3, 64, 64], (tch::Kind::Float, tch::Device::Cpu))
                        * 2
                        - 1;
                    crate::data::write_png(&d.join(format!("{i:03}.png")), &x)?;
                }
            }
            let widths = if kind == "cyclegan" {
                "[cyclegan.generator]\nngf = 64\nn_blocks = 6\n[cyclegan.discriminator]\nndf = 64\n"
            } else {
                "[ugatit.generator]\nngf = 64\n[ugatit.discriminator]\nndf = 64\n"
            };
            let mut cfg = TrainConfig::from_toml_str(
                &format!("[task]\nkind = \"{kind}\"\n[run]\nbatch_size = 1\ndevice = \"cpu\"\n[{kind}.data]\nload_size = 64\nflip = false\n{widths}"),
                std::path::Path::new(workload),
            )?;
            cfg.cyclegan.data.dir = scratch.0.join("domains");
            cfg.ugatit.data.dir = scratch.0.join("domains");
            cfg.run.steps = 100_000_000;
            let mut t = Trainer::new(cfg, &scratch.0.join("run"))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "autoencoder64_step" | "ddpm_latent_step" => {
            // LaDiffGAN's pretraining as configs/autoencoder-emoji.toml and ddpm-emoji.toml
            // and bench/pytorch_ref.py: 256 random 64 px images; the autoencoder with the FID
            // Inception's blocks as perceptual net (batch 16); the DDPM (batch 64) on the
            // latents of a 1-step autoencoder run of those images (their values do not
            // change the cost).
            tch::manual_seed(0);
            // Domain B is learnt; the unpaired layout needs an A folder too.
            for (side, n) in [("trainA", 2), ("trainB", 256)] {
                let d = scratch.0.join("domains").join(side);
                crate::error::IoContext::at(std::fs::create_dir_all(&d), &d)?;
                for i in 0..n {
                    let x = tch::Tensor::rand([3, 64, 64], (tch::Kind::Float, tch::Device::Cpu))
                        * 2
                        - 1;
                    crate::data::write_png(&d.join(format!("{i:03}.png")), &x)?;
                }
            }
            let data = std::env::var("GANLAB_DATA").unwrap_or_else(|_| "data".into());
            let mut ae = TrainConfig::from_toml_str(
                include_str!("../../../configs/autoencoder-emoji.toml"),
                std::path::Path::new("autoencoder64_step"),
            )?;
            ae.autoencoder.data.dir = scratch.0.join("domains");
            ae.autoencoder.data.load_size = 64;
            ae.autoencoder.data.flip = false;
            ae.autoencoder.perceptual.inception =
                std::path::Path::new(&data).join("inception/default_1.pt");
            ae.run.device = "cpu".into();
            let ae_dir = scratch.0.join("ae");
            if workload == "autoencoder64_step" {
                ae.run.steps = 100_000_000;
                let mut t = Trainer::new(ae, &ae_dir)?;
                Box::new(move || t.train_step().map(|_| 16.0))
            } else {
                ae.run.steps = 1;
                ae.autoencoder.perceptual_weight = 0.0;
                Trainer::new(ae, &ae_dir)?.run(&mut crate::progress::Silent)?;
                let mut dd = TrainConfig::from_toml_str(
                    include_str!("../../../configs/ddpm-emoji.toml"),
                    std::path::Path::new("ddpm_latent_step"),
                )?;
                dd.ddpm.autoencoder = ae_dir;
                dd.ddpm.samples = 0;
                dd.run.device = "cpu".into();
                dd.run.steps = 100_000_000;
                let mut t = Trainer::new(dd, &scratch.0.join("ddpm"))?;
                Box::new(move || t.train_step().map(|_| 64.0))
            }
        }
        "attribute64_step" => {
            // The multi-attribute model as configs/bridgegan-emoji.toml with one D step per G
            // step (bench/pytorch_ref.py): 64 random 64 px images in CelebA's layout with
            // random labels of the config's 8 attributes, batch 8.
            tch::manual_seed(0);
            let img = scratch.0.join("people/images");
            crate::error::IoContext::at(std::fs::create_dir_all(&img), &img)?;
            let mut cfg = TrainConfig::from_toml_str(
                include_str!("../../../configs/bridgegan-emoji.toml"),
                std::path::Path::new("attribute64_step"),
            )?;
            let names = cfg.bridgegan.data.attributes.clone();
            let mut attr = format!("64\n{}\n", names.join(" "));
            let mut part = String::new();
            for i in 0..64 {
                let x =
                    tch::Tensor::rand([3, 64, 64], (tch::Kind::Float, tch::Device::Cpu)) * 2 - 1;
                crate::data::write_png(&img.join(format!("{i:03}.png")), &x)?;
                let v: Vec<&str> = (0..names.len())
                    .map(|j| if (i * 7 + j * 3) % 5 < 2 { "1" } else { "-1" })
                    .collect();
                attr += &format!("{i:03}.png {}\n", v.join(" "));
                part += &format!("{i:03}.png {}\n", if i < 56 { 0 } else { 2 });
            }
            for (f, text) in [("list_attr.txt", attr), ("list_eval_partition.txt", part)] {
                let p = scratch.0.join("people").join(f);
                crate::error::IoContext::at(std::fs::write(&p, text), &p)?;
            }
            cfg.bridgegan.data.dir = scratch.0.join("people");
            cfg.bridgegan.data.exclusive.clear();
            cfg.bridgegan.data.flip = false;
            cfg.bridgegan.n_critic = 1;
            cfg.run.device = "cpu".into();
            cfg.run.steps = 100_000_000;
            let mut t = Trainer::new(cfg, &scratch.0.join("run"))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "projected28_step" | "diffusion_projected28_step" => {
            // Projected GAN at 28 px grey as configs/fashion-projected-diffusion.toml (and
            // bench/pytorch_ref.py): DCGAN G (width 64, z 100), D on the frozen MNIST CNN's two
            // maps (random weights of ccexam's layout: speed, not quality), random frozen
            // CCM/CSM to 64 channels, spectrally normalised mini-Ds of width 64; hinge loss,
            // Adam(2e-4, 0, 0.99), batch 64; the diffusion variant adds the noise on the
            // feature maps (one t per sample and channel). 1024 fixed random images.
            let weights = scratch.0.join("mnist_cnn.safetensors");
            crate::error::IoContext::at(std::fs::create_dir_all(&scratch.0), &scratch.0)?;
            crate::metrics::MnistCnn::write_random(&weights)?;
            let mut cfg = TrainConfig::from_toml_str(
                include_str!("../../../configs/fashion-projected-diffusion.toml"),
                std::path::Path::new(workload),
            )?;
            cfg.model.projected.weights = weights;
            cfg.diffusion.enabled = workload.starts_with("diffusion");
            cfg.run.device = "cpu".into();
            cfg.run.steps = 100_000_000;
            tch::manual_seed(0);
            let images = tch::Tensor::rand([1024, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu))
                * 2.0
                - 1.0;
            let data = Box::new(crate::data::TensorSampler::new(images)?);
            let task = crate::tasks::gan::GanTask::with_sampler(&cfg, data)?;
            let mut t = Trainer::with_task(cfg, &scratch.0.join("run"), Box::new(task))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "simgan28_step" => {
            // One SimGAN step after pre-training as configs/simgan-digits.toml at the paper's
            // width (and bench/pytorch_ref.py): K_g = 2 refiner updates (64 maps, 4 ResNet blocks;
            // local adversarial + 0.16·L1) and one local-D update with the history buffer,
            // batch 64 at 28 px, Adam 1e-4; 256 random images per side as IDX files.
            tch::manual_seed(0);
            for side in ["syn", "real"] {
                let dir = scratch.0.join(side);
                crate::error::IoContext::at(std::fs::create_dir_all(&dir), &dir)?;
                let px: Vec<u8> = Vec::<f32>::try_from(
                    tch::Tensor::rand([256 * 784], (tch::Kind::Float, tch::Device::Cpu)) * 255.0,
                )?
                .into_iter()
                .map(|v| v as u8)
                .collect();
                for prefix in ["train", "t10k"] {
                    let f = dir.join(format!("{prefix}-images-idx3-ubyte"));
                    crate::data::idx::write_idx(&f, &[256, 28, 28], &px)?;
                }
            }
            let mut cfg = TrainConfig::from_toml_str(
                include_str!("../../../configs/simgan-digits.toml"),
                std::path::Path::new("simgan28_step"),
            )?;
            cfg.simgan.data.synthetic = scratch.0.join("syn");
            cfg.simgan.data.real = scratch.0.join("real");
            cfg.simgan.pretrain_refiner = 0;
            cfg.simgan.pretrain_d = 0;
            cfg.simgan.refiner.channels = 64;
            cfg.run.device = "cpu".into();
            cfg.run.steps = 100_000_000;
            let mut t = Trainer::new(cfg, &scratch.0.join("run"))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "gan_int_cls64_step" | "stackgan64_step" => {
            // One step of GAN-INT-CLS as configs/gan-int-cls-emoji.toml, or of StackGAN
            // Stage-I as configs/stackgan-stage1-emoji.toml (and bench/pytorch_ref.py), batch
            // 64 at 64 px on a frozen 128-d text embedding: GAN-INT-CLS's DCGAN G and
            // matching-aware D (ngf = ndf = 32), D on real/right, real/wrong and fake/right, G
            // with the interpolated-text term; Stage-I's CA + G (ngf 256 at 4 px, nearest-
            // upsampling blocks) and D (ndf 32) on (image, μ), KL weight 2; Adam 2e-4 (0.5,
            // 0.999). Data: 256 random training images with two captions each; the embedding
            // is a 1-step text encoder's (its values do not change the cost).
            let (dir, captions, enc_dir) = caption_fixture(&scratch.0)?;
            let mut cfg = if workload == "gan_int_cls64_step" {
                let mut c = TrainConfig::from_toml_str(
                    include_str!("../../../configs/gan-int-cls-emoji.toml"),
                    std::path::Path::new(workload),
                )?;
                c.gan_int_cls.text_encoder = enc_dir;
                c.gan_int_cls.data.dir = dir;
                c.gan_int_cls.data.captions = captions;
                c
            } else {
                let mut c = TrainConfig::from_toml_str(
                    include_str!("../../../configs/stackgan-stage1-emoji.toml"),
                    std::path::Path::new(workload),
                )?;
                c.stackgan.text_encoder = enc_dir;
                c.stackgan.data.dir = dir;
                c.stackgan.data.captions = captions;
                c
            };
            cfg.run.device = "cpu".into();
            cfg.run.steps = 100_000_000;
            let mut t = Trainer::new(cfg, &scratch.0.join("run"))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "stackgan2_128_step" => {
            // One StackGAN Stage-II step as configs/stackgan-stage2-emoji.toml (and
            // bench/pytorch_ref.py), batch 32: a frozen Stage-I G (configs/stackgan-stage1-emoji
            // .toml, one training step, BatchNorm in eval mode, no gradient) draws 64 px images;
            // Stage-II G (its own CA, encoder to 16 × 16 × 128, joint, 4 residual blocks, 3
            // up-blocks, ngf 32) refines them to 128 px; D (ndf 32, 5 down-convs, one back-conv)
            // with conditional and unconditional logits; KL weight 2; Adam 2e-4 (0.5, 0.999).
            let (dir, captions, enc_dir) = caption_fixture(&scratch.0)?;
            let text_cfg = |toml: &str| -> Result<TrainConfig> {
                let mut c = TrainConfig::from_toml_str(toml, std::path::Path::new(workload))?;
                c.stackgan.text_encoder = enc_dir.clone();
                c.stackgan.data.dir = dir.clone();
                c.stackgan.data.captions = captions.clone();
                c.run.device = "cpu".into();
                Ok(c)
            };
            let mut s1 = text_cfg(include_str!("../../../configs/stackgan-stage1-emoji.toml"))?;
            s1.run.steps = 1;
            let s1_dir = scratch.0.join("stage1");
            Trainer::new(s1, &s1_dir)?.run(&mut crate::progress::Silent)?;
            let mut cfg = text_cfg(include_str!("../../../configs/stackgan-stage2-emoji.toml"))?;
            cfg.stackgan.stage1 = s1_dir;
            cfg.run.steps = 100_000_000;
            let mut t = Trainer::new(cfg, &scratch.0.join("run"))?;
            Box::new(move || t.train_step().map(|_| 1.0))
        }
        "diffusion_noise" => {
            // Diffusion-GAN's added cost per minibatch: draw t for 64 RGB 32×32 images and
            // diffuse them, y = √ᾱ_t x + √(1 − ᾱ_t) σ ε, at T = 500 (pixel config).
            let mut d = crate::diffusion::Diffusion::new(
                crate::diffusion::DiffusionConfig {
                    enabled: true,
                    t_min: 500,
                    t_max: 500,
                    sigma: 0.05,
                    ..Default::default()
                },
                0,
            );
            tch::manual_seed(0);
            let x = tch::Tensor::rand([64, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
            Box::new(move || {
                let t = d.sample_t(64);
                let y = d.diffuse(&x, &t)?;
                std::hint::black_box(y.double_value(&[0, 0, 0, 0]));
                Ok(64.0)
            })
        }
        "sample_mlp" => {
            let t = Trainer::new(TrainConfig::default(), &scratch.0)?;
            let n = 65536;
            Box::new(move || {
                let gen = t.task().generative().expect("a GAN run");
                let s = gen.sample(n, 0).sum(tch::Kind::Float).double_value(&[]);
                std::hint::black_box(s);
                Ok(n as f64)
            })
        }
        "inception_features" => {
            // 10 RGB 32×32 images per call (resized to 299 inside, as for CIFAR-sized samples).
            let data = std::env::var_os("GANLAB_DATA")
                .map_or_else(|| PathBuf::from("data"), PathBuf::from);
            let ex = crate::metrics::InceptionFid::load(
                &data.join("inception/default_1.pt"),
                tch::Device::Cpu,
            )?;
            let images = test_images(10, 3, 32, 32);
            Box::new(move || {
                use crate::metrics::FeatureExtractor;
                let (f, _) = ex.extract(&images)?;
                let _ = std::hint::black_box(f);
                Ok(10.0)
            })
        }
        other => {
            return Err(GanError::Input(format!(
                "unknown workload {other:?}; known: {}",
                WORKLOADS.join(", ")
            )))
        }
    };
    for _ in 0..p.warmup {
        call()?;
    }
    let mut rates = Vec::with_capacity(p.repeats);
    for _ in 0..p.repeats {
        let t0 = Instant::now();
        let mut items = 0.0;
        for _ in 0..p.iters {
            items += call()?;
        }
        rates.push(items / t0.elapsed().as_secs_f64());
    }
    Ok(Measurement {
        workload: workload.to_string(),
        rates,
        peak_rss_kb: peak_rss_kb(),
        threads: tch::get_num_threads() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_tiny_run() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let _rng = crate::test_rng_lock();
        let p = Protocol {
            warmup: 1,
            iters: 2,
            repeats: 3,
        };
        let m = run("mlp_diffusion_gan", p).unwrap();
        assert_eq!(m.rates.len(), 3);
        assert!(m.rates.iter().all(|r| r.is_finite() && *r > 0.0));
        assert!(run("nope", p).is_err());
    }
}
