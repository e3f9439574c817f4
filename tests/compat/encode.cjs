// encode.cjs TOKENIZER.json FILE... - encodes each FILE (one document) with
// Hugging Face tokenizers.js and prints the ids of each document on one line,
// separated by spaces, followed by the end-of-text id, as
// `ttt-tokenize encode --text` does. Run with NODE_PATH pointing at the
// node_modules where @huggingface/tokenizers was installed.
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@huggingface/tokenizers");

const [tokPath, ...files] = process.argv.slice(2);
const json = JSON.parse(fs.readFileSync(tokPath, "utf8"));
const tok = new Tokenizer(json, { add_bos_token: false, add_eos_token: false });
const eot = json.added_tokens.find((t) => t.content === "<|endoftext|>").id;
const out = [];
for (const f of files) {
  const text = fs.readFileSync(f, "utf8");
  const enc = tok.encode(text, { add_special_tokens: false });
  out.push(enc.ids.concat([eot]).join(" "));
}
process.stdout.write(out.join("\n") + "\n");
