"""Independent PyTorch reference for medseq's BERT (no transformers needed).

usage: reference.py MODEL_DIR INPUTS_JSON OUTPUT_JSON

Reads MODEL_DIR/config.json and MODEL_DIR/model.safetensors (parsed here by hand), runs
HuggingFace BERT's math (BertForSequenceClassification / BertForMaskedLM, eval mode; the pooler on
the mean of the unmasked tokens when config.json's medseq_pooling is "mean") on the
inputs {"ids": [[...]], "mask": [[...]], "ages": [[...]], "positions": [[...]]} and writes
{"logits": [...], "mlm_logits": [[[...]]]}. When transformers is importable it also runs
BertForSequenceClassification itself and writes "hf_logits".
"""
import json
import os
import math
import struct
import sys

import torch

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    body = buf[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[b:en]), dtype=DT[e["dtype"]]).reshape(e["shape"])
        out[name] = t.double() if os.environ.get("REF_FLOAT64") else t.float()
    return out


def main():
    model_dir, inputs_path, out_path = sys.argv[1:4]
    cfg = json.load(open(model_dir + "/config.json"))
    W = load_safetensors(model_dir + "/model.safetensors")
    inp = json.load(open(inputs_path))
    ids = torch.tensor(inp["ids"], dtype=torch.long)
    mask = torch.tensor(inp["mask"], dtype=W["bert.embeddings.LayerNorm.weight"].dtype)
    B, L = ids.shape
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    hd = H // nh
    eps = cfg["layer_norm_eps"]

    def lin(x, p):
        return x @ W[p + ".weight"].T + W[p + ".bias"]

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (H,), W[p + ".weight"], W[p + ".bias"], eps)

    def gelu(x):
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))

    with torch.no_grad():
        x = W["bert.embeddings.word_embeddings.weight"][ids]
        x = x + W["bert.embeddings.position_embeddings.weight"][:L][None]
        x = x + W["bert.embeddings.token_type_embeddings.weight"][0][None, None]
        if cfg.get("age_embeddings"):
            ages = torch.tensor(inp["ages"], dtype=torch.float32)
            bucket = ages.floor().clamp(0, cfg["age_buckets"] - 1).long()
            x = x + W["bert.embeddings.age_embeddings.weight"][bucket]
        if cfg.get("time_embeddings"):
            # floor(log2(floor(days) + 1)), exactly, in integers, clamped to the buckets.
            days = [[int(d) if d > 0 else 0 for d in row] for row in inp["days"]]
            bucket = torch.tensor([[min((d + 1).bit_length() - 1, cfg["time_buckets"] - 1) for d in row] for row in days], dtype=torch.long)
            x = x + W["bert.embeddings.time_embeddings.weight"][bucket]
        x = ln(x, "bert.embeddings.LayerNorm")
        ext = (1.0 - mask)[:, None, None, :] * torch.finfo(mask.dtype).min
        for l in range(cfg["num_hidden_layers"]):
            p = "bert.encoder.layer.%d." % l
            def heads(t):
                return t.view(B, L, nh, hd).permute(0, 2, 1, 3)
            q = heads(lin(x, p + "attention.self.query"))
            k = heads(lin(x, p + "attention.self.key"))
            v = heads(lin(x, p + "attention.self.value"))
            s = q @ k.transpose(-1, -2) / math.sqrt(hd) + ext
            a = torch.softmax(s, dim=-1)
            ctx = (a @ v).permute(0, 2, 1, 3).reshape(B, L, H)
            x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = gelu(lin(x, p + "intermediate.dense"))
            x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        out = {}
        if "classifier.weight" in W:
            if cfg.get("medseq_pooling") == "mean":
                # The mean of the last hidden states over the tokens the mask keeps.
                m = mask[:, :, None]
                rep = (x * m).sum(1) / m.sum(1).clamp(min=1)
            else:
                rep = x[:, 0]
            pooled = torch.tanh(lin(rep, "bert.pooler.dense"))
            out["logits"] = lin(pooled, "classifier")[:, 0].tolist()
        if "cls.predictions.bias" in W and "positions" in inp:
            pos = torch.tensor(inp["positions"], dtype=torch.long)
            g = torch.gather(x, 1, pos[:, :, None].expand(-1, -1, H))
            t = ln(gelu(lin(g, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
            out["mlm_logits"] = (t @ W["bert.embeddings.word_embeddings.weight"].T + W["cls.predictions.bias"]).tolist()
    try:
        import transformers  # noqa: F401
        # transformers pools [CLS] only: a mean-pooling model is not its model.
        if not cfg.get("age_embeddings") and not cfg.get("time_embeddings") and cfg.get("medseq_pooling") != "mean":
            m = transformers.BertForSequenceClassification.from_pretrained(model_dir).eval()
            with torch.no_grad():
                out["hf_logits"] = m(input_ids=ids, attention_mask=mask.long()).logits[:, 0].tolist()
    except ImportError:
        pass
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main()
