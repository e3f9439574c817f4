// tiktoken_gpt2.cjs - helper for tests/bench/tokenizer.sh, run with NODE_PATH
// holding the npm package `tiktoken`.
//   node tiktoken_gpt2.cjs json OUT.json     writes GPT-2 as a Hugging Face
//       tokenizer.json (GPT-2 layout: byte-to-unicode keys, "a b" merges),
//       rebuilt from tiktoken's ranks: the merge of token r is the last step
//       of BPE over its bytes with the ranks below r.
//   node tiktoken_gpt2.cjs encode FILE       encodes FILE with tiktoken gpt2 on
//       one thread (best of 3) and prints "seconds ids-file" after writing the
//       ids, one per line, to FILE.tiktoken-ids
"use strict";
const fs = require("fs");
const [cmd, arg] = process.argv.slice(2);

if (cmd === "json") {
  const ranks = require("tiktoken/encoders/gpt2.json");
  const toks = [];
  for (const line of ranks.bpe_ranks.split("\n").filter(Boolean)) {
    const [, off, ...t] = line.split(" ");
    t.forEach((b64, i) => (toks[Number(off) + i] = Buffer.from(b64, "base64").toString("latin1")));
  }
  const rank = new Map(toks.map((t, i) => [t, i]));
  // GPT-2 byte-to-unicode
  const cp = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const pr = (b >= 33 && b <= 126) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    cp[b] = pr ? b : 256 + n++;
  }
  const spell = (s) => Array.from(s, (c) => String.fromCodePoint(cp[c.charCodeAt(0)])).join("");
  const vocab = {};
  toks.forEach((t, i) => (vocab[spell(t)] = i));
  vocab["<|endoftext|>"] = 50256;
  const merges = [];
  for (let r = 256; r < toks.length; r++) {
    let parts = Array.from(toks[r]);
    while (parts.length > 2) {
      let best = -1, at = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = rank.get(parts[i] + parts[i + 1]);
        if (k !== undefined && k < r && (best < 0 || k < best)) { best = k; at = i; }
      }
      if (at < 0) throw new Error("no merge path for rank " + r);
      parts.splice(at, 2, parts[at] + parts[at + 1]);
    }
    merges.push(spell(parts[0]) + " " + spell(parts[1]));
  }
  const bl = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  fs.writeFileSync(arg, JSON.stringify({
    version: "1.0", truncation: null, padding: null,
    added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null, pre_tokenizer: bl, post_processor: bl, decoder: bl,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, vocab, merges },
  }));
} else if (cmd === "encode") {
  const { get_encoding } = require("tiktoken");
  const enc = get_encoding("gpt2");
  const text = fs.readFileSync(arg, "utf8");
  let best = Infinity, ids;
  for (let k = 0; k < 3; k++) {
    const t0 = process.hrtime.bigint();
    ids = enc.encode_ordinary(text);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (s < best) best = s;
  }
  fs.writeFileSync(arg + ".tiktoken-ids", Array.from(ids).join("\n") + "\n");
  console.log(best.toFixed(4));
  enc.free();
} else {
  console.error("usage: tiktoken_gpt2.cjs json OUT | encode FILE");
  process.exit(2);
}
