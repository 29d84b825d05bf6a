//! Generator and discriminator families. Each family is a config with `init` and a
//! generator and discriminator implementing [`Generator`] and [`Discriminator`], so the
//! trainer runs any of them unchanged.

pub mod autoencoder;
pub mod bridgegan;
mod bridgegan_blocks;
pub mod conditional;
pub mod dcgan;
pub mod latent_unet;
pub mod mlp;
pub mod patchgan;
pub mod perceptual;
pub mod projected;
pub mod resnet;
pub mod simgan;
pub mod sngan;
pub mod stackgan;
pub mod stargan;
pub mod stylegan2;
pub mod text;
pub mod text2image;
pub mod ugatit;
pub mod unet;

use tch::Tensor;

/// G(z[, c]) → x.
pub trait Generator: std::fmt::Debug {
    /// Maps latent codes [n, latent_dim] to samples [n, ...].
    fn forward(&self, z: &Tensor) -> Tensor;
    /// Dimension of z.
    fn latent_dim(&self) -> i64;
    /// G(z, c) for class labels `c` [n] (Int64); unconditional models ignore them.
    fn forward_c(&self, z: &Tensor, c: Option<&Tensor>) -> Tensor {
        let _ = c;
        self.forward(z)
    }
    /// Number of classes of a class-conditional G (0: unconditional).
    fn num_classes(&self) -> i64 {
        0
    }
}

/// D(y, t[, c]) → one raw score per sample ([n, 1]).
pub trait Discriminator: std::fmt::Debug {
    /// Scores samples `y` [n, ...] at diffusion steps `t` [n] (Int64; 0 = clean).
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor;
    /// The activations the output layer reads ([n, F]): D's learned features, used e.g. as
    /// the kernel features of latent refinement (`crate::refine`).
    fn features(&self, y: &Tensor, t: &Tensor) -> Tensor;
    /// Size F of [`Discriminator::features`].
    fn feature_dim(&self) -> i64;
    /// The score and the features in one pass (the score is a linear head on the features).
    fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor);
    /// D(y, t, c) for class labels `c` [n]; unconditional models ignore them.
    fn forward_c(&self, y: &Tensor, t: &Tensor, c: Option<&Tensor>) -> Tensor {
        let _ = c;
        self.forward(y, t)
    }
    /// The frozen-feature split of a projected discriminator (Diffusion ProjectedGAN), so the
    /// diffusion noise goes on its feature maps; None for discriminators on pixels.
    fn projection(&self) -> Option<&dyn projected::Projection> {
        None
    }
    /// True when each sample's score depends on that sample alone (no batch statistics),
    /// so the trainer may score real and fake samples in one forward pass.
    fn batch_independent(&self) -> bool {
        false
    }
}

/// (s0, n): the side an image generator starts from and its number of ×2 upsamplings, for
/// the supported image sizes 28 (7, 2), 32 (4, 3) and 64 (4, 4).
pub fn image_plan(image_size: i64) -> (i64, u32) {
    match image_size {
        28 => (7, 2),
        32 => (4, 3),
        _ => (4, 4),
    }
}

/// The most parameters one network may have (2^28, 1 GiB of f32 weights; with Adam's two
/// moments and an EMA, 4 GiB). Configs whose widths imply more are refused before anything
/// is allocated.
pub const MAX_PARAMS: i64 = 1 << 28;

/// Checks the image fields shared by the image families: size 28, 32 or 64, 1 or 3 channels.
pub fn validate_image(prefix: &str, image_size: i64, channels: i64) -> crate::error::Result<()> {
    let err = |f: &str, m: String| Err(crate::error::GanError::config(format!("{prefix}.{f}"), m));
    if ![28, 32, 64].contains(&image_size) {
        return err(
            "image_size",
            format!("must be 28, 32 or 64, got {image_size}"),
        );
    }
    if ![1, 3].contains(&channels) {
        return err("channels", format!("must be 1 or 3, got {channels}"));
    }
    Ok(())
}

/// `steps` points from latent code `a` to `b` (both [k]), endpoints included: [steps, k].
/// `spherical`: slerp, which keeps codes at the norm a Gaussian prior puts its mass at (a
/// straight line between two N(0, I) codes passes through low-norm, atypical codes — the
/// lecture's "walk around the data manifold" wants typical ones); else a straight line.
pub fn latent_path(a: &Tensor, b: &Tensor, steps: i64, spherical: bool) -> Tensor {
    let ts: Vec<f64> = (0..steps)
        .map(|i| i as f64 / (steps - 1).max(1) as f64)
        .collect();
    let rows: Vec<Tensor> = if spherical {
        let (na, nb) = (a.norm().double_value(&[]), b.norm().double_value(&[]));
        let cos = (a.dot(b).double_value(&[]) / (na * nb).max(1e-12)).clamp(-1.0, 1.0);
        let omega = cos.acos();
        ts.iter()
            .map(|&t| {
                if omega.abs() < 1e-6 {
                    a * (1.0 - t) + b * t
                } else {
                    a * (((1.0 - t) * omega).sin() / omega.sin())
                        + b * ((t * omega).sin() / omega.sin())
                }
            })
            .collect()
    } else {
        ts.iter().map(|&t| a * (1.0 - t) + b * t).collect()
    };
    Tensor::stack(&rows, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endpoints are exact; the straight line's midpoint is the mean; slerp between codes of
    /// equal norm keeps that norm (closed form: ‖slerp‖ = ‖a‖ when ‖a‖ = ‖b‖), to 1e-5.
    #[test]
    fn latent_paths() {
        let a = Tensor::from_slice(&[3.0f32, 0.0, 0.0]);
        let b = Tensor::from_slice(&[0.0f32, 3.0, 0.0]);
        for spherical in [false, true] {
            let p = latent_path(&a, &b, 5, spherical);
            assert_eq!(p.size(), vec![5, 3]);
            assert!(p.get(0).allclose(&a, 1e-6, 1e-6, false));
            assert!(p.get(4).allclose(&b, 1e-6, 1e-6, false));
        }
        let mid = latent_path(&a, &b, 3, false).get(1);
        assert!(mid.allclose(&Tensor::from_slice(&[1.5f32, 1.5, 0.0]), 1e-6, 1e-6, false));
        let norms = latent_path(&a, &b, 7, true).norm_scalaropt_dim(2, [1], false);
        let err = (norms - 3.0).abs().max().double_value(&[]);
        assert!(err < 1e-5, "slerp norm error {err}");
    }
}
