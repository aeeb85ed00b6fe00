#!/usr/bin/env node
// Writes tests/tokenizer/corpus/corpus.jsonl: the tokenizer test corpus, one JSON string per
// line, deterministic (seeded PRNG, fixed fragment pools; re-running rewrites the same file).
// Categories: English prose, source code, CJK, emoji (ZWJ sequences, skin tones, flags),
// combining marks (decomposed forms, for NFC), Arabic and Hebrew, digits and long numbers,
// runs of spaces, tabs, \r\n and other whitespace, contractions, special-token strings of all
// tested models inside text, and invalid UTF-8.
// Invalid UTF-8 is written in Python's "surrogateescape" form: the lone surrogate \udcXX is the
// raw byte 0xXX (folio's --jsonl reader and tests/tokenizer/oracle.js both read it so).
'use strict';
const fs = require('fs');
const path = require('path');

let seed = 0x5eed1234;
function rnd() { // mulberry32
  seed = (seed + 0x6D2B79F5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const bytes = (...b) => b.map((x) => String.fromCharCode(0xDC00 + x)).join('');

const prose = [
  'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.',
  'Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse, I thought I would sail about a little.',
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.',
  "You don't know about me without you have read a book by the name of The Adventures of Tom Sawyer; but that ain't no matter.",
  'Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty.',
  'We hold these truths to be self-evident, that all men are created equal.',
  'Happy families are all alike; every unhappy family is unhappy in its own way.',
  'In a hole in the ground there lived a hobbit.',
  '"Well, Prince, so Genoa and Lucca are now just family estates of the Buonapartes."',
  'The quick brown fox jumps over the lazy dog.',
  "I'M sure she'll say it's fine; we've done it before, and they'd agree.",
  "DON'T SHOUT! We'LL hear you. You'Re right, it'S HIS.",
  'Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do.',
  'Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal, thank you very much.',
  'The sky above the port was the color of television, tuned to a dead channel.',
  'Whan that Aprille with his shoures soote / The droghte of March hath perced to the roote.',
  'It’s a curly apostrophe: it’s, we’re, they’ve — and “smart quotes” too…',
  'e.g., i.e., etc., U.S.A., Ph.D., 9 a.m. – 5 p.m.',
  'Émile Zola, Gödel, Dvořák, Łódź, São Paulo, Ærøskøbing, naïve café résumé coöperate.',
  'Straße, İstanbul, ǅemal, ﬁnancial ligature, Ⅻ roman numeral.',
];
const code = [
  'int main(int argc, char **argv) {\n    printf("%d\\n", argc);\n    return 0;\n}',
  'def fib(n):\n\tif n < 2:\n\t\treturn n\n\treturn fib(n - 1) + fib(n - 2)',
  'for (let i = 0; i < arr.length; i++) { sum += arr[i] ** 2; }',
  'fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u32> = (0..10).collect(); Ok(()) }',
  '#include <stdio.h>\r\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\r\n',
  'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\' ORDER BY id DESC;',
  '<div class="container"><p>Hello &amp; welcome</p><br/></div>',
  '{"key": [1, 2.5, -3e10, true, null], "nested": {"a": "b\\u00e9"}}',
  'if [ -f "$HOME/.bashrc" ]; then source ~/.bashrc; fi && echo $PATH | tr : \'\\n\'',
  '    x = [i*i for i in range(100) if i % 3 == 0]  # comment with    spaces',
  'const re = /^(?:[a-z0-9!#$%&\'*+/=?^_`{|}~-]+)@example\\.com$/i;',
  'matrix[i][j] += a[i][k] * b[k][j]; // O(n^3)',
  '    }\n}\n\n\n// end of file',
  'x=>x+1;y<=2||z!==3&&w>>>=4',
  '__init__ __name__ == "__main__" self._private_var snake_case_name camelCaseName PascalCase',
];
const cjk = [
  '我们今天去公园散步，天气非常好。', '人工智能正在改变世界。', '東京は日本の首都です。',
  'ひらがなとカタカナ、そして漢字。', '안녕하세요, 만나서 반갑습니다.', '한국어 텍스트와 English 혼합',
  '「こんにちは」と彼は言った。', '全角の文字：ＡＢＣ１２３！？', '中文标点：，。！？；：“”（）《》',
  '繁體中文與简体中文', '𠀀𠀁𪚥 rare CJK extension B', '一二三四五六七八九十百千万亿',
];
const emoji = [
  '👨‍👩‍👧‍👦 family', '👍🏽 thumbs', '🧑🏿‍💻 coder', '🏳️‍🌈 flag', '🇺🇸🇯🇵🇩🇪 flags', '1️⃣ keycap',
  '❤️ heart', '😀😃😄😁😆', '👩🏻‍❤️‍💋‍👨🏼 kiss', '🤷‍♀️ shrug', '🐈‍⬛ black cat', '✍🏾 writing',
  '🫠🫡🫥 new', '©®™ symbols', '☃ ★ ♠ ♣ ♥ ♦',
];
const combining = [
  'e\u0301 a\u0308 o\u0302 n\u0303', 'Tie\u0302\u0301ng Vie\u0323\u0302t', 'Z\u0351\u036b\u0343a\u0352l\u0310g\u033fo\u0344',
  '\u1100\u1161\u11a8 jamo', 'A\u030a\u0301 angstrom', '\u0915\u094d\u0937 हिन्दी देवनागरी', 'ภาษาไทย สวัสดี',
  'c\u0327a\u0300 va', '\u0301 leading combining mark', 'q\u0307\u0323 dots', 'ﾊﾝｶｸ ｶﾀｶﾅ half-width',
];
const rtl = [
  'مرحبا بالعالم', 'السلام عليكم ورحمة الله', 'שלום עולם', 'עִבְרִית עם ניקוד', 'فارسی: سلام ۱۲۳۴',
  '\u200fRTL mark\u200e LTR mark', 'Arabic digits ٠١٢٣٤٥٦٧٨٩', 'mixed English مع العربية and עברית',
];
const digits = [
  '1234567890', '3.14159265358979323846', '1,000,000', '2024-01-01T12:34:56Z', '0x7fffffff',
  '12345678901234567890123456789012345678901234567890', '-42', '+1 (555) 010-9999', '１２３ full-width',
  '²³ superscripts ½ ¾', '1e-10', '99.99%', '$1,234.56', 'v1.2.3-rc4', '007', '٣٤٥',
];
const specials = [
  '<s>', '</s>', '<unk>', '<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>',
  '<|end_header_id|>', '<|reserved_special_token_5|>', '<|im_start|>', '<|im_end|>', '<|endoftext|>',
  '<tool_call>', '</tool_call>', '<think>', '</think>', '<|fim_prefix|>', '<|vision_pad|>',
  '<|im_start', 'im_end|>', '<s', '<<s>>', '< s>', '<|eot_id|><|eot_id|>', '<0x41>',
];
const invalid = [
  bytes(0x80), bytes(0xff), bytes(0xc3), bytes(0xe4, 0xbd), bytes(0xc0, 0xaf), bytes(0xed, 0xa0, 0x80),
  bytes(0xf4, 0x90, 0x80, 0x80), bytes(0xf0, 0x9f, 0x98), bytes(0xfe, 0xfe, 0xff), bytes(0xe2, 0x82),
  bytes(0xf8, 0x88, 0x80, 0x80, 0x80), bytes(0xc2) + 'A',
];
const spaces = [' ', '  ', '   ', '    ', '        ', ' '.repeat(17), '\t', '\t\t', '\r\n', '\n', '\n\n',
  '\n\n\n', ' \n ', '\r', '\u00a0', '\u3000', '\u2028', '\u0085', '\u180e', '\u200b', '\u000b', '\u000c',
  ' \t \t', '\r\n\r\n', '\u2003', '\u202f'];

const pools = [prose, prose, prose, code, code, cjk, emoji, combining, rtl, digits, specials, invalid];

const lines = [];
// Fixed edge cases first.
for (const pool of [prose, code, cjk, emoji, combining, rtl, digits, specials, invalid, spaces])
  for (const s of pool) lines.push(s);
for (const s of spaces) { lines.push('word' + s + 'word'); lines.push(s + 'lead'); lines.push('trail' + s); }
for (const sp of specials) {
  lines.push(sp); lines.push('Hello ' + sp + ' world'); lines.push(sp + 'x'); lines.push('x' + sp);
  lines.push(' ' + sp + ' '); lines.push(sp + '\n' + sp);
}
for (const b of invalid) { lines.push('abc' + b + 'def'); lines.push(b + ' x ' + b); lines.push('é' + b + '中'); }
lines.push('', ' ', '  ', 'a', 'A', "'", "'s", "'S", "'ll", " 's", '\u2581', '\u2581\u2581 metaspace char', '▁hello');
for (let n = 1; n <= 40; n++) lines.push('9'.repeat(n));
for (let n = 1; n <= 24; n++) lines.push('x' + ' '.repeat(n) + 'y' + ' '.repeat(n));
// Random mixes.
const seps = ['', ' ', ' ', ' ', '  ', '\t', '\n', '\r\n', '   ', ', ', '. ', ' - '];
while (lines.length < 2400) {
  const k = int(1, 5);
  let s = '';
  for (let i = 0; i < k; i++) {
    const pool = rnd() < 0.15 ? spaces : pick(pools);
    s += (i ? pick(seps) : '') + pick(pool);
  }
  if (rnd() < 0.1) s = pick(spaces) + s;
  if (rnd() < 0.1) s += pick(spaces);
  lines.push(s);
}

const out = path.join(__dirname, 'corpus', 'corpus.jsonl');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, lines.map((s) => JSON.stringify(s)).join('\n') + '\n');
console.log(`${out}: ${lines.length} lines`);
