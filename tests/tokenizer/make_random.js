#!/usr/bin/env node
// Random strings for tokenizer stress tests (not the fixed corpus): node make_random.js SEED N OUT
// Mixes random code points from many scripts (letters, marks, digits, spaces, punctuation,
// emoji, surrogate-escaped raw bytes) and fragments that stress special-token matching.
'use strict';
const fs = require('fs');
const [, , seedArg, nArg, out] = process.argv;
let seed = Number(seedArg) >>> 0;
function rnd() {
  seed = (seed + 0x6D2B79F5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const ranges = [[0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x09, 0x0d], [0xa0, 0x24f], [0x300, 0x36f],
  [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f],
  [0x1100, 0x11ff], [0x1e00, 0x1eff], [0x2000, 0x206f], [0x2100, 0x22ff], [0x3000, 0x30ff],
  [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xfb00, 0xfdff], [0xfe00, 0xfe0f], [0xff00, 0xffef],
  [0x1f300, 0x1faff], [0x1f1e6, 0x1f1ff], [0x1f3fb, 0x1f3ff], [0x10000, 0x1007f], [0x20000, 0x2a6df],
  [0xdc80, 0xdcff]];
const frags = ['<s>', '</s>', '<|im_start|>', '<|eot_id|>', '<|begin_of_text|>', "'s", "'LL", ' ', '  ',
  '\u200d', '\r\n', '\t', '\u2581', '<0x0A>', '0123456789', '<|', '|>', '<think>'];
const lines = [];
for (let i = 0; i < Number(nArg); i++) {
  let s = '';
  const len = int(0, 40);
  for (let j = 0; j < len; j++) {
    if (rnd() < 0.12) { s += frags[int(0, frags.length - 1)]; continue; }
    const r = ranges[int(0, ranges.length - 1)];
    s += String.fromCodePoint(int(r[0], r[1]));
  }
  lines.push(JSON.stringify(s));
}
fs.writeFileSync(out, lines.join('\n') + '\n');
