// Load test against a live `folio serve`: N concurrent streaming clients (raw fetch + SSE
// parsing) with mixed prompt and output lengths, every 10th disconnecting mid-stream. Each
// finished stream must equal the non-streaming answer to the same request (seeded), with
// usage.completion_tokens equal to the streamed token count: no lost or duplicated tokens.
// usage: node load.js BASE_URL [N]
'use strict';
const base = process.argv[2];
const N = parseInt(process.argv[3] || '200', 10);
let failures = 0;
const fail = (m) => { failures++; if (failures < 20) console.error('FAIL: ' + m); };

function request(i) {
  const words = ['Once upon a time', 'The little dog', 'Lily and Tom went', 'One day, a bird', 'The sun'];
  const prompt = words[i % words.length] + ' ' + 'and then '.repeat(i % 7);
  return { model: 'stories', prompt, max_tokens: 8 + (i * 37) % 120, temperature: 0.8, seed: 1000 + i,
           ignore_eos: i % 3 === 0 };
}

async function stream(i, disconnectAfter) {
  const ctl = new AbortController();
  const body = { ...request(i), stream: true, stream_options: { include_usage: true } };
  const res = await fetch(base + '/v1/completions', { method: 'POST', body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' }, signal: ctl.signal });
  if (res.status !== 200) throw new Error('status ' + res.status + ' ' + await res.text());
  const dec = new TextDecoder();
  let buf = '', text = '', events = 0, usage = null, done = false, finish = null;
  try {
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, at); buf = buf.slice(at + 2);
        if (!ev.startsWith('data: ')) continue;
        const data = ev.slice(6);
        if (data === '[DONE]') { done = true; continue; }
        const o = JSON.parse(data);
        if (o.usage) usage = o.usage;
        for (const c of o.choices) { text += c.text; events++; if (c.finish_reason) finish = c.finish_reason; }
        if (disconnectAfter && events >= disconnectAfter) { ctl.abort(); return { aborted: true }; }
      }
    }
  } catch (e) {
    if (disconnectAfter) return { aborted: true };
    throw e;
  }
  return { text, usage, done, finish, events };
}

async function plain(i) {
  const res = await fetch(base + '/v1/completions', { method: 'POST', body: JSON.stringify(request(i)),
    headers: { 'Content-Type': 'application/json' } });
  if (res.status !== 200) throw new Error('status ' + res.status);
  return res.json();
}

async function main() {
  const t0 = Date.now();
  const results = await Promise.all([...Array(N).keys()].map(i =>
    stream(i, i % 10 === 5 ? 3 : 0).catch(e => ({ error: String(e) }))));
  const t1 = Date.now();
  let tokens = 0, aborted = 0;
  results.forEach((r, i) => {
    if (r.error) return fail('stream ' + i + ': ' + r.error);
    if (r.aborted) { aborted++; return; }
    if (!r.done) fail('stream ' + i + ': no [DONE]');
    if (!r.usage) fail('stream ' + i + ': no usage');
    else tokens += r.usage.completion_tokens;
  });
  console.log(`streams: ${N} (${aborted} disconnected on purpose), ${tokens} tokens in ${(t1 - t0) / 1000} s`);
  // the same requests without streaming, 16 at a time: texts and token counts must agree
  for (let k = 0; k < N; k += 16) {
    const idx = [...Array(Math.min(16, N - k)).keys()].map(x => x + k).filter(i => !results[i].aborted && !results[i].error);
    const refs = await Promise.all(idx.map(plain));
    idx.forEach((i, j) => {
      const r = results[i], ref = refs[j];
      if (r.text !== ref.choices[0].text) fail(`request ${i}: streamed text differs: ${JSON.stringify([r.text, ref.choices[0].text])}`);
      if (r.usage && r.usage.completion_tokens !== ref.usage.completion_tokens) fail(`request ${i}: token counts ${r.usage.completion_tokens} vs ${ref.usage.completion_tokens}`);
      if (r.finish !== ref.choices[0].finish_reason) fail(`request ${i}: finish ${r.finish} vs ${ref.choices[0].finish_reason}`);
    });
  }
  if (failures) { console.error(failures + ' load check(s) failed'); process.exit(1); }
  console.log('ok: every stream equals its non-streaming answer');
}
main().catch(e => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
