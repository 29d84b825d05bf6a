//! Validation of a parsed [`TrainConfig`]: every field checked once, the first invalid one
//! named with its allowed range, so that the trainer can trust the config.

use super::config::{DataSource, ModelFamily, TaskKind, TrainConfig};
use crate::error::{GanError, Result};

impl TrainConfig {
    /// Checks every field, naming the first invalid one.
    pub fn validate(&self) -> Result<()> {
        let r = &self.run;
        if r.name.is_empty() || r.name.contains(['/', '\\']) {
            return Err(GanError::config(
                "run.name",
                "must be a non-empty name without path separators",
            ));
        }
        if !(1..=100_000_000).contains(&r.steps) {
            return Err(GanError::config(
                "run.steps",
                format!("must be in [1, 100000000], got {}", r.steps),
            ));
        }
        if !(1..=1_000_000).contains(&r.batch_size) {
            return Err(GanError::config(
                "run.batch_size",
                format!("must be in [1, 1000000], got {}", r.batch_size),
            ));
        }
        for (name, v) in [
            ("run.log_every", r.log_every),
            ("run.eval_every", r.eval_every),
            ("run.checkpoint_every", r.checkpoint_every),
        ] {
            if v < 1 {
                return Err(GanError::config(name, "must be at least 1"));
            }
        }
        if r.keep_checkpoints < 1 {
            return Err(GanError::config(
                "run.keep_checkpoints",
                "must be at least 1",
            ));
        }
        if !(1..=10_000_000).contains(&r.eval_samples) {
            return Err(GanError::config(
                "run.eval_samples",
                format!("must be in [1, 10000000], got {}", r.eval_samples),
            ));
        }
        crate::device::parse_device(&r.device)?;
        if !(0.0..1.0).contains(&r.ema_beta) {
            return Err(GanError::config(
                "run.ema_beta",
                format!("must be in [0, 1), got {}", r.ema_beta),
            ));
        }
        if !(0.0..=1.0).contains(&r.ema_rampup) {
            return Err(GanError::config(
                "run.ema_rampup",
                format!("must be in [0, 1], got {}", r.ema_rampup),
            ));
        }
        self.diffusion.validate("diffusion")?;
        // Tasks with no discriminator that takes t (SimGAN's local D, the text encoder).
        if self.diffusion.enabled
            && matches!(
                self.task.kind,
                TaskKind::Simgan | TaskKind::TextEncoder | TaskKind::GanIntCls | TaskKind::Stackgan
            )
        {
            return Err(GanError::config(
                "diffusion.enabled",
                format!(
                    "must be false for {}: it has no discriminator that takes t",
                    self.task.kind.name()
                ),
            ));
        }
        match self.task.kind {
            TaskKind::Gan => self.validate_gan(),
            TaskKind::Pix2pix => self.pix2pix.validate("pix2pix"),
            TaskKind::Cyclegan => self.cyclegan.validate("cyclegan"),
            TaskKind::Ugatit => self.ugatit.validate("ugatit"),
            TaskKind::Autoencoder => self.autoencoder.validate("autoencoder"),
            TaskKind::Ddpm => self.ddpm.validate("ddpm"),
            TaskKind::Ladiffgan => {
                self.ugatit.validate("ugatit")?;
                self.ladiffgan.validate("ladiffgan")
            }
            TaskKind::Bridgegan => self.bridgegan.validate("bridgegan"),
            TaskKind::Stargan => self.stargan.validate("stargan"),
            TaskKind::AttributeClassifier => {
                self.attribute_classifier.validate("attribute_classifier")
            }
            TaskKind::Simgan => self.simgan.validate("simgan"),
            TaskKind::TextEncoder => self.text_encoder.validate("text_encoder"),
            TaskKind::GanIntCls => self.gan_int_cls.validate("gan_int_cls"),
            TaskKind::Stackgan => self.stackgan.validate("stackgan"),
        }
    }

    /// Checks the GAN task's sections.
    fn validate_gan(&self) -> Result<()> {
        self.data.toy2d.validate("data.toy2d")?;
        self.model.mlp.validate("model.mlp")?;
        self.model.dcgan.validate("model.dcgan")?;
        self.model.sngan.validate("model.sngan")?;
        self.model.stylegan2.validate("model.stylegan2")?;
        self.model.conditional.validate("model.conditional")?;
        self.data.idx.split()?;
        if !(0..=crate::data::MAX_IMAGES).contains(&self.data.idx.max_images) {
            return Err(GanError::config(
                "data.idx.max_images",
                format!(
                    "must be in [0, {}] (0: every image), got {}",
                    crate::data::MAX_IMAGES,
                    self.data.idx.max_images
                ),
            ));
        }
        match (self.data.source, self.model.family) {
            (DataSource::Toy2d, ModelFamily::Mlp)
            | (
                DataSource::Idx,
                ModelFamily::Dcgan | ModelFamily::Sngan | ModelFamily::Stylegan2,
            ) => {}
            (source, family) => {
                return Err(GanError::config(
                    "model.family",
                    format!(
                        "{family:?} does not fit data.source {source:?} (toy2d needs mlp, idx needs dcgan, sngan or stylegan2)"
                    ),
                ))
            }
        }
        let cond = &self.model.conditional;
        if cond.enabled() && self.data.source == DataSource::Toy2d {
            let modes = crate::data::Toy2d::new(self.data.toy2d.clone())
                .centres()
                .len() as i64;
            if modes != cond.num_classes {
                return Err(GanError::config(
                    "model.conditional.num_classes",
                    format!(
                        "a conditional model on {:?} has one class per mode: must be {modes}, got {}",
                        self.data.toy2d.kind, cond.num_classes
                    ),
                ));
            }
        }
        if self.data.source == DataSource::Toy2d && self.model.mlp.data_dim != 2 {
            return Err(GanError::config(
                "model.mlp.data_dim",
                format!("must be 2 for 2-D data, got {}", self.model.mlp.data_dim),
            ));
        }
        self.validate_projected()?;
        self.objective.validate("objective")?;
        self.optim.g.validate("optim.g")?;
        self.optim.d.validate("optim.d")
    }

    /// A projected D needs grey 28 px images (its backbone's input) and takes neither class
    /// conditioning nor gradient penalties (Projected GAN uses none; the noise sits inside D).
    fn validate_projected(&self) -> Result<()> {
        let p = &self.model.projected;
        p.validate("model.projected")?;
        if !p.enabled {
            return Ok(());
        }
        let err = |f: &str, m: String| Err(GanError::config(f, m));
        match self.model.image_shape() {
            Some((_, [1, 28, 28])) => {}
            Some((field, [c, h, w])) => {
                return err(
                    field,
                    format!("model.projected's mnist-cnn backbone takes 1×28×28 images; the model makes {c}×{h}×{w}"),
                )
            }
            None => {
                return err(
                    "model.projected.enabled",
                    "a projected discriminator needs an image family (dcgan, sngan or stylegan2)".into(),
                )
            }
        }
        if self.model.conditional.enabled() {
            return err(
                "model.projected.enabled",
                "a projected discriminator is unconditional; set model.conditional.num_classes = 0"
                    .into(),
            );
        }
        let o = &self.objective;
        if o.r1_gamma > 0.0 || o.gp_lambda > 0.0 {
            return err(
                "objective.r1_gamma",
                "gradient penalties (r1_gamma, gp_lambda) must be 0 with a projected discriminator"
                    .into(),
            );
        }
        Ok(())
    }
}
