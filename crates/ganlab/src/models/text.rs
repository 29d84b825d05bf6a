//! The joint text–image embedding of Reed et al. (CVPR 2016, "Learning Deep Representations
//! of Fine-Grained Visual Descriptions": DS-SJE), which GAN-INT-CLS and StackGAN condition on
//! (gan-lecture.txt "Text-to-image synthesis"):
//!
//! - **text**: a character-level CNN-RNN as DS-SJE's char-CNN-RNN: characters
//!   ([`crate::data::captions::encode`]) → embedding (32) → conv1d 3 (w) + ReLU → conv1d 3
//!   (w) + ReLU → max-pool 2 → conv1d 3 (w) + ReLU → a GRU (w) over the pooled sequence →
//!   the mean of its hidden states over the caption's length (as char-CNN-RNN averages the
//!   RNN's outputs) → linear → `dim`. Reed et al. use three conv layers with pooling and
//!   1,024-d embeddings on 201 characters; we keep the structure at CPU widths.
//! - **image**: Reed et al. use a frozen GoogLeNet; no registry ships one, so a small CNN is
//!   learnt jointly (reconstructed): conv 4×4/2 (w, 2w, 4w, 8w) with LeakyReLU 0.2 down to
//!   4 × 4 at 64 px, global average pooling, linear → `dim`.
//!
//! The compatibility of an image and a caption is the inner product of their embeddings
//! (DS-SJE's F(v, t) = θ(v)ᵀ φ(t), no normalisation).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

use crate::error::{GanError, Result};

/// `[text_encoder.net]`: widths of both encoders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextNetConfig {
    /// Joint embedding dimension (Reed et al.: 1,024).
    pub dim: i64,
    /// Channels of the text CNN and hidden units of its GRU.
    pub text_width: i64,
    /// First width of the image CNN.
    pub image_width: i64,
    /// Characters read per caption (longer captions are cut).
    pub max_len: i64,
}

impl Default for TextNetConfig {
    fn default() -> Self {
        Self {
            dim: 128,
            text_width: 128,
            image_width: 32,
            max_len: 64,
        }
    }
}

impl TextNetConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (f, v, lo, hi) in [
            ("dim", self.dim, 2, 4096),
            ("text_width", self.text_width, 2, 2048),
            ("image_width", self.image_width, 1, 512),
            ("max_len", self.max_len, 4, 1024),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [{lo}, {hi}], got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// The character CNN-RNN (module docs).
#[derive(Debug)]
pub struct CharEncoder {
    embed: nn::Embedding,
    convs: [nn::Conv1D; 3],
    gru: nn::GRU,
    out: nn::Linear,
}

impl CharEncoder {
    /// The encoder under `p`.
    pub fn new(p: nn::Path, cfg: &TextNetConfig) -> Self {
        let w = cfg.text_width;
        let c = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Self {
            embed: nn::embedding(
                &p / "embed",
                crate::data::captions::vocab_size(),
                32,
                Default::default(),
            ),
            convs: [
                nn::conv1d(&p / "conv0", 32, w, 3, c),
                nn::conv1d(&p / "conv1", w, w, 3, c),
                nn::conv1d(&p / "conv2", w, w, 3, c),
            ],
            gru: nn::gru(&p / "gru", w, w, Default::default()),
            out: nn::linear(&p / "out", w, cfg.dim, Default::default()),
        }
    }

    /// Embeddings [n, dim] of token rows [n, len] (0 = padding).
    pub fn forward(&self, tokens: &Tensor) -> Tensor {
        let mask = tokens.ne(0).to_kind(Kind::Float).unsqueeze(1); // [n, 1, L]
        let x = self.embed.forward(tokens).transpose(1, 2); // [n, 32, L]
        let x = self.convs[0].forward(&x).relu();
        let x = self.convs[1]
            .forward(&x)
            .relu()
            .max_pool1d([2], [2], [0], [1], false);
        let mask = mask.max_pool1d([2], [2], [0], [1], false); // a pooled step is valid if any of its characters is
        let x = self.convs[2].forward(&x).relu();
        let (h, _) = self.gru.seq(&x.transpose(1, 2)); // [n, L/2, w]
        let m = mask.transpose(1, 2); // [n, L/2, 1]
        let mean = (h * &m).sum_dim_intlist(1, false, Kind::Float)
            / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
        self.out.forward(&mean)
    }
}

/// The image CNN (module docs).
#[derive(Debug)]
pub struct ImageEncoder {
    convs: Vec<nn::Conv2D>,
    out: nn::Linear,
}

impl ImageEncoder {
    /// The encoder of 3-channel images under `p`.
    pub fn new(p: nn::Path, cfg: &TextNetConfig) -> Self {
        let w = cfg.image_width;
        let c = nn::ConvConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
        let widths = [3, w, 2 * w, 4 * w, 8 * w];
        Self {
            convs: (0..4)
                .map(|i| nn::conv2d(&p / format!("conv{i}"), widths[i], widths[i + 1], 4, c))
                .collect(),
            out: nn::linear(&p / "out", 8 * w, cfg.dim, Default::default()),
        }
    }

    /// Embeddings [n, dim] of images [n, 3, s, s] in [−1, 1].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let act = crate::nn::LeakyRelu::new(0.2);
        let mut h = x.shallow_clone();
        for c in &self.convs {
            h = act.forward(&c.forward(&h));
        }
        self.out
            .forward(&h.mean_dim(&[2i64, 3][..], false, Kind::Float))
    }
}

/// DS-SJE's symmetric hinge over a batch of matching pairs (image i ↔ caption i): with
/// S = V Tᵀ, the mean over i and j ≠ i of max(0, margin + S_ij − S_ii) (captions ranked for
/// each image) plus the mean of max(0, margin + S_ji − S_ii) (images ranked for each caption).
pub fn matching_loss(v: &Tensor, t: &Tensor, margin: f64) -> Tensor {
    let n = v.size()[0];
    let s = v.matmul(&t.tr());
    let diag = s.diagonal(0, 0, 1);
    let off =
        Tensor::ones([n, n], (Kind::Float, s.device())) - Tensor::eye(n, (Kind::Float, s.device()));
    let per_image = (&s - diag.unsqueeze(1) + margin).relu() * &off;
    let per_caption = (&s - diag.unsqueeze(0) + margin).relu() * &off;
    let pairs = (n * (n - 1)).max(1) as f64;
    (per_image.sum(Kind::Float) + per_caption.sum(Kind::Float)) / pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The hinge on hand-computed scores: V = I₂, T = [[1, 0], [2, 0]] gives S = [[1, 2],
    /// [0, 0]]: image 0 ranks caption 1 above its own (1 + 2 − 1 = 2), image 1 none
    /// (1 + 0 − 0 = 1, not above: counted 1); caption 0 vs image 1: 1 + 0 − 1 = 0, caption 1
    /// vs image 0: 1 + 2 − 0 = 3. Sum (2 + 1) + (0 + 3) = 6 over 2 pairs = 3. Shapes of
    /// both encoders; padding does not change a caption's embedding.
    #[test]
    fn loss_and_shapes() {
        let _rng = crate::test_rng_lock();
        let v = Tensor::eye(2, (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[1f32, 0., 2., 0.]).view([2, 2]);
        assert!((matching_loss(&v, &t, 1.0).double_value(&[]) - 3.0).abs() < 1e-6);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = TextNetConfig {
            dim: 16,
            text_width: 8,
            image_width: 4,
            max_len: 16,
        };
        let te = CharEncoder::new(vs.root() / "t", &cfg);
        let ie = ImageEncoder::new(vs.root() / "i", &cfg);
        assert_eq!(
            ie.forward(&Tensor::zeros([3, 3, 64, 64], (Kind::Float, Device::Cpu)))
                .size(),
            vec![3, 16]
        );
        let a = te.forward(&crate::data::captions::encode_batch(&["red apple"], 16));
        let b = te.forward(&crate::data::captions::encode_batch(&["red apple"], 32));
        assert_eq!(a.size(), vec![1, 16]);
        assert!(
            (a - b).abs().max().double_value(&[]) < 1e-5,
            "padding leaks into the embedding"
        );
    }
}
