//! Metrics on feature sets: FID, KID, Inception Score, precision/recall and
//! density/coverage. The protocol around them (extractor, preprocessing, sample counts) is
//! in docs/METRICS.md. All statistics are computed in f64.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{GanError, IoContext, Result};
use crate::io::{named, write_safetensors_atomic};
use crate::rng::SplitMix64;

/// Mean and covariance of a feature set: all FID needs, and what is cached for real data.
#[derive(Debug)]
pub struct FeatureStats {
    /// Number of feature vectors.
    pub n: i64,
    /// Mean, [d] f64.
    pub mu: Tensor,
    /// Covariance with the unbiased 1/(n−1) normalisation (numpy.cov, as pytorch-fid), [d, d] f64.
    pub sigma: Tensor,
}

fn check_features(f: &Tensor, what: &str, min_n: i64) -> Result<(i64, i64)> {
    let size = f.size();
    if size.len() != 2 || size[0] < min_n || size[1] < 1 {
        return Err(GanError::Input(format!(
            "{what}: expected features [n >= {min_n}, d], got {size:?}"
        )));
    }
    let finite = f.isfinite().all().int64_value(&[]) == 1;
    if !finite {
        return Err(GanError::Input(format!(
            "{what}: features contain NaN or inf"
        )));
    }
    Ok((size[0], size[1]))
}

impl FeatureStats {
    /// Statistics of features [n, d] (n ≥ 2).
    pub fn from_features(f: &Tensor) -> Result<Self> {
        let (n, _) = check_features(f, "feature statistics", 2)?;
        let f = f.to_kind(Kind::Double);
        let mu = f.mean_dim(0, false, Kind::Double);
        let c = &f - &mu;
        let sigma = c.tr().matmul(&c) / (n - 1) as f64;
        Ok(Self { n, mu, sigma })
    }

    /// Writes the statistics as safetensors (`mu`, `sigma`, `n`), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let n = Tensor::from_slice(&[self.n]);
        write_safetensors_atomic(path, &[("mu", &self.mu), ("sigma", &self.sigma), ("n", &n)])
    }

    /// Reads statistics written by [`FeatureStats::save`].
    pub fn load(path: &Path) -> Result<Self> {
        std::fs::metadata(path).at(path)?;
        let tensors = Tensor::read_safetensors(path).map_err(|e| {
            GanError::Input(format!(
                "{}: not a feature-statistics file ({e})",
                path.display()
            ))
        })?;
        let get = |k: &str| {
            named(&tensors, k)
                .map(Tensor::shallow_clone)
                .ok_or_else(|| GanError::Input(format!("{}: missing `{k}`", path.display())))
        };
        let (mu, sigma, n) = (get("mu")?, get("sigma")?, get("n")?);
        let d = mu.size1().unwrap_or(-1);
        if sigma.size() != [d, d] {
            return Err(GanError::Input(format!(
                "{}: mu has {d} entries but sigma is {:?}",
                path.display(),
                sigma.size()
            )));
        }
        Ok(Self {
            n: n.int64_value(&[0]),
            mu,
            sigma,
        })
    }
}

/// Fréchet distance between Gaussians N(μ1, Σ1) and N(μ2, Σ2) (FID on Inception features):
///
///   d² = |μ1 − μ2|² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½.
///
/// tr (Σ1^½ Σ2 Σ1^½)^½ equals tr (Σ1 Σ2)^½ (same eigenvalues), the form scipy's `sqrtm`
/// evaluates in pytorch-fid; the symmetric form needs only symmetric eigendecompositions,
/// which are stable for PSD matrices (tiny negative eigenvalues from round-off are clamped to
/// 0). All in f64.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    let d = a.mu.size1()?;
    if b.mu.size1()? != d {
        return Err(GanError::Input(format!(
            "FID: feature dimensions differ ({d} vs {})",
            b.mu.size1()?
        )));
    }
    let diff = (&a.mu - &b.mu).square().sum(Kind::Double).double_value(&[]);
    let tr1 = a.sigma.trace().double_value(&[]);
    let tr2 = b.sigma.trace().double_value(&[]);
    let root1 = psd_sqrt(&a.sigma);
    let m = root1.matmul(&b.sigma).matmul(&root1);
    let m = (&m + m.tr()) * 0.5;
    let tr_covmean = m
        .linalg_eigvalsh("L")
        .clamp_min(0.0)
        .sqrt()
        .sum(Kind::Double)
        .double_value(&[]);
    Ok(diff + tr1 + tr2 - 2.0 * tr_covmean)
}

/// Square root of a symmetric PSD matrix by eigendecomposition.
fn psd_sqrt(s: &Tensor) -> Tensor {
    let (l, v) = s.linalg_eigh("L");
    let r = l.clamp_min(0.0).sqrt();
    (&v * r.unsqueeze(0)).matmul(&v.tr())
}

/// Mean and standard deviation over subsets or splits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation (numpy's default, as torch-fidelity).
    pub std: f64,
}

impl MeanStd {
    fn of(v: &[f64]) -> Self {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt(),
        }
    }
}

/// KID (Bińkowski et al. 2018) as torch-fidelity computes it: the unbiased MMD² with the
/// polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over `subsets` random subsets of
/// `subset_size` (drawn without replacement, seeded) from each set.
pub fn kid(
    real: &Tensor,
    fake: &Tensor,
    subsets: usize,
    subset_size: i64,
    seed: u64,
) -> Result<MeanStd> {
    let (nr, d) = check_features(real, "KID real", 2)?;
    let (nf, d2) = check_features(fake, "KID fake", 2)?;
    if d != d2 {
        return Err(GanError::Input(format!(
            "KID: feature dimensions differ ({d} vs {d2})"
        )));
    }
    if subset_size < 2 || subset_size > nr.min(nf) || subsets == 0 {
        return Err(GanError::Input(format!(
            "KID: subset size {subset_size} must be in [2, {}] (the smaller set) and subsets >= 1",
            nr.min(nf)
        )));
    }
    let real = real.to_kind(Kind::Double);
    let fake = fake.to_kind(Kind::Double);
    let mut rng = SplitMix64::new(seed);
    let m = subset_size as f64;
    let kernel = |x: &Tensor, y: &Tensor| (x.matmul(&y.tr()) / d as f64 + 1.0).pow_tensor_scalar(3);
    let mut vals = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let x = real.index_select(0, &choose(&mut rng, nr, subset_size));
        let y = fake.index_select(0, &choose(&mut rng, nf, subset_size));
        let kxx = kernel(&x, &x);
        let kyy = kernel(&y, &y);
        let kxy = kernel(&x, &y);
        let off = |k: &Tensor| (k.sum(Kind::Double) - k.trace()).double_value(&[]);
        let mmd = (off(&kxx) + off(&kyy)) / (m * (m - 1.0))
            - 2.0 * kxy.sum(Kind::Double).double_value(&[]) / (m * m);
        vals.push(mmd);
    }
    Ok(MeanStd::of(&vals))
}

/// `k` distinct indices of 0..n (partial Fisher–Yates), as an Int64 tensor.
fn choose(rng: &mut SplitMix64, n: i64, k: i64) -> Tensor {
    let mut idx: Vec<i64> = (0..n).collect();
    for i in 0..k as usize {
        let j = i + rng.below(n as u64 - i as u64) as usize;
        idx.swap(i, j);
    }
    Tensor::from_slice(&idx[..k as usize])
}

/// Inception Score (Salimans et al. 2016) from class logits [n, K]: the samples are cut into
/// `splits` consecutive parts; per part exp(E_x KL(p(y|x) ‖ p(y))) with p(y) the part's mean
/// prediction. Returns mean and std over parts (the original protocol: 10 splits).
pub fn inception_score(logits: &Tensor, splits: i64) -> Result<MeanStd> {
    let (n, _) = check_features(logits, "Inception Score", splits.max(1))?;
    if splits < 1 {
        return Err(GanError::Input(
            "Inception Score: splits must be >= 1".into(),
        ));
    }
    let logp = logits.to_kind(Kind::Double).log_softmax(1, Kind::Double);
    let mut vals = Vec::new();
    for s in 0..splits {
        let (lo, hi) = (s * n / splits, (s + 1) * n / splits);
        let part = logp.narrow(0, lo, hi - lo);
        let p = part.exp();
        let log_py = p.mean_dim(0, true, Kind::Double).log();
        let kl = (&p * (&part - &log_py)).sum_dim_intlist(1, false, Kind::Double);
        vals.push(kl.mean(Kind::Double).double_value(&[]).exp());
    }
    Ok(MeanStd::of(&vals))
}

/// Precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prdc {
    /// Fraction of fakes inside some real sample's k-NN ball (k = `k_pr`).
    pub precision: f64,
    /// Fraction of reals inside some fake sample's k-NN ball (k = `k_pr`).
    pub recall: f64,
    /// (1/(kM)) Σ_fake #{real balls containing it} (k = `k_dc`).
    pub density: f64,
    /// Fraction of reals whose k-NN ball contains some fake (k = `k_dc`).
    pub coverage: f64,
}

/// Rows per block of pairwise distances (bounds memory to block × n floats).
const BLOCK: i64 = 1024;

/// Calls `f(rows lo.., distances [b, m])` over blocks of rows of `a` against all of `b`.
fn blocks(a: &Tensor, b: &Tensor, mut f: impl FnMut(i64, &Tensor)) {
    let n = a.size()[0];
    let mut lo = 0;
    while lo < n {
        let len = BLOCK.min(n - lo);
        f(
            lo,
            &Tensor::cdist(&a.narrow(0, lo, len), b, 2.0, None::<i64>),
        );
        lo += len;
    }
}

/// Distance from each row of `x` to its k-th nearest other row of `x`.
fn knn_radii(x: &Tensor, k: i64) -> Tensor {
    let mut out = Vec::new();
    // The nearest "neighbour" is the row itself at distance 0: take the (k+1)-th.
    blocks(x, x, |_, d| out.push(d.kthvalue(k + 1, 1, false).0));
    Tensor::cat(&out, 0)
}

/// Precision/recall with `k_pr` neighbours and density/coverage with `k_dc`.
pub fn prdc(real: &Tensor, fake: &Tensor, k_pr: i64, k_dc: i64) -> Result<Prdc> {
    let kmax = k_pr.max(k_dc);
    let (nr, d) = check_features(real, "precision/recall real", kmax + 1)?;
    let (nf, d2) = check_features(fake, "precision/recall fake", kmax + 1)?;
    if d != d2 {
        return Err(GanError::Input(format!(
            "precision/recall: feature dimensions differ ({d} vs {d2})"
        )));
    }
    if k_pr < 1 || k_dc < 1 {
        return Err(GanError::Input("precision/recall: k must be >= 1".into()));
    }
    let real = real.to_kind(Kind::Float);
    let fake = fake.to_kind(Kind::Float);
    let r_pr = knn_radii(&real, k_pr).unsqueeze(0);
    let r_dc = knn_radii(&real, k_dc).unsqueeze(0);
    let f_pr = knn_radii(&fake, k_pr).unsqueeze(0);
    let (mut prec, mut dens) = (0.0, 0.0);
    // Fake rows against reals: precision and density.
    blocks(&fake, &real, |_, dist| {
        prec += dist
            .le_tensor(&r_pr)
            .any_dim(1, false)
            .sum(Kind::Double)
            .double_value(&[]);
        dens += dist.le_tensor(&r_dc).sum(Kind::Double).double_value(&[]);
    });
    let (mut rec, mut cov) = (0.0, 0.0);
    let r_dc_col = r_dc.squeeze_dim(0);
    // Real rows against fakes: recall and coverage.
    blocks(&real, &fake, |lo, dist| {
        rec += dist
            .le_tensor(&f_pr)
            .any_dim(1, false)
            .sum(Kind::Double)
            .double_value(&[]);
        let nearest = dist.min_dim(1, false).0;
        let radius = r_dc_col.narrow(0, lo, nearest.size()[0]);
        cov += nearest
            .le_tensor(&radius)
            .sum(Kind::Double)
            .double_value(&[]);
    });
    Ok(Prdc {
        precision: prec / nf as f64,
        recall: rec / nr as f64,
        density: dens / (k_dc as f64 * nf as f64),
        coverage: cov / nr as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(n: i64, d: i64, f: impl Fn(f64, f64) -> f64) -> Tensor {
        let v: Vec<f64> = (0..n)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| f(i as f64, j as f64))
            .collect();
        Tensor::from_slice(&v).view([n, d])
    }

    fn reference(key: &str) -> f64 {
        let text = include_str!("../../../../tests/fixtures/feature_metrics_reference.txt");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// FID and KID against numpy/scipy (tests/fixtures/feature_metrics_reference.py); FID
    /// tolerance 1e-9 relative (both f64; sqrtm vs eigh round-off), KID 1e-10 relative.
    #[test]
    fn fid_and_kid_match_scipy_reference() {
        let h = |a: f64| {
            let x = 43758.5453 * a.sin();
            x - x.floor()
        };
        let real = feats(60, 8, |i, j| h(12.9898 * i + 78.233 * j + 1.0));
        let fake = feats(50, 8, |i, j| h(39.346 * i + 11.135 * j + 2.0) + 0.1 * j);
        let a = FeatureStats::from_features(&real).unwrap();
        let b = FeatureStats::from_features(&fake).unwrap();
        let fid = frechet_distance(&a, &b).unwrap();
        let want = reference("fid");
        assert!(
            (fid - want).abs() < 1e-9 * want,
            "fid {fid} vs scipy {want}"
        );
        let k = kid(&real.narrow(0, 0, 50), &fake, 3, 50, 7).unwrap();
        let want = reference("kid");
        assert!(
            (k.mean - want).abs() < 1e-10 * want,
            "kid {} vs {want}",
            k.mean
        );
        assert!(k.std < 1e-12 * want, "all rows drawn: every subset equal");
    }

    /// Closed form for diagonal covariances: |μ1 − μ2|² + Σ (√a_i − √b_i)²; identical feature
    /// sets give |FID| < 1e-6; the stats file round-trips.
    #[test]
    fn fid_closed_form_identity_and_cache() {
        let stats = |mu: &[f64], var: &[f64]| FeatureStats {
            n: 10,
            mu: Tensor::from_slice(mu),
            sigma: Tensor::from_slice(var).diag(0),
        };
        let a = stats(&[0.0, 1.0, 2.0], &[1.0, 4.0, 0.25]);
        let b = stats(&[1.0, 1.0, 0.0], &[9.0, 1.0, 0.25]);
        let want = 1.0 + 4.0 + (1.0f64 - 3.0).powi(2) + (2.0f64 - 1.0).powi(2);
        let got = frechet_distance(&a, &b).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        let _rng = crate::test_rng_lock();
        tch::manual_seed(3);
        let f = Tensor::randn([500, 64], (Kind::Float, tch::Device::Cpu));
        let s = FeatureStats::from_features(&f).unwrap();
        assert!(frechet_distance(&s, &s).unwrap().abs() < 1e-6);
        let dir = std::env::temp_dir().join(format!("ganlab-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.safetensors");
        s.save(&p).unwrap();
        let back = FeatureStats::load(&p).unwrap();
        assert_eq!(back.n, 500);
        assert!(frechet_distance(&s, &back).unwrap().abs() < 1e-9);
        std::fs::write(&p, b"garbage").unwrap();
        assert!(FeatureStats::load(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        let bad = Tensor::from_slice(&[f64::NAN, 1.0, 2.0, 3.0]).view([2, 2]);
        assert!(FeatureStats::from_features(&bad).is_err());
    }

    /// IS closed forms: uniform predictions give 1; confident predictions spread evenly over
    /// K classes in every split give K (to 1e-6 with logit gap 100).
    #[test]
    fn inception_score_closed_forms() {
        let flat = Tensor::zeros([100, 10], (Kind::Float, tch::Device::Cpu));
        let s = inception_score(&flat, 10).unwrap();
        assert!((s.mean - 1.0).abs() < 1e-12 && s.std < 1e-12);
        let confident = feats(100, 10, |i, j| if (i % 10.0) == j { 100.0 } else { 0.0 });
        let s = inception_score(&confident, 10).unwrap();
        assert!((s.mean - 10.0).abs() < 1e-6, "{s:?}");
        // One class only: no diversity, IS = 1.
        let collapsed = feats(100, 10, |_, j| if j == 3.0 { 100.0 } else { 0.0 });
        assert!((inception_score(&collapsed, 10).unwrap().mean - 1.0).abs() < 1e-6);
    }

    /// PRDC: identical sets give precision = recall = coverage = 1; far-apart sets give 0;
    /// a 1-D case computed by hand.
    #[test]
    fn prdc_cases() {
        let x = feats(40, 3, |i, j| ((i + 1.0) * (j + 2.0)).sin());
        let same = prdc(&x, &x, 3, 5).unwrap();
        assert_eq!(
            (same.precision, same.recall, same.coverage),
            (1.0, 1.0, 1.0)
        );
        let far = prdc(&x, &(&x + 100.0), 3, 5).unwrap();
        assert_eq!(
            far,
            Prdc {
                precision: 0.0,
                recall: 0.0,
                density: 0.0,
                coverage: 0.0
            }
        );
        // Reals at 0, 1, 2, 3 (k = 1: radius 1 each); fakes at 0.5, 10, 11, 12.5 (k = 1
        // radii 9.5, 1, 1, 1.5). Fake 0.5 lies in the balls of reals 0 and 1 → precision 1/4,
        // density 2/(1·4); reals 0, 1 are within 9.5 of fake 0.5, and reals 2, 3 too (1.5,
        // 2.5 ≤ 9.5) → recall 1; coverage: reals whose nearest fake is within radius 1:
        // real 0 (0.5) and real 1 (0.5) → 2/4.
        let r = Tensor::from_slice(&[0.0f64, 1.0, 2.0, 3.0]).view([4, 1]);
        let f = Tensor::from_slice(&[0.5f64, 10.0, 11.0, 12.5]).view([4, 1]);
        let got = prdc(&r, &f, 1, 1).unwrap();
        assert_eq!(
            got,
            Prdc {
                precision: 0.25,
                recall: 1.0,
                density: 0.5,
                coverage: 0.5
            }
        );
        assert!(prdc(&r, &f, 5, 5).is_err(), "k must be below the set size");
    }
}
