//! Conditions c of the refinement target p(x|c) ∝ p_data(x)·p(c|x): their log-likelihoods
//! log p(c|x) per sample, as the seed's applications use them.
//!
//! - Class label k: log p(k|x) = log softmax(classifier(x))ₖ. Image runs use a classifier
//!   network (the ccexam MNIST CNN); 2-D runs use the soft nearest-mode classifier
//!   logitsₖ(x) = −‖x − μₖ‖²/(2τ²) over the set's mode centres μₖ (τ = 1, half the
//!   25-Gaussians spacing, so one mode dominates near its centre).
//! - Inpainting (known pixels x* under mask m, 1 = known): a Gaussian observation model,
//!   log p(c|x) = −mean_{m=1}(x − x*)²/(2σ²). The mean over known pixels (rather than the
//!   sum) keeps one σ meaningful at every resolution and mask size.

use tch::{Kind, Tensor};

use crate::error::{GanError, Result};

/// A condition as given on the command line or in a config.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Unconditional improvement.
    None,
    /// Class label.
    Class(i64),
    /// Inpaint image `index` of the run's data (test split where the format has one) with
    /// the named mask.
    Inpaint {
        /// Which image.
        index: i64,
        /// Which pixels are known.
        mask: MaskKind,
    },
}

/// Known-pixel masks for inpainting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// Top half known (complete the bottom).
    TopHalf,
    /// Left half known.
    LeftHalf,
    /// Everything known but a centred square of half the side.
    Centre,
}

impl Condition {
    /// Parses `none`, `class:K` or `inpaint:I[:top|left|centre]`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            GanError::config(
                "--condition",
                format!("{why}; expected none, class:K or inpaint:I[:top|left|centre], got {s:?}"),
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["none"] => Ok(Self::None),
            ["class", k] => {
                let k: i64 = k.parse().map_err(|_| bad("K must be an integer"))?;
                if k < 0 {
                    return Err(bad("K must be ≥ 0"));
                }
                Ok(Self::Class(k))
            }
            ["inpaint", i, rest @ ..] => {
                let index: i64 = i.parse().map_err(|_| bad("I must be an integer"))?;
                if index < 0 {
                    return Err(bad("I must be ≥ 0"));
                }
                let mask = match rest {
                    [] | ["top"] => MaskKind::TopHalf,
                    ["left"] => MaskKind::LeftHalf,
                    ["centre"] | ["center"] => MaskKind::Centre,
                    _ => return Err(bad("unknown mask")),
                };
                Ok(Self::Inpaint { index, mask })
            }
            _ => Err(bad("unknown condition")),
        }
    }
}

impl MaskKind {
    /// The mask [1, C, H, W] (1 = known) for images of `shape` [.., C, H, W].
    pub fn build(self, shape: &[i64], device: tch::Device) -> Tensor {
        let (c, h, w) = (
            shape[shape.len() - 3],
            shape[shape.len() - 2],
            shape[shape.len() - 1],
        );
        let m = Tensor::ones([1, c, h, w], (Kind::Float, device));
        let _ = match self {
            MaskKind::TopHalf => m.narrow(2, h / 2, h - h / 2).fill_(0.0),
            MaskKind::LeftHalf => m.narrow(3, w / 2, w - w / 2).fill_(0.0),
            MaskKind::Centre => m.narrow(2, h / 4, h / 2).narrow(3, w / 4, w / 2).fill_(0.0),
        };
        m
    }
}

/// log p(label|x) from class logits [n, K].
pub fn class_log_prob(logits: &Tensor, label: i64) -> Result<Tensor> {
    let k = logits.size()[1];
    if !(0..k).contains(&label) {
        return Err(GanError::config(
            "--condition",
            format!("class must be in [0, {}], got {label}", k - 1),
        ));
    }
    Ok(logits.log_softmax(1, Kind::Float).select(1, label))
}

/// Nearest-mode logits [n, K] of 2-D points `x` [n, 2]: −‖x − μₖ‖²/(2τ²).
pub fn mode_logits(x: &Tensor, centres: &[[f64; 2]], tau: f64) -> Tensor {
    let flat: Vec<f32> = centres.iter().flatten().map(|v| *v as f32).collect();
    let mu = Tensor::from_slice(&flat)
        .view([-1, 2])
        .to_device(x.device());
    let d2 = (x.unsqueeze(1) - mu.unsqueeze(0))
        .square()
        .sum_dim_intlist(2, false, Kind::Float);
    d2 / (-2.0 * tau * tau)
}

/// −mean over known pixels of (x − known)²/(2σ²), per sample [n].
pub fn inpaint_log_lik(x: &Tensor, known: &Tensor, mask: &Tensor, sigma: f64) -> Tensor {
    let n_known = mask.sum(Kind::Float).double_value(&[]).max(1.0);
    ((x - known).square() * mask)
        .flatten(1, -1)
        .sum_dim_intlist(1, false, Kind::Float)
        / (-2.0 * sigma * sigma * n_known)
}

/// Mean squared error over known pixels per sample [n] (the inpainting quality report).
pub fn known_pixel_mse(x: &Tensor, known: &Tensor, mask: &Tensor) -> Tensor {
    inpaint_log_lik(x, known, mask, 0.5_f64.sqrt()) * -1.0
}
