//! Generator and discriminator families. Each family is a config with `init` and a
//! generator and discriminator implementing [`Generator`] and [`Discriminator`], so the
//! trainer runs any of them unchanged.

pub mod dcgan;
pub mod mlp;
pub mod sngan;

use tch::Tensor;

/// G(z[, c]) → x.
pub trait Generator: std::fmt::Debug {
    /// Maps latent codes [n, latent_dim] to samples [n, ...].
    fn forward(&self, z: &Tensor) -> Tensor;
    /// Dimension of z.
    fn latent_dim(&self) -> i64;
}

/// D(y, t[, c]) → one raw score per sample ([n, 1]).
pub trait Discriminator: std::fmt::Debug {
    /// Scores samples `y` [n, ...] at diffusion steps `t` [n] (Int64; 0 = clean).
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor;
    /// The activations the output layer reads ([n, F]): D's learned features, used e.g. as
    /// the kernel features of latent refinement (`crate::refine`).
    fn features(&self, y: &Tensor, t: &Tensor) -> Tensor;
    /// True when each sample's score depends on that sample alone (no batch statistics),
    /// so the trainer may score real and fake samples in one forward pass.
    fn batch_independent(&self) -> bool {
        false
    }
}
