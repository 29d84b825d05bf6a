//! Tests of the config: parsing, defaults, overrides, and every shipped config.

use super::*;

#[test]
fn default_round_trips_and_errors_name_fields() {
    let cfg = TrainConfig::default();
    cfg.validate().unwrap();
    let text = cfg.to_toml();
    assert!(text.contains("[diffusion]") && text.contains("d_target = 0.6"));
    assert_eq!(
        TrainConfig::from_toml_str(&text, Path::new("x.toml")).unwrap(),
        cfg
    );
    let p = Path::new("x.toml");
    let e = TrainConfig::from_toml_str("[diffusion]\nt_max = 2\n", p).unwrap_err();
    assert!(e.to_string().contains("`diffusion.t_max`"), "{e}");
    let e = TrainConfig::from_toml_str("[run]\nstepz = 5\n", p).unwrap_err();
    assert!(e.to_string().contains("stepz"), "{e}");
    let e = TrainConfig::from_toml_str("[run]\nsteps = \"many\"\n", p).unwrap_err();
    assert!(e.to_string().contains("x.toml"), "{e}");
    assert!(e.to_string().contains("line 2: steps = \"many\""), "{e}");
    let e = TrainConfig::from_toml_str("[run]\ndevice = \"tpu\"\n", p).unwrap_err();
    assert!(e.to_string().contains("run.device"), "{e}");
    let e = TrainConfig::from_toml_str("[optim.d]\nkind = \"adam\"\nlr = -1.0\n", p).unwrap_err();
    assert!(e.to_string().contains("`optim.d.lr`"), "{e}");
    assert!(e.is_user_error());
}

/// Fields left out of [diffusion] take the Appendix G preset of the model family, whether
/// the table is written in part or left out.
#[test]
fn diffusion_fields_default_to_the_family_preset() {
    let p = Path::new("x.toml");
    let toy = TrainConfig::from_toml_str("[diffusion]\nd_target = 0.3\n", p).unwrap();
    let want = DiffusionConfig {
        d_target: 0.3,
        ..DiffusionConfig::feature()
    };
    assert_eq!(toy.diffusion, want);
    let images = "[model]\nfamily = \"dcgan\"\n[data]\nsource = \"idx\"\n";
    let img = TrainConfig::from_toml_str(images, p).unwrap();
    assert_eq!(img.diffusion, DiffusionConfig::default());
    assert_eq!((img.diffusion.sigma, img.diffusion.t_max), (0.05, 1000));
    let partial = format!("{images}[diffusion]\nsampling = \"uniform\"\n");
    let img = TrainConfig::from_toml_str(&partial, p).unwrap();
    assert_eq!((img.diffusion.sigma, img.diffusion.t_max), (0.05, 1000));
}

/// Issue 18 item 14: a partial optimizer section takes the rest from the task's default
/// for it (was: "missing field `kind`"), in a file and through --set.
#[test]
fn partial_optimizer_sections_keep_the_task_defaults() {
    let p = Path::new("x.toml");
    let gan = TrainConfig::from_toml_str("[optim.g]\nlr = 1e-4\n", p).unwrap();
    let want = OptimizerConfig {
        lr: 1e-4,
        ..OptimizerConfig::adam(2e-4)
    };
    assert_eq!(
        (&gan.optim.g, &gan.optim.d),
        (&want, &OptimizerConfig::adam(2e-4))
    );
    let ugatit = "[task]\nkind = \"ugatit\"\n[ugatit.optim.g]\nlr = 5e-5\n";
    let u = TrainConfig::from_toml_str(ugatit, p).unwrap();
    let base = UgatitConfig::default().optim.g;
    assert_ne!(base.weight_decay, 0.0, "U-GAT-IT's default decays weights");
    assert_eq!(u.ugatit.optim.g, OptimizerConfig { lr: 5e-5, ..base });
    let set = TrainConfig::from_toml_with(
        "[task]\nkind = \"bridgegan\"\n",
        p,
        &["bridgegan.optim.d.beta2=0.99".into()],
    )
    .unwrap();
    let base = BridgeConfig::default().optim.d;
    assert_eq!(
        set.bridgegan.optim.d,
        OptimizerConfig {
            beta2: 0.99,
            ..base
        }
    );
    // A wrong value in a partial section still names its line.
    let e = TrainConfig::from_toml_str("[optim.g]\nlr = \"fast\"\n", p).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

mod shipped_configs {
    use super::*;

    /// Every training config in configs/ parses and validates (refine-*.toml are experiment
    /// configs, checked by `experiments::refine`); the Diffusion-GAN one equals the built-in
    /// default (so `ganlab train` and the file agree).
    #[test]
    fn configs_directory_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.extension().is_some_and(|x| x == "toml") && !name.starts_with("refine-") {
                let cfg = TrainConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                if p.file_name().unwrap() == "gaussians25-diffusion.toml" {
                    assert_eq!(cfg, TrainConfig::built_in());
                }
                n += 1;
            }
        }
        assert!(n >= 5, "found {n} configs");
    }

    /// The pix2pix task's defaults, as a run's config.toml writes them.
    fn pix2pix_default() -> TrainConfig {
        TrainConfig::from_toml_str("[task]\nkind = \"pix2pix\"\n", Path::new("x.toml")).unwrap()
    }

    /// docs/CONFIG.md shows the defaults with every field, exactly as a run writes them: the
    /// GAN task's (block 1), then every other task's in `TaskKind::ALL` order.
    /// `GANLAB_UPDATE_DOCS=1 cargo test config_reference` rewrites the blocks from the code.
    #[test]
    fn config_reference_matches_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let mut want = vec![TrainConfig::default().to_toml()];
        for kind in TaskKind::ALL.iter().filter(|&&k| k != TaskKind::Gan) {
            let text = format!("[task]\nkind = \"{}\"\n", kind.name());
            want.push(
                TrainConfig::from_toml_str(&text, Path::new("x.toml"))
                    .unwrap()
                    .to_toml(),
            );
        }
        let mut parts: Vec<String> = doc.split("```toml\n").map(str::to_string).collect();
        assert!(
            parts.len() > want.len(),
            "a toml block per task in docs/CONFIG.md"
        );
        if std::env::var_os("GANLAB_UPDATE_DOCS").is_some() {
            for (i, w) in want.iter().enumerate() {
                let rest = parts[i + 1].split_once("```").map(|(_, r)| r.to_string());
                parts[i + 1] = format!("{}```{}", w.trim_end().to_string() + "\n", rest.unwrap());
            }
            std::fs::write(&path, parts.join("```toml\n")).unwrap();
            return;
        }
        for (i, w) in want.iter().enumerate() {
            let block = parts[i + 1].split("```").next().unwrap();
            assert_eq!(block.trim(), w.trim(), "block {} of docs/CONFIG.md", i + 1);
        }
    }

    /// `--set` edits any field before validation: values as TOML or as bare strings, new
    /// tables created, bad keys and values named; another task's section is refused.
    #[test]
    fn overrides_and_task_sections() {
        let p = Path::new("x.toml");
        let sets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cfg = TrainConfig::from_toml_with(
            "[run]\nsteps = 5\n",
            p,
            &sets(&[
                "run.steps=7",
                "run.device=cpu",
                "diffusion.enabled=false",
                "model.mlp.hidden=8",
            ]),
        )
        .unwrap();
        assert_eq!((cfg.run.steps, cfg.run.device.as_str()), (7, "cpu"));
        assert!(!cfg.diffusion.enabled && cfg.model.mlp.hidden == 8);
        // Issue 18 item 14: an empty or comment-only file is refused, not trained silently.
        for text in ["", "# only a comment\n\n"] {
            let e = TrainConfig::from_toml_str(text, p).unwrap_err().to_string();
            assert!(e.contains("sets nothing"), "{e}");
        }
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.steps=0"])).unwrap_err();
        assert!(e.to_string().contains("`run.steps`"), "{e}");
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.stepz=3"])).unwrap_err();
        assert!(e.to_string().contains("stepz"), "{e}");
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.steps"])).unwrap_err();
        assert!(e.to_string().contains("section.key=value"), "{e}");
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.steps.x=1"])).unwrap_err();
        assert!(e.is_user_error(), "{e}");
        let e = TrainConfig::from_toml_str(
            "[task]\nkind = \"pix2pix\"\n[model]\nfamily = \"mlp\"\n",
            p,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`model` is not a section of task \"pix2pix\""),
            "{e}"
        );
        let px = pix2pix_default();
        assert!(
            !px.diffusion.enabled,
            "translation trains without diffusion unless asked"
        );
        let text = px.to_toml();
        assert!(
            text.contains("[pix2pix.unet]") && !text.contains("[model"),
            "{text}"
        );
        assert_eq!(TrainConfig::from_toml_str(&text, p).unwrap(), px);
    }
}
