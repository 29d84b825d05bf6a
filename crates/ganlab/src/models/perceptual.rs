//! Frozen feature networks for perceptual losses (LaDiffGAN supplement eq. S3: L1 between
//! hierarchical features of an image and its reconstruction, summed over 4 scales).
//!
//! - [`Vgg19`]: the paper's network, from a **user-provided** weights file in torchvision's
//!   state-dict layout (`features.{0,2,5,…,34}.weight|bias`, e.g. `vgg19-dcbb9e9d.pth` as
//!   `torch.save` writes it, or the same names in a `.safetensors` file). No package registry
//!   ships VGG-19 ImageNet weights (../shared/DATA.md), so ganlab cannot fetch them. The
//!   converter is [`Vgg19::load`] itself: it reads torchvision's names, infers every width
//!   from the weights, and maps them onto the layers below.
//! - [`InceptionBlocks`] (the default): the first blocks of the FID Inception-v3 we ship
//!   (`scripts/fetch-data inception`). Its TorchScript weights are read by name and the blocks
//!   are run here, so every intermediate feature map is reachable.
//!
//! **The 4 scales (reconstruction).** S3 sums over j = 1..4 scales and l = 1..L layers
//! without naming them. We take one feature map at the end of each of the network's first
//! four resolution stages:
//! - VGG-19: relu1_2, relu2_2, relu3_4, relu4_4, at 1, 1/2, 1/4 and 1/8 of the input;
//!   Johnson et al. [3] of the supplement use the same kind of layers.
//! - Inception: after Conv2d_2b (64 ch, /2), Conv2d_4a (192 ch, /4), Mixed_5d (288 ch, /8)
//!   and Mixed_6a (768 ch, /16).
//!
//! The loss is Σ_levels mean |f(x) − f(x̂)|. Images are bilinearly resized to `input_size`
//! first. The Inception stem has no padding and loses 33 pixels before its second
//! stride-2 stage, so 64-pixel images are upsampled; 128 is the default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{GanError, Result};

/// Which network the perceptual loss uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerceptualKind {
    /// The FID Inception's intermediate blocks (shipped: `scripts/fetch-data inception`).
    #[default]
    Inception,
    /// VGG-19 from `vgg19_weights` (torchvision layout), the supplement's choice.
    Vgg19,
    /// No perceptual term (L1 only).
    None,
}

/// `[<task>.perceptual]`: the perceptual loss's network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerceptualConfig {
    /// inception (default), vgg19 or none.
    pub net: PerceptualKind,
    /// The FID Inception's TorchScript file.
    pub inception: PathBuf,
    /// A VGG-19 ImageNet state dict in torchvision's layout (e.g. `vgg19-dcbb9e9d.pth`), for
    /// `net = "vgg19"`.
    pub vgg19_weights: PathBuf,
    /// Side images are resized to before the network (default 128: see module docs).
    pub input_size: i64,
}

impl Default for PerceptualConfig {
    fn default() -> Self {
        Self {
            net: PerceptualKind::Inception,
            inception: "data/inception/default_1.pt".into(),
            vgg19_weights: "".into(),
            input_size: 128,
        }
    }
}

impl PerceptualConfig {
    /// Checks every field (files are checked when loaded).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(32..=512).contains(&self.input_size) {
            return Err(GanError::config(
                format!("{prefix}.input_size"),
                format!("must be in [32, 512], got {}", self.input_size),
            ));
        }
        if self.net == PerceptualKind::Vgg19 && self.vgg19_weights.as_os_str().is_empty() {
            return Err(GanError::config(
                format!("{prefix}.vgg19_weights"),
                "net = \"vgg19\" needs a torchvision VGG-19 state dict (no registry ships one)"
                    .to_string(),
            ));
        }
        if self.net == PerceptualKind::Inception && self.input_size < 75 {
            return Err(GanError::config(
                format!("{prefix}.input_size"),
                format!(
                    "the Inception blocks need at least 75 px, got {}",
                    self.input_size
                ),
            ));
        }
        Ok(())
    }

    /// The network (None for `none`).
    pub fn build(&self, device: Device) -> Result<Option<Box<dyn PerceptualNet>>> {
        Ok(match self.net {
            PerceptualKind::Inception => Some(Box::new(InceptionBlocks::load(
                &self.inception,
                self.input_size,
                device,
            )?)),
            PerceptualKind::Vgg19 => Some(Box::new(Vgg19::load(
                &self.vgg19_weights,
                self.input_size,
                device,
            )?)),
            PerceptualKind::None => None,
        })
    }
}

/// A frozen network giving feature maps at 4 scales.
pub trait PerceptualNet: std::fmt::Debug {
    /// What it is, as the run's report names it.
    fn describe(&self) -> String;
    /// Feature maps of images [n, 1 or 3, H, W] in [−1, 1] (differentiable in the images).
    fn features(&self, x: &Tensor) -> Vec<Tensor>;

    /// Σ over the 4 scales of mean |f(x) − f(y)|.
    fn loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let n = x.size()[0];
        let f = self.features(&Tensor::cat(&[x, y], 0));
        let mut total = Tensor::zeros([], (Kind::Float, x.device()));
        for l in &f {
            total += (l.narrow(0, 0, n) - l.narrow(0, n, n))
                .abs()
                .mean(Kind::Float);
        }
        total
    }
}

/// Reads a weights file of named tensors: `.safetensors`, or a `torch.save` zip (state dict).
fn read_named(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(GanError::Input(format!("{}: no such file", path.display())));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let named = if ext == "safetensors" {
        Tensor::read_safetensors(path)
    } else {
        Tensor::loadz_multi(path)
    }
    .map_err(|e| {
        GanError::Input(format!(
            "{}: not a safetensors file or a torch.save state dict ({e})",
            path.display()
        ))
    })?;
    Ok(named.into_iter().collect())
}

/// Grey → RGB, resized to `size` (bilinear, align_corners false).
fn rgb_at(x: &Tensor, size: i64) -> Tensor {
    let x = if x.size()[1] == 1 {
        x.repeat([1, 3, 1, 1])
    } else {
        x.shallow_clone()
    };
    let s = x.size();
    if s[2] == size && s[3] == size {
        x
    } else {
        x.upsample_bilinear2d([size, size], false, None, None)
    }
}

/// torchvision's VGG-19 `features` indices of the 16 convolutions, and the index after which
/// each of the 4 levels is taken (relu1_2, relu2_2, relu3_4, relu4_4).
const VGG_CONVS: [usize; 16] = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34];
const VGG_POOLS: [usize; 4] = [4, 9, 18, 27];
const VGG_LEVELS: [usize; 4] = [3, 8, 17, 26];

/// VGG-19's first 27 feature layers from a torchvision state dict (see module docs).
#[derive(Debug)]
pub struct Vgg19 {
    /// (index in `features`, weight, bias) of each convolution up to relu4_4.
    convs: Vec<(usize, Tensor, Tensor)>,
    size: i64,
    source: String,
}

impl Vgg19 {
    /// Loads `features.N.weight|bias` from `path` onto `device`; images are resized to
    /// `input_size` (torchvision's ImageNet normalisation is applied after mapping [−1, 1]
    /// to [0, 1]).
    pub fn load(path: &Path, input_size: i64, device: Device) -> Result<Self> {
        let named = read_named(path)?;
        let mut convs = Vec::new();
        let mut prev: Option<i64> = Some(3);
        for &i in VGG_CONVS.iter().take_while(|i| **i < VGG_LEVELS[3]) {
            let get = |v: &str| {
                named.get(&format!("features.{i}.{v}")).ok_or_else(|| {
                    GanError::Input(format!(
                        "{}: no features.{i}.{v}: not a torchvision VGG-19 state dict",
                        path.display()
                    ))
                })
            };
            let (w, b) = (get("weight")?, get("bias")?);
            let ws = w.size();
            if ws.len() != 4 || ws[2..] != [3, 3] || b.size() != [ws[0]] || prev != Some(ws[1]) {
                return Err(GanError::Input(format!(
                    "{}: features.{i}.weight has shape {ws:?}, bias {:?}: not VGG-19's 3×3 convolution chain",
                    path.display(),
                    b.size()
                )));
            }
            prev = Some(ws[0]);
            let f = |t: &Tensor| t.to_kind(Kind::Float).to_device(device).detach();
            convs.push((i, f(w), f(b)));
        }
        Ok(Self {
            convs,
            size: input_size,
            source: path.display().to_string(),
        })
    }
}

impl PerceptualNet for Vgg19 {
    fn describe(&self) -> String {
        format!(
            "VGG-19 (relu1_2, relu2_2, relu3_4, relu4_4) from {}, input {} px",
            self.source, self.size
        )
    }

    fn features(&self, x: &Tensor) -> Vec<Tensor> {
        let opts = (Kind::Float, x.device());
        let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).to_device(opts.1);
        let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).to_device(opts.1);
        let x = rgb_at(x, self.size);
        let mut h = ((x + 1.0) * 0.5 - mean.view([1, 3, 1, 1])) / std.view([1, 3, 1, 1]);
        let mut out = Vec::new();
        let mut convs = self.convs.iter().peekable();
        for i in 0..=VGG_LEVELS[3] {
            if let Some((j, w, b)) = convs.peek() {
                if *j == i {
                    h = h.conv2d(w, Some(b), [1, 1], [1, 1], [1, 1], 1).relu();
                    convs.next();
                }
            }
            if VGG_POOLS.contains(&i) {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            if VGG_LEVELS.contains(&(i)) {
                out.push(h.shallow_clone());
            }
        }
        out
    }
}

/// One of the FID Inception's conv + batch-norm (no γ, eps 1e-3) + ReLU layers.
#[derive(Debug)]
struct ConvBn {
    w: Tensor,
    beta: Tensor,
    mean: Tensor,
    var: Tensor,
    stride: i64,
    pad: [i64; 2],
}

impl ConvBn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = x.conv2d::<&Tensor>(&self.w, None, [self.stride; 2], self.pad, [1, 1], 1);
        let scale = (&self.var + 1e-3).rsqrt();
        ((h - self.mean.view([1, -1, 1, 1])) * scale.view([1, -1, 1, 1])
            + self.beta.view([1, -1, 1, 1]))
        .relu()
    }
}

/// The FID Inception-v3's stem, Mixed_5b–5d and Mixed_6a (see module docs).
#[derive(Debug)]
pub struct InceptionBlocks {
    layers: HashMap<String, ConvBn>,
    size: i64,
    source: String,
}

impl InceptionBlocks {
    /// Reads the weights of `default_1.pt` (`scripts/fetch-data inception`) onto `device`.
    pub fn load(path: &Path, input_size: i64, device: Device) -> Result<Self> {
        if !path.is_file() {
            return Err(GanError::Input(format!(
                "{} not found: run scripts/fetch-data inception (or give a VGG-19 weights file)",
                path.display()
            )));
        }
        let module = tch::CModule::load_on_device(path, device).map_err(|e| {
            GanError::Input(format!("{}: not a TorchScript file ({e})", path.display()))
        })?;
        let named: HashMap<String, Tensor> = module
            .named_parameters()
            .map_err(|e| GanError::Input(format!("{}: {e}", path.display())))?
            .into_iter()
            .collect();
        let mut layers = HashMap::new();
        // (name under net.layers, stride, padding): the TorchScript's attributes.
        for (name, stride, pad) in Self::LAYERS {
            let get = |v: &str| {
                named
                    .get(&format!("net.layers.{name}.{v}"))
                    .map(|t| t.detach().to_kind(Kind::Float))
                    .ok_or_else(|| {
                        GanError::Input(format!(
                            "{}: no net.layers.{name}.{v}: not the FID Inception",
                            path.display()
                        ))
                    })
            };
            layers.insert(
                name.to_string(),
                ConvBn {
                    w: get("weight")?,
                    beta: get("beta")?,
                    mean: get("mean")?,
                    var: get("var")?,
                    stride: *stride,
                    pad: *pad,
                },
            );
        }
        Ok(Self {
            layers,
            size: input_size,
            source: path.display().to_string(),
        })
    }

    /// Every conv layer used, with stride and padding (read from the TorchScript's code).
    const LAYERS: &'static [(&'static str, i64, [i64; 2])] = &[
        ("conv", 2, [0, 0]),
        ("conv_1", 1, [0, 0]),
        ("conv_2", 1, [1, 1]),
        ("conv_3", 1, [0, 0]),
        ("conv_4", 1, [0, 0]),
        ("mixed.conv", 1, [0, 0]),
        ("mixed.tower.conv", 1, [0, 0]),
        ("mixed.tower.conv_1", 1, [2, 2]),
        ("mixed.tower_1.conv", 1, [0, 0]),
        ("mixed.tower_1.conv_1", 1, [1, 1]),
        ("mixed.tower_1.conv_2", 1, [1, 1]),
        ("mixed.tower_2.conv", 1, [0, 0]),
        ("mixed_1.conv", 1, [0, 0]),
        ("mixed_1.tower.conv", 1, [0, 0]),
        ("mixed_1.tower.conv_1", 1, [2, 2]),
        ("mixed_1.tower_1.conv", 1, [0, 0]),
        ("mixed_1.tower_1.conv_1", 1, [1, 1]),
        ("mixed_1.tower_1.conv_2", 1, [1, 1]),
        ("mixed_1.tower_2.conv", 1, [0, 0]),
        ("mixed_2.conv", 1, [0, 0]),
        ("mixed_2.tower.conv", 1, [0, 0]),
        ("mixed_2.tower.conv_1", 1, [2, 2]),
        ("mixed_2.tower_1.conv", 1, [0, 0]),
        ("mixed_2.tower_1.conv_1", 1, [1, 1]),
        ("mixed_2.tower_1.conv_2", 1, [1, 1]),
        ("mixed_2.tower_2.conv", 1, [0, 0]),
        ("mixed_3.conv", 2, [0, 0]),
        ("mixed_3.tower.conv", 1, [0, 0]),
        ("mixed_3.tower.conv_1", 1, [1, 1]),
        ("mixed_3.tower.conv_2", 2, [0, 0]),
    ];

    fn layer(&self, name: &str, x: &Tensor) -> Tensor {
        self.layers[name].forward(x)
    }

    /// InceptionA (Mixed_5b–5d): 1×1 | 1×1 → 5×5 | 1×1 → 3×3 → 3×3 | avg-pool → 1×1.
    fn mixed_a(&self, p: &str, x: &Tensor) -> Tensor {
        let l = |n: &str, x: &Tensor| self.layer(&format!("{p}.{n}"), x);
        let a = l("conv", x);
        let b = l("tower.conv_1", &l("tower.conv", x));
        let c = l(
            "tower_1.conv_2",
            &l("tower_1.conv_1", &l("tower_1.conv", x)),
        );
        let pooled = x.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None);
        let d = l("tower_2.conv", &pooled);
        Tensor::cat(&[a, b, c, d], 1)
    }
}

impl PerceptualNet for InceptionBlocks {
    fn describe(&self) -> String {
        format!(
            "FID Inception-v3 blocks (Conv2d_2b, Conv2d_4a, Mixed_5d, Mixed_6a) from {}, input {} px",
            self.source, self.size
        )
    }

    fn features(&self, x: &Tensor) -> Vec<Tensor> {
        // [−1, 1] → the TF range x/128 − 1 of 8-bit values (without rounding: differentiable).
        let x = (rgb_at(x, self.size) + 1.0) * (127.5 / 128.0) - 1.0;
        let pool = |h: &Tensor| h.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
        let l1 = self.layer("conv_2", &self.layer("conv_1", &self.layer("conv", &x)));
        let l2 = self.layer("conv_4", &self.layer("conv_3", &pool(&l1)));
        let mut h = pool(&l2);
        for p in ["mixed", "mixed_1", "mixed_2"] {
            h = self.mixed_a(p, &h);
        }
        let l3 = h;
        let a = self.layer("mixed_3.conv", &l3);
        let b = self.layer(
            "mixed_3.tower.conv_2",
            &self.layer(
                "mixed_3.tower.conv_1",
                &self.layer("mixed_3.tower.conv", &l3),
            ),
        );
        let l4 = Tensor::cat(&[a, b, pool(&l3)], 1);
        vec![l1, l2, l3, l4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Our features against PyTorch's (tests/fixtures/perceptual_reference.py): per level,
    /// shape, mean, mean |·| and the first 8 values; relative tolerance 1e-4 (float32
    /// convolutions in a different order).
    fn check(net: &dyn PerceptualNet, key: &str) {
        let fx = repo().join("tests/fixtures");
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fx.join("perceptual_reference.json")).unwrap(),
        )
        .unwrap();
        let input = Tensor::loadz_multi(fx.join("perceptual_input.pt")).unwrap();
        let x = &input.iter().find(|(n, _)| n == "x").unwrap().1;
        let got = net.features(x);
        let levels = want[key].as_array().unwrap();
        assert_eq!(got.len(), levels.len());
        for (i, (g, w)) in got.iter().zip(levels).enumerate() {
            let shape: Vec<i64> = serde_json::from_value(w["shape"].clone()).unwrap();
            assert_eq!(g.size(), shape, "{key} level {i}");
            let close = |a: f64, b: f64, what: &str| {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1e-2),
                    "{key} level {i} {what}: {a} vs {b}"
                );
            };
            close(
                g.mean(Kind::Float).double_value(&[]),
                w["mean"].as_f64().unwrap(),
                "mean",
            );
            close(
                g.abs().mean(Kind::Float).double_value(&[]),
                w["mean_abs"].as_f64().unwrap(),
                "mean_abs",
            );
            let first = g.flatten(0, -1).narrow(0, 0, 8);
            for (j, v) in w["first"].as_array().unwrap().iter().enumerate() {
                close(
                    first.double_value(&[j as i64]),
                    v.as_f64().unwrap(),
                    "value",
                );
            }
        }
    }

    #[test]
    fn vgg19_from_torchvision_layout_matches_pytorch() {
        let _rng = crate::test_rng_lock();
        // A narrow VGG-19 (widths /32) with random weights, saved by torch.save in
        // torchvision's state-dict layout.
        let path = repo().join("tests/fixtures/vgg19_narrow.pth");
        let net = Vgg19::load(&path, 64, Device::Cpu).unwrap();
        check(&net, "vgg19");
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let l = net.loss(&x, &x);
        assert_eq!(l.double_value(&[]), 0.0);
        // Wrong files are clear errors.
        let err = Vgg19::load(
            &repo().join("tests/fixtures/perceptual_input.pt"),
            64,
            Device::Cpu,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("features.0.weight"), "{err}");
        let err = Vgg19::load(Path::new("/nonexistent.pth"), 64, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn inception_blocks_match_pytorch() {
        let path = repo().join("data/inception/default_1.pt");
        if !path.is_file() {
            eprintln!("skipped: scripts/fetch-data inception");
            return;
        }
        let net = InceptionBlocks::load(&path, 128, Device::Cpu).unwrap();
        check(&net, "inception");
    }
}
