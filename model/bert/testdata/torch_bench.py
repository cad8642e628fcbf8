"""PyTorch reference benchmark for medseq's BERT training step (no transformers needed).

usage: torch_bench.py --config tiny|small|base [--steps N] [--warmup N] [--threads 2] [--task mlm|classify]
    [--device cpu|cuda] [--dtype float32|tf32|bfloat16|float16] [--attention plain|sdpa] [--attn-dropout P]

Builds the same model as model/bert (post-LayerNorm BERT, eps 1e-12, exact GELU, token +
position + token-type embeddings, attention scaled by 1/sqrt(head dim) with a key padding
mask, dropout 0.1 on hidden states and attention probabilities, MLM head with the decoder tied
to the word embeddings, loss on gathered masked positions padded to a multiple of 8 with weight
0) and the same training step (AdamW with betas 0.9/0.999, eps 1e-8, weight decay 0.01 on
weights other than LayerNorm, biases and embeddings, gradient clipping at global norm 1). The
batch is medseq's benchmark batch: vocab 2000, 32 sequences of 64 tokens, a fresh 15% masking
(80/10/10) every step. It times --steps steps after --warmup steps and prints one JSON line:
{"tokens_per_s", "steps_per_s", "peak_rss_mb", "base_rss_mb", ...}; peak_rss_mb is the
process's VmHWM, reset (clear_refs 5) after torch is imported and before the model is built.

On a GPU it is what a PyTorch user would run: --dtype bfloat16 and float16 are autocast (float16
with torch.amp.GradScaler's dynamic loss scaling), --attention sdpa is
F.scaled_dot_product_attention (flash or memory-efficient kernels; with no padding in the
benchmark batch no mask is passed, so the flash kernel may serve it), --attn-dropout sets the
attention-probability dropout (medseq's fused attention has none: the benchmark passes 0 beside
it). peak_gpu_mb is torch.cuda.max_memory_allocated, peak_gpu_reserved_mb what its caching
allocator held at most.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "tiny": dict(hidden=64, layers=2, heads=4, ffn=256),
    "small": dict(hidden=256, layers=4, heads=4, ffn=1024),
    "base": dict(hidden=768, layers=12, heads=12, ffn=3072),
}


def vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Layer(nn.Module):
    def __init__(self, H, nh, ffn, p, eps, attention="plain", attn_p=None):
        super().__init__()
        self.nh, self.hd, self.p = nh, H // nh, p
        self.attention = attention
        self.attn_p = p if attn_p is None else attn_p
        self.q, self.k, self.v = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
        self.ao = nn.Linear(H, H)
        self.aln = nn.LayerNorm(H, eps=eps)
        self.i = nn.Linear(H, ffn)
        self.o = nn.Linear(ffn, H)
        self.oln = nn.LayerNorm(H, eps=eps)

    def forward(self, x, bias):
        B, L, H = x.shape
        def heads(t):
            return t.view(B, L, self.nh, self.hd).permute(0, 2, 1, 3)
        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        if self.attention == "sdpa":
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                                 dropout_p=self.attn_p if self.training else 0.0)
        else:
            s = q @ k.transpose(-1, -2) / math.sqrt(self.hd) + bias
            a = F.dropout(torch.softmax(s, dim=-1), self.attn_p, self.training)
            ctx = a @ v
        ctx = ctx.permute(0, 2, 1, 3).reshape(B, L, H)
        x = self.aln(F.dropout(self.ao(ctx), self.p, self.training) + x)
        h = F.gelu(self.i(x))  # exact (erf) GELU
        return self.oln(F.dropout(self.o(h), self.p, self.training) + x)


class Bert(nn.Module):
    def __init__(self, V, maxpos, H, layers, nh, ffn, p=0.1, eps=1e-12, attention="plain", attn_p=None):
        super().__init__()
        self.p, self.attention = p, attention
        self.word = nn.Embedding(V, H)
        self.pos = nn.Embedding(maxpos, H)
        self.tt = nn.Embedding(2, H)
        self.eln = nn.LayerNorm(H, eps=eps)
        self.layers = nn.ModuleList([Layer(H, nh, ffn, p, eps, attention, attn_p) for _ in range(layers)])
        self.tdense = nn.Linear(H, H)
        self.tln = nn.LayerNorm(H, eps=eps)
        self.mlm_bias = nn.Parameter(torch.zeros(V))
        self.pooler = nn.Linear(H, H)
        self.cls = nn.Linear(H, 1)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def encode(self, ids, mask):
        B, L = ids.shape
        x = self.word(ids) + self.pos.weight[:L][None] + self.tt.weight[0][None, None]
        x = F.dropout(self.eln(x), self.p, self.training)
        if self.attention == "sdpa" and bool(mask.all()):
            bias = None  # no padding: no mask, so the flash kernel may serve it
        elif self.attention == "sdpa":
            bias = mask.bool()[:, None, None, :]
        else:
            bias = ((1.0 - mask.float()) * -1e9)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        return x

    def mlm_loss(self, ids, mask, positions, targets, weights):
        x = self.encode(ids, mask)
        H = x.shape[-1]
        g = torch.gather(x, 1, positions[:, :, None].expand(-1, -1, H))
        t = self.tln(F.gelu(self.tdense(g)))
        logits = t @ self.word.weight.T + self.mlm_bias  # tied decoder
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        w = weights.reshape(-1)
        return (nll * w).sum() / w.sum().clamp(min=1)

    def classify_loss(self, ids, mask, labels):
        x = self.encode(ids, mask)
        pooled = F.dropout(torch.tanh(self.pooler(x[:, 0])), self.p, self.training)
        z = self.cls(pooled)[:, 0]
        return F.binary_cross_entropy_with_logits(z, labels)


def decays(name):
    return name.endswith("weight") and not any(s in name for s in ("ln", "word", "pos", "tt"))


def mlm_batch(g, B, L, V, rate=0.15, mask_id=4, special=5):
    """medseq's MakeMLMBatch: [CLS]=2 first, 15% of the other tokens chosen (at least one),
    80/10/10, positions padded per row to a shared multiple of 8 with weight 0."""
    ids = torch.randint(special, V, (B, L), generator=g)
    ids[:, 0] = 2
    chosen = torch.rand(B, L, generator=g) < rate
    chosen[:, 0] = False
    for i in range(B):
        if not chosen[i].any():
            chosen[i, 1 + int(torch.randint(0, L - 1, (1,), generator=g))] = True
    counts = chosen.sum(1)
    P = int((counts.max() + 7) // 8 * 8)
    positions = torch.zeros(B, P, dtype=torch.long)
    targets = torch.zeros(B, P, dtype=torch.long)
    weights = torch.zeros(B, P)
    corrupted = ids.clone()
    u = torch.rand(B, L, generator=g)
    rnd = torch.randint(special, V, (B, L), generator=g)
    corrupted[chosen & (u < 0.8)] = mask_id
    sel = chosen & (u >= 0.8) & (u < 0.9)
    corrupted[sel] = rnd[sel]
    for i in range(B):
        p = chosen[i].nonzero()[:, 0]
        n = p.numel()
        positions[i, :n], targets[i, :n], weights[i, :n] = p, ids[i, p], 1
    return corrupted, torch.ones(B, L, dtype=torch.long), positions, targets, weights


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--task", default="mlm", choices=["mlm", "classify"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=0, help="time at least this long (more steps)")
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "tf32", "bfloat16", "float16"],
                    help="tf32: float32 with TF32 matrix products (allow_tf32); bfloat16: autocast mixed "
                    "precision (float32 weights and optimizer state), as medseq's --dtype bfloat16; float16: "
                    "the same in float16 with GradScaler")
    ap.add_argument("--attention", default="plain", choices=["plain", "sdpa"])
    ap.add_argument("--attn-dropout", type=float, default=None, help="attention-probability dropout (default 0.1)")
    args = ap.parse_args()
    if args.attention == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):  # torch < 2.0
        args.attention = "plain"
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.dtype in ("tf32", "bfloat16")
    torch.backends.cudnn.allow_tf32 = args.dtype in ("tf32", "bfloat16")
    torch.manual_seed(1)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = vm("VmRSS")
    c = CONFIGS[args.config]
    dev = torch.device(args.device)
    model = Bert(args.vocab, args.seq, c["hidden"], c["layers"], c["heads"], c["ffn"], attention=args.attention,
                 attn_p=args.attn_dropout).to(dev).train()
    named = list(model.named_parameters())
    if args.task == "mlm":
        named = [(n, p) for n, p in named if not n.startswith(("pooler", "cls"))]
    else:
        named = [(n, p) for n, p in named if not n.startswith(("tdense", "tln", "mlm_bias"))]
    groups = [
        {"params": [p for n, p in named if decays(n)], "weight_decay": 0.01},
        {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    params = [p for _, p in named]
    g = torch.Generator().manual_seed(2)
    B, L, V = args.batch, args.seq, args.vocab
    labels = (torch.arange(B) % 2).float().to(dev)

    half = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(args.dtype)
    autocast = torch.autocast(device_type=dev.type, dtype=half or torch.bfloat16, enabled=half is not None)
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        scaler = torch.amp.GradScaler(dev.type, enabled=args.dtype == "float16")
    else:
        scaler = torch.cuda.amp.GradScaler(enabled=args.dtype == "float16")

    def step():
        if args.task == "mlm":
            batch = [t.to(dev) for t in mlm_batch(g, B, L, V)]
            with autocast:
                loss = model.mlm_loss(*batch).float()
        else:
            ids = torch.randint(5, V, (B, L), generator=g)
            ids[:, 0] = 2
            with autocast:
                loss = model.classify_loss(ids.to(dev), torch.ones(B, L, dtype=torch.long, device=dev), labels).float()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()
        return loss, norm

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < args.steps or time.perf_counter() - t0 < args.seconds:
        loss, _ = step()
        n += 1
    loss = float(loss)
    sync()
    dt = time.perf_counter() - t0
    out = {
        "framework": "pytorch", "torch": torch.__version__, "config": args.config, "task": args.task,
        "device": str(dev), "dtype": args.dtype, "attention": args.attention,
        "threads": torch.get_num_threads(), "batch": B, "seq": L, "vocab": V, "steps": n, "seconds": dt,
        "steps_per_s": n / dt, "tokens_per_s": n * B * L / dt, "loss": loss,
        "peak_rss_mb": vm("VmHWM"), "base_rss_mb": base,
        "params": sum(p.numel() for p in params),
    }
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        out["gpu"] = torch.cuda.get_device_name(dev)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
