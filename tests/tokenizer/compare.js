#!/usr/bin/env node
// Compares folio's results with the oracle's on a corpus:
//   node compare.js NAME CORPUS ORACLE_JSONL IDS PLAIN DEC DEC_SKIP
// IDS/PLAIN: `folio tokenize --jsonl` output with and without specials (one id line per text);
// DEC/DEC_SKIP: `folio detokenize --ids-file IDS [--skip-special]` (one JSON string per line).
// Prints one summary line and, per kind, the first mismatch (line, text, ours, theirs).
// Exit status 1 on any difference.
'use strict';
const fs = require('fs');
const [, , name, corpus, oraclePath, idsPath, plainPath, decPath, decSkipPath] = process.argv;
const lines = (p) => fs.readFileSync(p, 'utf8').split('\n').slice(0, -1);
const texts = lines(corpus);
const oracle = lines(oraclePath).map((l) => JSON.parse(l));
const ours = {
  ids: lines(idsPath).map((l) => l.trim()),
  plain: lines(plainPath).map((l) => l.trim()),
  dec: lines(decPath).map((l) => JSON.parse(l)),
  dec_skip: lines(decSkipPath).map((l) => JSON.parse(l)),
};
const n = texts.length;
let failed = false;
const counts = {};
for (const kind of ['ids', 'plain', 'dec', 'dec_skip']) {
  let ok = 0, first = -1;
  if (ours[kind].length !== n) {
    console.log(`${name}: ${kind}: folio gave ${ours[kind].length} lines for ${n} texts`);
    failed = true;
  }
  for (let i = 0; i < n; i++) {
    const theirs = kind === 'ids' || kind === 'plain' ? oracle[i][kind].join(' ') : oracle[i][kind];
    if (ours[kind][i] === theirs) ok++;
    else if (first < 0) first = i;
  }
  counts[kind] = `${ok}/${n}`;
  if (first >= 0) {
    failed = true;
    const theirs = kind === 'ids' || kind === 'plain' ? oracle[first][kind].join(' ') : oracle[first][kind];
    console.log(`${name}: ${kind}: first mismatch at corpus line ${first + 1}: ${texts[first]}`);
    console.log(`  folio : ${JSON.stringify(ours[kind][first])}`);
    console.log(`  oracle: ${JSON.stringify(theirs)}`);
  }
}
console.log(`${name}: ids ${counts.ids}, ids without specials ${counts.plain}, ` +
            `decode ${counts.dec}, decode skip_special ${counts.dec_skip}`);
process.exit(failed ? 1 : 0);
