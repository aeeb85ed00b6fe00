#!/usr/bin/env node
// Added-token flag coverage: copies a tokenizer.json and appends added tokens that use
// lstrip / rstrip / single_word / normalized (none of the real tokenizers do), and writes a
// seeded corpus that exercises them.
//   node make_variant.js SRC_TOKENIZER_JSON DST_DIR     (DST_DIR/tokenizer.json)
//   node make_variant.js --corpus SEED N OUT_JSONL
//   node make_variant.js --metaspace SRC_TOKENIZER_JSON DST_DIR SCHEME SPLIT
//       a SentencePiece-style tokenizer moved from Prepend/Replace normalizers to the
//       Metaspace pre-tokenizer and decoder (as Mistral's newer files), prepend_scheme SCHEME
//       (always|first|never), split SPLIT (true|false)
'use strict';
const fs = require('fs');
const path = require('path');

if (process.argv[2] === '--corpus') {
  let seed = Number(process.argv[3]) >>> 0;
  const rnd = () => { // mulberry32
    seed = (seed + 0x6D2B79F5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const frags = ['<mask>', ' <mask>', '  <mask> ', 'hullo', 'hullox', 'xhullo', ' hullo ', '[END]',
    '[END]  x', 'wor ld', 'world', 'wor  ld', 'caf\u00e9', 'cafe\u0301', '<both>', ' \t<both>\n x',
    'hullo world', 'hullo  world', 'a', '  ', '\n', '\u4e2d', '_hullo', 'hullo_', 'h\u00e9llo',
    '1hullo', '\u0301hullo', 'hullo\u200d', '\u24b6hullo'];
  const lines = [];
  for (let i = 0; i < Number(process.argv[4]); i++) {
    let s = '';
    const k = 1 + Math.floor(rnd() * 8);
    for (let j = 0; j < k; j++) s += pick(frags) + pick(['', '', ' ', '  ']);
    lines.push(JSON.stringify(s));
  }
  fs.writeFileSync(process.argv[5], lines.join('\n') + '\n');
  process.exit(0);
}

if (process.argv[2] === '--metaspace') {
  const [, , , src, dst, scheme, split] = process.argv;
  const tok = JSON.parse(fs.readFileSync(src, 'utf8'));
  const meta = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split: split === 'true' };
  tok.normalizer = null;
  tok.pre_tokenizer = meta;
  tok.decoder = meta;
  fs.mkdirSync(dst, { recursive: true });
  fs.writeFileSync(path.join(dst, 'tokenizer.json'), JSON.stringify(tok));
  process.exit(0);
}

const [, , src, dst] = process.argv;
const tok = JSON.parse(fs.readFileSync(src, 'utf8'));
let next = Object.keys(tok.model.vocab).length;
for (const a of tok.added_tokens) next = Math.max(next, a.id + 1);
const add = (content, flags) => tok.added_tokens.push(Object.assign({ id: next++, content,
  single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }, flags));
add('<mask>', { lstrip: true, special: true });
add('hullo', { single_word: true, normalized: true });
add('[END]', { rstrip: true });
add('wor ld', { normalized: true });
add('cafe\u0301', { normalized: true });
add('<both>', { lstrip: true, rstrip: true, special: true });
add('hullo world', { normalized: true });
fs.mkdirSync(dst, { recursive: true });
fs.writeFileSync(path.join(dst, 'tokenizer.json'), JSON.stringify(tok));
