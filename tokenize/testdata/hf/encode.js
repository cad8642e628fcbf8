#!/usr/bin/env node
// Reference encoder for medseq's tokenizer.json: HuggingFace `tokenizers` (Node bindings).
//
//   node encode.js TOKENIZER_JSON CORPUS [OUT]
//       Encodes every line of CORPUS (one sequence a line: whitespace-separated codes; a final
//       newline does not start a sequence) with add_special_tokens, and writes the ids, one
//       line per sequence, space-separated, to OUT (or stdout).
//   node encode.js --bench N [--method batch|encode] [--chunk C] TOKENIZER_JSON CORPUS
//       Encodes the corpus N times and prints {"sequences":..,"seconds":..,"sequences_per_s":..}
//       as JSON. Only the encoding is timed (not reading files, not loading the tokenizer).
//       Default: encodeBatch on chunks of C=1000 lines, the fastest way measured (encodeBatch
//       runs on all cores in Rust; encode is one line per call and per promise).
"use strict";

const fs = require("fs");
const { Tokenizer } = require("tokenizers");

function usage(msg) {
  if (msg) process.stderr.write(`encode.js: ${msg}\n`);
  process.stderr.write(
    "usage: node encode.js TOKENIZER_JSON CORPUS [OUT]\n" +
      "       node encode.js --bench N [--method batch|encode] [--chunk C] TOKENIZER_JSON CORPUS\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { bench: 0, method: "batch", chunk: 1000, pos: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--bench") o.bench = parseInt(val(), 10);
    else if (a === "--method") o.method = val();
    else if (a === "--chunk") o.chunk = parseInt(val(), 10);
    else if (a.startsWith("--")) usage(`unknown flag ${a}`);
    else o.pos.push(a);
  }
  if (o.pos.length < 2 || o.pos.length > 3) usage("want TOKENIZER_JSON CORPUS [OUT]");
  if (!(o.chunk > 0)) usage("--chunk must be positive");
  if (o.method !== "batch" && o.method !== "encode") usage(`unknown --method ${o.method}`);
  if (o.pos[2] !== undefined && o.bench) usage("--bench writes no ids");
  return o;
}

function readLines(path) {
  const text = fs.readFileSync(path, "utf8");
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop(); // the final newline ends the last line
  return lines;
}

const opts = { addSpecialTokens: true };

// encodeAll returns the encodings of lines in order; with keep false it only counts them
// (the benchmark: a chunk's encodings are dropped once made, so memory stays flat).
async function encodeAll(tok, lines, method, chunk, keep = true) {
  const out = keep ? new Array(lines.length) : null;
  let n = 0;
  if (method === "batch") {
    for (let lo = 0; lo < lines.length; lo += chunk) {
      const encs = await tok.encodeBatch(lines.slice(lo, lo + chunk), opts);
      n += encs.length;
      if (keep) for (let i = 0; i < encs.length; i++) out[lo + i] = encs[i];
    }
  } else {
    // One promise per line, `chunk` in flight at a time (they run on libuv's thread pool).
    for (let lo = 0; lo < lines.length; lo += chunk) {
      const hi = Math.min(lo + chunk, lines.length);
      const ps = [];
      for (let i = lo; i < hi; i++) ps.push(tok.encode(lines[i], null, opts));
      const encs = await Promise.all(ps);
      n += encs.length;
      if (keep) for (let i = 0; i < encs.length; i++) out[lo + i] = encs[i];
    }
  }
  return keep ? out : n;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const [tokPath, corpusPath, outPath] = o.pos;
  const tok = Tokenizer.fromFile(tokPath);
  const lines = readLines(corpusPath);

  if (o.bench) {
    await encodeAll(tok, lines.slice(0, Math.min(lines.length, 2 * o.chunk)), o.method, o.chunk, false); // warm-up
    let ids = 0;
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < o.bench; r++) {
      ids += await encodeAll(tok, lines, o.method, o.chunk, false);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const sequences = lines.length * o.bench;
    process.stdout.write(
      JSON.stringify({
        sequences,
        seconds,
        sequences_per_s: sequences / seconds,
        method: o.method,
        chunk: o.chunk,
        encodings: ids,
      }) + "\n",
    );
    return;
  }

  const parts = [];
  for (let lo = 0; lo < lines.length; lo += o.chunk) {
    const encs = await encodeAll(tok, lines.slice(lo, lo + o.chunk), o.method, o.chunk);
    for (const e of encs) parts.push(e.getIds().join(" "));
  }
  const text = parts.length ? parts.join("\n") + "\n" : "";
  if (outPath !== undefined) fs.writeFileSync(outPath, text);
  else process.stdout.write(text);
}

main().catch((err) => {
  process.stderr.write(`encode.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
