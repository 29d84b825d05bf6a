//! End-to-end tests of the `ganlab` binary as a user runs it (exit codes, files written).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ganlab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ganlab"))
        .args(args)
        .current_dir(cwd)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run ganlab")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ganlab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const TINY: &str = "[run]\nname = \"tiny\"\nsteps = 30\nbatch_size = 64\nlog_every = 5\neval_every = 10\ncheckpoint_every = 10\neval_samples = 300\ndevice = \"cpu\"\n[model.mlp]\nhidden = 32\n";

#[test]
fn invalid_config_is_one_line_exit_2() {
    let d = tmp("invalid");
    for (text, field) in [
        ("[diffusion]\nd_target = 3.0\n", "diffusion.d_target"),
        ("[run]\nbatch_size = 0\n", "run.batch_size"),
        ("[objective]\nkind = \"wasserstein\"\n", "unknown variant"),
        ("[run]\nstepz = 3\n", "stepz"),
    ] {
        std::fs::write(d.join("bad.toml"), text).unwrap();
        let o = ganlab(&["train", "bad.toml", "--quiet"], &d);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(field), "{err} should name {field}");
    }
    let o = ganlab(&["train", "missing.toml"], &d);
    assert_eq!(o.status.code(), Some(1 + 1), "{}", stderr(&o));
    let o = ganlab(&["experiment", "nope"], &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("gaussians25, js-toy, refine-gaussians25"));
    let o = ganlab(&["train", "--resume", "nowhere"], &d);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Issue 18 item 14: refusing to overwrite a user's file is a usage error (exit 2).
    std::fs::write(d.join("mine.json"), "{}").unwrap();
    let o = ganlab(&["bench", "--json", "mine.json"], &d);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not overwriting"), "{}", stderr(&o));
    std::fs::write(d.join("afile"), "mine").unwrap();
    let o = ganlab(&["train", "--out", "afile", "--steps", "1"], &d);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn train_resume_sample_round_trip() {
    let d = tmp("train");
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let o = ganlab(&["train", "tiny.toml", "--out", "run", "--steps", "20"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("ETA"), "progress with ETA: {err}");
    let run = d.join("run");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "samples.svg",
        "report.html",
        "checkpoints/state.json",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }
    // Nothing a user wrote is overwritten.
    let o = ganlab(&["train", "tiny.toml", "--out", "run"], &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already exists"));
    // Resume to 30 steps.
    let o = ganlab(
        &["train", "--resume", "run", "--steps", "30", "--quiet"],
        &d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 30);
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![5, 10, 15, 20, 25, 30]);
    let o = ganlab(&["sample", "--run", "run", "--n", "100", "--out", "s"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    let npy = std::fs::read(d.join("s/samples.npy")).unwrap();
    assert_eq!(&npy[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    assert_eq!(npy.len(), 10 + hlen + 100 * 2 * 4);
    // Issue 18 item 14: NaN weights make `refine` name the tensor (was: a KRR problem).
    let ckpt = run.join("checkpoints");
    let (state, tensors) = ganlab::train::checkpoint::load(&ckpt).unwrap();
    let poisoned: Vec<(&str, tch::Tensor)> = tensors
        .iter()
        .map(|(k, t)| {
            let nan = k.starts_with("g.");
            (
                k.as_str(),
                if nan {
                    t.full_like(f64::NAN)
                } else {
                    t.shallow_clone()
                },
            )
        })
        .collect();
    ganlab::io::write_safetensors_atomic(&ckpt.join(&state.tensors), &poisoned).unwrap();
    let o = ganlab(&["refine", "--run", "run", "--n", "16"], &d);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("NaN") && err.contains("`g.") && !err.contains("KRR"),
        "{err}"
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn js_toy_experiment_writes_figure() {
    let d = tmp("js");
    let o = ganlab(&["experiment", "js-toy", "--out", "js"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("t =    0: JS(θ=0.1) = 0.6931"), "{out}");
    for f in ["js_toy.svg", "js_toy.json", "report.html"] {
        assert!(d.join("js").join(f).exists());
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// `ganlab eval` with bad input: an unknown SPEC, a missing extractor file and an unknown
/// metric each give exit 2 and a line naming the problem.
#[test]
fn eval_bad_input_is_exit_2() {
    let d = tmp("eval");
    std::fs::create_dir_all(d.join("data")).unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--real", "cifar", "--fake", "mnist"], "dataset name"),
        (&["--real", "x.npy", "--fake", "y.npy"], "x.npy"),
        (
            &["--real", "mnist", "--fake", "mnist", "--extractor", "vgg"],
            "--extractor",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["eval", "--data", "data", "--quiet"];
        all.extend_from_slice(args);
        let o = ganlab(&all, &d);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// An image run end to end: DCGAN + Diffusion-GAN on a tiny IDX set, then `sample` writes
/// one PNG per sample and a grid.
#[test]
fn image_run_train_and_sample_pngs() {
    let d = tmp("images");
    std::fs::create_dir_all(d.join("idx")).unwrap();
    let mut bytes = vec![0u8, 0, 8, 3];
    for n in [8u32, 28, 28] {
        bytes.extend(n.to_be_bytes());
    }
    bytes.extend((0..8 * 28 * 28).map(|i| ((i * 13) % 256) as u8));
    std::fs::write(d.join("idx/train-images-idx3-ubyte"), &bytes).unwrap();
    std::fs::write(d.join("idx/t10k-images-idx3-ubyte"), &bytes).unwrap();
    let cfg = "[run]\nsteps = 2\nbatch_size = 4\neval_every = 2\ncheckpoint_every = 2\neval_samples = 8\ndevice = \"cpu\"\n[data]\nsource = \"idx\"\n[data.idx]\ndir = \"idx\"\n[model]\nfamily = \"dcgan\"\n[model.dcgan]\nwidth = 4\nlatent_dim = 8\n[diffusion]\nenabled = true\n";
    std::fs::write(d.join("img.toml"), cfg).unwrap();
    let o = ganlab(&["train", "img.toml", "--out", "run", "--quiet"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(d.join("run/samples.png").exists());
    let o = ganlab(&["sample", "--run", "run", "--n", "5", "--out", "s"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in [
        "s/images/000000.png",
        "s/images/000004.png",
        "s/grid.png",
        "s/samples.npy",
    ] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    // A latent walk: one row per path.
    let o = ganlab(
        &[
            "interpolate",
            "--run",
            "run",
            "--out",
            "walk",
            "--rows",
            "3",
            "--steps",
            "4",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(d.join("walk/interpolation.png").exists());
    let npy = std::fs::read(d.join("walk/interpolation.npy")).unwrap();
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    assert_eq!(npy.len(), 10 + hlen + 12 * 28 * 28 * 4);
    let o = ganlab(
        &["interpolate", "--run", "run", "--out", "w2", "--steps", "1"],
        &d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--steps"));
    // Refinement with an inpainting condition writes its files and reports the known-pixel
    // error before and after; bad arguments are exit 2 naming the flag.
    let o = ganlab(
        &[
            "refine",
            "--run",
            "run",
            "--method",
            "krr-wgf",
            "--steps",
            "2",
            "--n",
            "8",
            "--n-real",
            "8",
            "--condition",
            "inpaint:1:left",
            "--out",
            "ref",
            "--json",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in [
        "refined.npy",
        "latents.npy",
        "initial.npy",
        "before_after.png",
        "summary.json",
    ] {
        assert!(d.join("ref").join(f).exists(), "{f} missing");
    }
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["after"]["known_pixel_mse"].as_f64().is_some(), "{r}");
    for (args, flag) in [
        (vec!["--method", "sgld"], "--method"),
        (vec!["--condition", "inpaint:99"], "--condition"),
        (vec!["--step-size=-1"], "refine.step_size"),
    ] {
        let mut a = vec!["refine", "--run", "run", "--n", "8", "--out", "bad"];
        a.extend(args);
        let o = ganlab(&a, &d);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(flag), "{a:?}: {}", stderr(&o));
    }
    assert!(
        !d.join("bad").exists(),
        "a failed refine leaves no directory"
    );
}

/// A class-conditional run samples one class on request; an unknown class is exit 2.
#[test]
fn conditional_sample_per_class() {
    let d = tmp("cond");
    std::fs::write(
        d.join("c.toml"),
        format!("{TINY}[model.conditional]\nnum_classes = 25\nmismatched = true\n"),
    )
    .unwrap();
    let o = ganlab(&["train", "c.toml", "--out", "run", "--quiet"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ganlab(
        &[
            "sample", "--run", "run", "--n", "10", "--class", "3", "--out", "s3",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(d.join("s3/samples.npy").exists());
    let o = ganlab(
        &[
            "sample", "--run", "run", "--n", "10", "--class", "25", "--out", "s25",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--class"), "{}", stderr(&o));
    assert!(!d.join("s25").exists());
    std::fs::remove_dir_all(d).unwrap();
}

/// `--set` overrides a field as the file would (and names a bad one); `describe` prints the
/// published pix2pix's parameter counts; a pix2pix run trains on aligned pairs, `translate`
/// writes one PNG per input and refuses a used output directory; `sample` on it says why not.
#[test]
fn set_describe_pix2pix_translate() {
    let d = tmp("p2p");
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let o = ganlab(
        &[
            "train",
            "tiny.toml",
            "--out",
            "r",
            "--set",
            "run.steps=4",
            "--set",
            "model.mlp.hidden=8",
            "--quiet",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = std::fs::read_to_string(d.join("r/config.toml")).unwrap();
    assert!(
        cfg.contains("steps = 4") && cfg.contains("hidden = 8"),
        "{cfg}"
    );
    let o = ganlab(&["train", "tiny.toml", "--set", "run.batch_size=-1"], &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("run.batch_size"), "{}", stderr(&o));
    let facades = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/pix2pix-facades.toml");
    let o = ganlab(&["describe", facades.to_str().unwrap()], &d);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("54,413,955") && out.contains("2,768,705"),
        "{out}"
    );
    // Aligned pairs A|B, B = −A, written with ganlab's PNG writer.
    let pairs = d.join("pairs/train");
    std::fs::create_dir_all(&pairs).unwrap();
    for i in 0..4 {
        let a = tch::Tensor::rand([3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)) * 2 - 1;
        let ab = tch::Tensor::cat(&[&a, &(-&a)], 2);
        ganlab::data::write_png(&pairs.join(format!("{i}.png")), &ab).unwrap();
    }
    let p2p = "[task]\nkind = \"pix2pix\"\n[run]\nsteps = 2\nbatch_size = 2\ndevice = \"cpu\"\n[pix2pix]\nprobes = 2\n[pix2pix.data]\ndir = \"pairs\"\nimage_size = 32\nload_size = 32\n[pix2pix.unet]\nngf = 4\n[pix2pix.patchgan]\nndf = 4\nn_layers = 2\n";
    std::fs::write(d.join("p2p.toml"), p2p).unwrap();
    let o = ganlab(&["train", "p2p.toml", "--out", "p", "--quiet"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ganlab(
        &[
            "translate",
            "--run",
            "p",
            "--input",
            "pairs/train",
            "--out",
            "t",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["0.png", "3.png", "grid.png"] {
        assert!(d.join("t").join(f).is_file(), "{f}");
    }
    let y = ganlab::data::folder::load_image(&d.join("t/0.png")).unwrap();
    assert_eq!(y.size(), vec![3, 32, 32]);
    let o = ganlab(
        &[
            "translate",
            "--run",
            "p",
            "--input",
            "pairs/train",
            "--out",
            "t",
        ],
        &d,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a used output directory is refused"
    );
    let o = ganlab(&["sample", "--run", "p", "--out", "s"], &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("does not generate from noise"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d).unwrap();
}

/// An unpaired run from the CLI: `describe` prints the published CycleGAN's parameter counts;
/// a tiny CycleGAN trains on trainA/ trainB/ folders; `translate --direction b2a` writes one
/// PNG per input; an unknown direction is exit 2 naming `--direction`.
#[test]
fn unpaired_train_and_translate_both_ways() {
    let d = tmp("cyclegan");
    let h2z = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cyclegan-horse2zebra.toml");
    let o = ganlab(&["describe", h2z.to_str().unwrap()], &d);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("11,378,179") && out.contains("2,764,737"),
        "{out}"
    );
    for side in ["trainA", "trainB"] {
        let dir = d.join("dom").join(side);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3 {
            let x = tch::Tensor::rand([3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)) * 2 - 1;
            ganlab::data::write_png(&dir.join(format!("{i}.png")), &x).unwrap();
        }
    }
    let cfg = "[task]\nkind = \"cyclegan\"\n[run]\nsteps = 2\nbatch_size = 1\ndevice = \"cpu\"\n[cyclegan]\nprobes = 2\n[cyclegan.data]\ndir = \"dom\"\nimage_size = 32\nload_size = 32\n[cyclegan.generator]\nngf = 4\nn_blocks = 1\n[cyclegan.discriminator]\nndf = 4\nn_layers = 2\n";
    std::fs::write(d.join("cg.toml"), cfg).unwrap();
    let o = ganlab(&["train", "cg.toml", "--out", "r", "--quiet"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("r/translations_b2a.png").is_file());
    let args = |dir: &'static str, out: &'static str| {
        [
            "translate",
            "--run",
            "r",
            "--input",
            "dom/trainB",
            "--direction",
            dir,
            "--out",
            out,
        ]
    };
    let o = ganlab(&args("b2a", "t"), &d);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["0.png", "2.png", "grid.png"] {
        assert!(d.join("t").join(f).is_file(), "{f}");
    }
    let o = ganlab(&args("b2c", "t2"), &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--direction"), "{}", stderr(&o));
    std::fs::remove_dir_all(d).unwrap();
}

/// A multi-attribute run from the command line: describe prints G, M and E separately;
/// `translate --set` writes one file per input and target and a grid with one row per target;
/// `--reference` one file per input and reference; labels.json records what the classifier
/// read; `--alpha 0,0.5,1` walks between the two style codes; an unknown attribute and two exclusive ones at 1 are exit 2 naming them; --set on a
/// non-attribute flag combination (--alpha < 1 without references) is refused.
#[test]
fn attribute_run_edits_by_label_and_reference() {
    let d = tmp("bridgegan");
    std::fs::create_dir_all(d.join("set/img")).unwrap();
    let (mut attr, mut part) = ("8\nA B C\n".to_string(), String::new());
    for i in 0..8 {
        let x = tch::Tensor::rand([3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)) * 2 - 1;
        ganlab::data::write_png(&d.join(format!("set/img/{i}.png")), &x).unwrap();
        let v = if i % 2 == 0 { " 1 -1  1" } else { "-1  1 -1" };
        attr += &format!("{i}.png {v}\n");
        part += &format!("{i}.png {}\n", if i < 6 { 0 } else { 2 });
    }
    std::fs::write(d.join("set/list_attr.txt"), attr).unwrap();
    std::fs::write(d.join("set/list_eval_partition.txt"), part).unwrap();
    let cfg = "[task]\nkind = \"bridgegan\"\n[run]\nsteps = 1\nbatch_size = 2\ndevice = \"cpu\"\neval_samples = 2\n[bridgegan]\nn_critic = 1\nprobes = 2\n[bridgegan.data]\ndir = \"set\"\nimages = \"img\"\nattributes = [\"A\", \"B\", \"C\"]\nexclusive = [[\"A\", \"B\"]]\nimage_size = 32\n[bridgegan.model]\ng_ch = 4\nstyle_ch = 4\nnoise_dim = 3\nd_ch = 4\nspade_hidden = 4\n";
    std::fs::write(d.join("bg.toml"), cfg).unwrap();
    let o = ganlab(&["describe", "bg.toml"], &d);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("g.g_gen") && out.contains("g.g_map") && out.contains("g.g_enc"),
        "{out}"
    );
    let o = ganlab(&["train", "bg.toml", "--out", "r", "--quiet"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = |extra: &[&'static str], out: &'static str| {
        let mut a = vec![
            "translate",
            "--run",
            "r",
            "--input",
            "set/img",
            "--out",
            out,
        ];
        a.extend_from_slice(extra);
        a
    };
    let o = ganlab(&t(&["--set", "A=1", "--set", "B=1,C=0"], "lab"), &d);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["0-t0.png", "7-t1.png", "grid.png", "labels.json"] {
        assert!(d.join("lab").join(f).is_file(), "{f}");
    }
    // Sources + 2 targets, 8 inputs wide.
    let g = ganlab::data::folder::load_image(&d.join("lab/grid.png")).unwrap();
    assert_eq!(g.size(), [3, 3 * 34 + 2, 8 * 34 + 2]);
    let o = ganlab(
        &t(&["--reference", "set/img/1.png", "--set", "A=1"], "ref"),
        &d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("ref/3-ref-1.png").is_file());
    // An interpolation walk: one row per α (sources row + 3 rows, reference column + 8).
    let o = ganlab(
        &t(
            &["--reference", "set/img/1.png", "--alpha", "0,0.5,1"],
            "walk",
        ),
        &d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("walk/3-ref-1-a0.5.png").is_file());
    let g = ganlab::data::folder::load_image(&d.join("walk/grid.png")).unwrap();
    assert_eq!(g.size(), [3, 4 * 34 + 2, 9 * 34 + 2]);
    let o = ganlab(&t(&["--set", "D=1"], "bad1"), &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no attribute `D`"), "{}", stderr(&o));
    let o = ganlab(&t(&["--set", "A=1,B=1"], "bad2"), &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot both be 1"), "{}", stderr(&o));
    assert!(
        !d.join("bad2").exists(),
        "nothing written on a refused edit"
    );
    let o = ganlab(&t(&["--set", "A=1", "--alpha", "0.5"], "bad3"), &d);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(d).unwrap();
}
