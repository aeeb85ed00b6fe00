#!/usr/bin/env node
// The oracle: Hugging Face's tokenizers library (npm @anush008/tokenizers, native bindings).
//   node oracle.js MODULE_DIR encode TOKENIZER_JSON CORPUS_JSONL OUT_JSONL
//       per corpus line: {"ids": encode(with specials), "plain": encode(without),
//                         "dec": decode(ids), "dec_skip": decode(ids, skip_special_tokens)}
//   node oracle.js MODULE_DIR bench TOKENIZER_JSON TEXT_FILE
//       load time, encode MB/s (line by line, and whole file as one text, as
//       `folio tokenize --bench`), decode MB/s
// Corpus lines are JSON strings in "surrogateescape" form (\udcXX = raw byte XX). The library
// only takes valid strings, so bytes are rebuilt and decoded lossily (each maximal invalid
// subpart -> U+FFFD, the WHATWG rule, the same one folio applies to invalid input).
'use strict';
const fs = require('fs');
const [, , moduleDir, mode, tokPath, inPath, outPath] = process.argv;
const { Tokenizer } = require(moduleDir);

function toValidString(s) {
  const parts = [];
  let run = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const lone = c >= 0xdc80 && c <= 0xdcff && !(i > 0 && s.charCodeAt(i - 1) >= 0xd800 && s.charCodeAt(i - 1) <= 0xdbff);
    if (lone) {
      parts.push(Buffer.from(run, 'utf8'), Buffer.from([c - 0xdc00]));
      run = '';
    } else run += s[i];
  }
  parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts).toString('utf8');
}

async function encodeCorpus() {
  const tok = Tokenizer.fromFile(tokPath);
  const lines = fs.readFileSync(inPath, 'utf8').split('\n').filter((l) => l.length);
  const out = [];
  for (const line of lines) {
    const text = toValidString(JSON.parse(line));
    const ids = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    const plain = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    const dec = await tok.decode(ids, false);
    const decSkip = await tok.decode(ids, true);
    out.push(JSON.stringify({ ids, plain, dec, dec_skip: decSkip }));
  }
  fs.writeFileSync(outPath, out.join('\n') + '\n');
}

async function bench() {
  let t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(tokPath);
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const data = fs.readFileSync(inPath, 'utf8');
  const lines = data.match(/[^\n]*\n|[^\n]+$/g) || [];
  const bytes = Buffer.byteLength(data, 'utf8');
  t0 = process.hrtime.bigint();
  let all = [];
  for (const l of lines) {
    const ids = (await tok.encode(l, null, { addSpecialTokens: false })).getIds();
    for (const id of ids) all.push(id);
  }
  const encS = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  await tok.encode(data, null, { addSpecialTokens: false });
  const wholeS = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  const text = await tok.decode(all, false);
  const decS = Number(process.hrtime.bigint() - t0) / 1e9;
  const outBytes = Buffer.byteLength(text, 'utf8');
  console.log(`file ${inPath}: ${bytes} bytes, ${all.length} tokens`);
  console.log(`load_s ${loadS.toFixed(3)}`);
  console.log(`encode_MBps ${(bytes / 1e6 / encS).toFixed(2)} (${encS.toFixed(3)} s)`);
  console.log(`encode_whole_MBps ${(bytes / 1e6 / wholeS).toFixed(2)} (${wholeS.toFixed(3)} s)`);
  console.log(`decode_MBps ${(outBytes / 1e6 / decS).toFixed(2)} (${decS.toFixed(3)} s)`);
}

(mode === 'bench' ? bench() : encodeCorpus()).catch((e) => { console.error(e); process.exit(1); });
