// Builds a tiny Llama-2-style (SentencePiece BPE, byte fallback) tokenizer.json and records what
// Tokenizers.js (@huggingface/tokenizers, an independent JS implementation of HF tokenizers) makes
// of it, as fixtures for tests/tokenizer/test_spm.cpp:
//   tests/tokenizer/data/spm_tiny.json         the tokenizer (legacy layout: Prepend/Replace normalizer)
//   tests/tokenizer/data/spm_tiny_golden.json  per-token scores/types, and for each test string the ids
//                                              and decoded text, for the legacy layout and for the
//                                              Metaspace(prepend_scheme "first", split false) layout.
// The vocabulary: <unk> <s> </s>, the 256 <0xXX> byte tokens, pieces from a small BPE run over the
// European-language and code lines of tests/data/multilingual.txt (score -rank), then the single
// characters of those lines (lower scores). CJK, Arabic, Hindi and emoji are not in it, so they take
// the byte fallback. Merges are derived from the scores exactly as HF transformers'
// convert_slow_tokenizer.generate_merges does for Llama (so merge ranks and scores agree).
// Usage: cd tools/tokenizer-js && npm install && node make_spm_fixture.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const root = new URL("../../", import.meta.url);
const text = readFileSync(new URL("tests/data/multilingual.txt", root), "utf8");
const lines = text.split("\n");
const trainLines = [0, 1, 2, 3, 4, 11, 12, 13, 14, 16, 17, 18].map((i) => lines[i]);
const SP = "\u2581";
const NUM_MERGES = 300;

// --- a tiny SentencePiece-like BPE training run (words = space-separated, "▁" in front) ---
const wordCounts = new Map();
for (const line of trainLines)
  for (const w of line.split(" ")) wordCounts.set(SP + w, (wordCounts.get(SP + w) ?? 0) + 1);
const seqs = [...wordCounts.entries()].map(([w, c]) => ({ syms: Array.from(w), c }));
const mergedPieces = [];
for (let step = 0; step < NUM_MERGES; ++step) {
  const counts = new Map();
  for (const { syms, c } of seqs)
    for (let i = 0; i + 1 < syms.length; ++i) {
      const k = syms[i] + "\u0000" + syms[i + 1];
      counts.set(k, (counts.get(k) ?? 0) + c);
    }
  let best = null, bestCount = 0;
  for (const [k, c] of counts) if (c > bestCount || (c === bestCount && k < best)) [best, bestCount] = [k, c];
  if (best === null) break;
  const [a, b] = best.split("\u0000");
  mergedPieces.push(a + b);
  for (const s of seqs) {
    const out = [];
    for (let i = 0; i < s.syms.length; ) {
      if (i + 1 < s.syms.length && s.syms[i] === a && s.syms[i + 1] === b) { out.push(a + b); i += 2; }
      else { out.push(s.syms[i]); i += 1; }
    }
    s.syms = out;
  }
}

// --- vocabulary with scores and GGUF token types (2 unknown, 3 control, 6 byte, 1 normal) ---
const pieces = [["<unk>", 0, 2], ["<s>", 0, 3], ["</s>", 0, 3]];
for (let b = 0; b < 256; ++b) pieces.push([`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0, 6]);
const seen = new Set(pieces.map((p) => p[0]));
let rank = 0;
for (const p of mergedPieces) {
  if (seen.has(p)) continue;
  seen.add(p);
  pieces.push([p, -rank, 1]);
  rank += 1;
}
const charCounts = new Map();
for (const [w, c] of wordCounts) for (const ch of Array.from(w)) charCounts.set(ch, (charCounts.get(ch) ?? 0) + c);
const chars = [...charCounts.entries()].sort((x, y) => y[1] - x[1] || x[0].codePointAt(0) - y[0].codePointAt(0));
for (const [ch] of chars) {
  if (seen.has(ch)) continue;
  seen.add(ch);
  pieces.push([ch, -rank, 1]);
  rank += 1;
}

// --- merges: transformers convert_slow_tokenizer.generate_merges(vocab, vocab_scores) ---
const vocab = new Map(pieces.map((p, i) => [p[0], i]));
const clen = (s) => Array.from(s).length;
let merges = [];
for (const [piece, score] of pieces) {
  const cs = Array.from(piece);
  const local = [];
  for (let i = 1; i < cs.length; ++i) {
    const l = cs.slice(0, i).join(""), r = cs.slice(i).join("");
    if (vocab.has(l) && vocab.has(r)) local.push([l, r, score]);
  }
  local.sort((x, y) => vocab.get(x[0]) - vocab.get(y[0]) || vocab.get(x[1]) - vocab.get(y[1]));
  merges.push(...local);
}
merges = merges
  .map((m, i) => [...m, i])
  .sort((x, y) => y[2] - x[2] || clen(y[0]) - clen(x[0]) || clen(y[1]) - clen(x[1]) || x[3] - y[3])
  .map((m) => [m[0], m[1]]);

const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const legacy = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
  normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: SP }, { type: "Replace", pattern: { String: " " }, content: SP }] },
  pre_tokenizer: null,
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
  },
  decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: SP }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
  model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: Object.fromEntries(vocab), merges },
};
// Newer Llama files (legacy=false): no normalizer, a Metaspace pre-tokenizer.
const metaspace = { ...legacy, normalizer: null, pre_tokenizer: { type: "Metaspace", replacement: SP, prepend_scheme: "first", split: false } };

const cases = lines.filter((l) => l.length > 0);
cases.push(text, "Hello world", " Hello", "  two leading", "trailing  ", "<s>Hello</s> world", "a<s>b", "\t\n", "ẞ", "😀",
           "👨‍👩‍👧‍👦", "Größe", "données", "東京");
const config = { clean_up_tokenization_spaces: false };
const run = (json) => {
  const tok = new Tokenizer(json, config);
  return cases.map((s) => {
    const ids = tok.encode(s, { add_special_tokens: false }).ids;
    const withSpecial = tok.encode(s).ids;
    return {
      ids,
      with_special: withSpecial,
      decoded: ids.length ? tok.decode(ids) : "",
      decoded_with_special: tok.decode(withSpecial),
      decoded_skip_special: tok.decode(withSpecial, { skip_special_tokens: true }),
    };
  });
};
const legacyOut = run(legacy), metaOut = run(metaspace);
const pkg = JSON.parse(readFileSync(new URL("node_modules/@huggingface/tokenizers/package.json", import.meta.url), "utf8"));
const golden = {
  generator: "tools/tokenizer-js/make_spm_fixture.mjs",
  tokenizers_js: `${pkg.name} ${pkg.version}`,
  scores: pieces.map((p) => p[1]),
  types: pieces.map((p) => p[2]),
  cases: cases.map((s, i) => ({ text: s, legacy: legacyOut[i], metaspace: metaOut[i] })),
};
writeFileSync(new URL("tests/tokenizer/data/spm_tiny.json", root), JSON.stringify(legacy, null, 1) + "\n");
// One line per case keeps the file small and its diffs readable.
const goldenText = "{\n" + ["generator", "tokenizers_js", "scores", "types"].map((k) => `"${k}": ${JSON.stringify(golden[k])},\n`).join("") +
  `"cases": [\n${golden.cases.map((c) => JSON.stringify(c)).join(",\n")}\n]\n}\n`;
writeFileSync(new URL("tests/tokenizer/data/spm_tiny_golden.json", root), goldenText);
console.log(`vocab ${pieces.length}, merges ${merges.length}, cases ${cases.length}`);
