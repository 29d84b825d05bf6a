//! Discriminator overfitting, measured directly: D's mean output on images it was trained
//! on, on held-out images of the same distribution, and on generated images.
//!
//! A D that has memorised its training set scores held-out reals lower than training reals,
//! toward its score of fakes. StyleGAN2-ADA (Karras et al., NeurIPS 2020, §3) names the
//! ratio r_v = (E[D_train] − E[D_held]) / (E[D_train] − E[D_gen]): 0 when held-out reals look
//! like training reals to D, 1 when they look like fakes. As there, r_v is computed on D's raw
//! outputs (logits for the log-loss family); the three means are also given on the scale the
//! training log plots as D(real)/D(fake) (`Objective::d_score`: σ(logit) for the log-loss family).
//!
//! Everything is scored clean (t = 0), in chunks of `run.batch_size` of one kind at a time:
//! D's BatchNorm runs on batch statistics, and training scores real and fake batches
//! separately at that size, so each chunk sees the statistics it would in training. Unlike
//! Diffusion-GAN's r_d (the sign of D on the reals it trains on, eq. 5), this needs data D
//! never saw, so it is a diagnostic of finished runs, not a controller input. The fakes are
//! samples of the generator as the run opens (EMA weights where kept), which lags the G that D
//! trained against: D_fake is then lower than in training, while D_train − D_held is unaffected.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{GanError, Result};
use crate::objectives::Objective;
use crate::tasks::Generative;

/// D on training, held-out and generated images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DOverfit {
    /// Images of each kind scored.
    pub n_train: i64,
    /// See `n_train`.
    pub n_held: i64,
    /// See `n_train`.
    pub n_fake: i64,
    /// Mean D score (plotted scale) on training images.
    pub d_train: f64,
    /// Mean D score (plotted scale) on held-out images.
    pub d_held: f64,
    /// Mean D score (plotted scale) on generated images.
    pub d_fake: f64,
    /// (E[D_train] − E[D_held]) / (E[D_train] − E[D_gen]) on raw outputs.
    pub r_v: f64,
}

/// Mean raw output and mean plotted score of D on `x` (clean), scored in chunks of `batch`.
fn d_means(gen: &dyn Generative, obj: &Objective, x: &Tensor, batch: i64) -> (f64, f64) {
    let _g = tch::no_grad_guard();
    let (dev, n) = (gen.device(), x.size()[0]);
    let (mut raw, mut score) = (0.0, 0.0);
    for lo in (0..n).step_by(batch as usize) {
        let k = batch.min(n - lo);
        let t = Tensor::zeros([k], (Kind::Int64, dev));
        let out = gen
            .discriminator()
            .forward(&x.narrow(0, lo, k).to_device(dev), &t)
            .to_kind(Kind::Double);
        raw += out.sum(Kind::Double).double_value(&[]);
        score += obj.d_score(&out).sum(Kind::Double).double_value(&[]);
    }
    (raw / n as f64, score / n as f64)
}

/// D of `gen`'s run on `train` and `held` (images as the model takes them, [n, C, H, W])
/// and on `n_fake` samples of its generator (codes of `seed`).
pub fn d_overfit(
    gen: &dyn Generative,
    train: &Tensor,
    held: &Tensor,
    n_fake: i64,
    seed: u64,
) -> Result<DOverfit> {
    let cfg = gen.config();
    if gen.num_classes() > 0 {
        return Err(GanError::Input(
            "the overfitting probe scores unconditional discriminators only (a conditional D \
             needs the images' labels)"
                .into(),
        ));
    }
    let (nt, nh) = (train.size()[0], held.size()[0]);
    if nt < 1 || nh < 1 || n_fake < 1 {
        return Err(GanError::Input(format!(
            "the overfitting probe needs images of every kind; got {nt} training, {nh} held-out, \
             {n_fake} generated"
        )));
    }
    let obj = Objective::new(cfg.objective.clone())?;
    let batch = cfg.run.batch_size;
    let fake = {
        let _g = tch::no_grad_guard();
        gen.sample(n_fake, seed).to_device(Device::Cpu)
    };
    let (rt, st) = d_means(gen, &obj, train, batch);
    let (rh, sh) = d_means(gen, &obj, held, batch);
    let (rf, sf) = d_means(gen, &obj, &fake, batch);
    Ok(DOverfit {
        n_train: nt,
        n_held: nh,
        n_fake,
        d_train: st,
        d_held: sh,
        d_fake: sf,
        r_v: (rt - rh) / (rt - rf),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Discriminator, Generator};
    use crate::train::TrainConfig;

    /// G makes images of −1; D's raw output is the image mean.
    #[derive(Debug)]
    struct Mean {
        cfg: TrainConfig,
        classes: i64,
    }

    impl Generator for Mean {
        fn forward(&self, z: &Tensor) -> Tensor {
            -Tensor::ones([z.size()[0], 1, 2, 2], (Kind::Float, Device::Cpu))
        }
        fn latent_dim(&self) -> i64 {
            2
        }
    }

    impl Discriminator for Mean {
        fn forward(&self, y: &Tensor, _: &Tensor) -> Tensor {
            y.mean_dim([1i64, 2, 3].as_slice(), true, Kind::Float)
                .view([-1, 1])
        }
        fn features(&self, y: &Tensor, t: &Tensor) -> Tensor {
            Discriminator::forward(self, y, t)
        }
        fn feature_dim(&self) -> i64 {
            1
        }
        fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
            let s = Discriminator::forward(self, y, t);
            (s.shallow_clone(), s)
        }
    }

    impl Generative for Mean {
        fn latent_dim(&self) -> i64 {
            2
        }
        fn num_classes(&self) -> i64 {
            self.classes
        }
        fn device(&self) -> Device {
            Device::Cpu
        }
        fn generate(&self, z: &Tensor, _: Option<&Tensor>) -> Tensor {
            Generator::forward(self, z)
        }
        fn generator(&self) -> &dyn Generator {
            self
        }
        fn discriminator(&self) -> &dyn Discriminator {
            self
        }
        fn toy(&self) -> Option<&crate::data::Toy2d> {
            None
        }
        fn config(&self) -> &TrainConfig {
            &self.cfg
        }
    }

    /// Training images of +1, held-out of 0, fakes of −1 give raw means 1, 0, −1, so
    /// r_v = (1 − 0) / (1 − (−1)) = 0.5 and the σ scores are σ(1), σ(0), σ(−1) (closed form,
    /// tolerance 1e-6); counts not divisible by the batch (64) check the chunking.
    #[test]
    fn closed_form_on_a_mean_discriminator() {
        let m = m_default();
        let train = Tensor::ones([100, 1, 2, 2], (Kind::Float, Device::Cpu));
        let held = Tensor::zeros([70, 1, 2, 2], (Kind::Float, Device::Cpu));
        let p = d_overfit(&m, &train, &held, 30, 0).unwrap();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        assert_eq!((p.n_train, p.n_held, p.n_fake), (100, 70, 30));
        for (got, want) in [
            (p.d_train, sig(1.0)),
            (p.d_held, 0.5),
            (p.d_fake, sig(-1.0)),
            (p.r_v, 0.5),
        ] {
            assert!((got - want).abs() < 1e-6, "{p:?}");
        }
        let cond = Mean {
            classes: 3,
            ..m_default()
        };
        let e = d_overfit(&cond, &train, &held, 30, 0).unwrap_err();
        assert!(e.to_string().contains("unconditional"), "{e}");
        let empty = held.narrow(0, 0, 0);
        let e = d_overfit(&m, &train, &empty, 30, 0).unwrap_err();
        assert!(e.to_string().contains("0 held-out"), "{e}");
    }

    fn m_default() -> Mean {
        Mean {
            cfg: TrainConfig::default(),
            classes: 0,
        }
    }
}
