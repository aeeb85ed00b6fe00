// The official openai npm client against a live `folio serve` (stories260K):
// completions and chat, streaming and not, n > 1, logprobs (token strings in context), usage's
// cached tokens, stop strings, seeds; the concatenated stream equals the non-streaming result
// for the same seed.
// usage: NODE_PATH=<node_modules> node openai_client.js BASE_URL
'use strict';
const OpenAI = require('openai');
const base = process.argv[2];
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'sk-test', maxRetries: 0 });
let failures = 0;
const check = (ok, what, detail) => {
  if (ok) console.log('ok: ' + what);
  else { failures++; console.error('FAIL: ' + what + (detail ? ': ' + detail : '')); }
};

async function streamCompletion(params) {
  const texts = {}, finish = {};
  let usage = null;
  const s = await client.completions.create({ ...params, stream: true,
    stream_options: { include_usage: true } });
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      texts[c.index] = (texts[c.index] || '') + c.text;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { texts, finish, usage };
}

async function streamChat(params) {
  const texts = {}, finish = {};
  let usage = null;
  const s = await client.chat.completions.create({ ...params, stream: true,
    stream_options: { include_usage: true } });
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      texts[c.index] = (texts[c.index] || '') + (c.delta.content || '');
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { texts, finish, usage };
}

async function main() {
  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === 'stories', 'models.list', JSON.stringify(models.data));

  // completions, greedy
  const p = { model: 'stories', prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
  const a = await client.completions.create(p);
  check(a.object === 'text_completion' && a.id.startsWith('cmpl-'), 'completion object and id');
  check(a.choices[0].text.length > 0 && a.choices[0].finish_reason === 'length', 'completion text, finish length', JSON.stringify(a.choices[0]));
  check(a.usage.prompt_tokens > 0 && a.usage.completion_tokens === 24 &&
        a.usage.total_tokens === a.usage.prompt_tokens + 24, 'completion usage', JSON.stringify(a.usage));
  const as = await streamCompletion(p);
  check(as.texts[0] === a.choices[0].text, 'completion: stream == non-stream (greedy)', JSON.stringify([as.texts[0], a.choices[0].text]));
  check(as.usage && as.usage.completion_tokens === 24, 'stream usage (include_usage)', JSON.stringify(as.usage));

  // seeded sampling, n > 1
  const q = { model: 'stories', prompt: 'The cat', max_tokens: 32, temperature: 0.9, top_p: 0.95, seed: 1234, n: 3 };
  const b1 = await client.completions.create(q);
  const b2 = await client.completions.create(q);
  check(b1.choices.length === 3, 'n = 3 gives three choices');
  check(JSON.stringify(b1.choices.map(c => c.text)) === JSON.stringify(b2.choices.map(c => c.text)), 'same seed, same texts');
  const bs = await streamCompletion(q);
  check([0, 1, 2].every(i => bs.texts[i] === b1.choices[i].text), 'seeded n = 3: stream == non-stream',
        JSON.stringify([bs.texts, b1.choices.map(c => c.text)]));
  check(new Set(b1.choices.map(c => c.text)).size > 1, 'samples differ from each other');
  check(bs.usage.completion_tokens === b1.usage.completion_tokens, 'stream usage == non-stream usage');

  // stop strings: cut before the stop, finish "stop"; the same when streamed
  const full = a.choices[0].text;
  const words = full.trim().split(' ');
  const stopWord = ' ' + words[Math.min(3, words.length - 1)];
  const c1 = await client.completions.create({ ...p, stop: [stopWord] });
  check(c1.choices[0].finish_reason === 'stop' && full.startsWith(c1.choices[0].text) &&
        !c1.choices[0].text.includes(stopWord) && c1.choices[0].text.length < full.length,
        'stop string cuts the text', JSON.stringify([stopWord, c1.choices[0].text]));
  const cs = await streamCompletion({ ...p, stop: [stopWord] });
  check(cs.texts[0] === c1.choices[0].text && cs.finish[0] === 'stop', 'stop string: stream == non-stream',
        JSON.stringify([cs.texts[0], c1.choices[0].text]));

  // logprobs: token strings are the tokens' text in context, so they concatenate to the text
  // and text_offset counts the characters before each; greedy tokens are their own top choice
  const l = await client.completions.create({ ...p, max_tokens: 24, logprobs: 3 });
  const lp = l.choices[0].logprobs;
  check(lp && lp.token_logprobs.length === 24 && lp.top_logprobs[0] &&
        Object.keys(lp.top_logprobs[0]).length >= 1 && lp.token_logprobs.every(x => x <= 0),
        'completion logprobs', JSON.stringify(lp));
  check(lp.tokens.join('') === l.choices[0].text && l.choices[0].text === a.choices[0].text,
        'logprobs tokens concatenate to the text', JSON.stringify([lp.tokens, l.choices[0].text]));
  check(lp.tokens.every((t, i) => lp.text_offset[i] === [...lp.tokens.slice(0, i).join('')].length),
        'text_offset indexes the text', JSON.stringify(lp.text_offset));
  check(lp.tokens.every((t, i) => t in lp.top_logprobs[i]), 'greedy tokens among their top_logprobs',
        JSON.stringify(lp.top_logprobs));
  const ls = await client.completions.create({ ...p, max_tokens: 24, logprobs: 1, stream: true });
  let stoks = [], soffs = [], stext = '';
  for await (const ch of ls) for (const c of ch.choices) {
    stext += c.text;
    if (c.logprobs) { stoks = stoks.concat(c.logprobs.tokens); soffs = soffs.concat(c.logprobs.text_offset); }
  }
  check(stoks.join('') === stext && stext === l.choices[0].text &&
        JSON.stringify(soffs) === JSON.stringify(lp.text_offset),
        'streamed logprobs: same tokens and offsets', JSON.stringify([stoks, soffs]));

  // usage: prompt_tokens_details.cached_tokens, the prompt tokens reused from the prefix cache
  const longPrompt = { ...p, prompt: 'Once upon a time, there was a little girl named Lily. ' +
                       'She loved to play outside in the sun with her friends.', max_tokens: 4 };
  const u1 = await client.completions.create(longPrompt);
  const u2 = await client.completions.create(longPrompt);
  const u2s = await streamCompletion(longPrompt);
  const cached = u => u && u.prompt_tokens_details ? u.prompt_tokens_details.cached_tokens : -1;
  check(u1.usage.prompt_tokens > 32 && cached(a.usage) === 0 && cached(u2.usage) >= 32 &&
        cached(u2.usage) < u2.usage.prompt_tokens && cached(u2s.usage) === cached(u2.usage),
        'usage.prompt_tokens_details.cached_tokens (repeated prompt, stream too)',
        JSON.stringify([a.usage, u1.usage, u2.usage, u2s.usage]));

  // chat
  const m = { model: 'stories', messages: [{ role: 'system', content: 'A story.' },
              { role: 'user', content: 'Tell me about a dog.' }], max_tokens: 20, temperature: 0.7, seed: 7 };
  const ch = await client.chat.completions.create(m);
  check(ch.object === 'chat.completion' && ch.choices[0].message.role === 'assistant' &&
        typeof ch.choices[0].message.content === 'string', 'chat completion', JSON.stringify(ch.choices[0]));
  const chs = await streamChat(m);
  check(chs.texts[0] === ch.choices[0].message.content && chs.finish[0] === ch.choices[0].finish_reason,
        'chat: stream == non-stream (seeded)', JSON.stringify([chs.texts[0], ch.choices[0].message.content]));
  const chl = await client.chat.completions.create({ ...m, logprobs: true, top_logprobs: 2, max_tokens: 4 });
  const cl = chl.choices[0].logprobs;
  check(cl && cl.content.length === 4 && cl.content[0].top_logprobs.length === 2, 'chat logprobs', JSON.stringify(cl));
  check(cl.content.map(e => e.token).join('') === chl.choices[0].message.content &&
        cl.content.every(e => Buffer.from(e.token, 'utf8').equals(Buffer.from(e.bytes))),
        'chat logprobs: tokens concatenate to the content, bytes are theirs', JSON.stringify(cl.content));
  const chn = await client.chat.completions.create({ ...m, n: 2 });
  check(chn.choices.length === 2, 'chat n = 2');

  // an error through the client: a BadRequestError naming the field
  try {
    await client.completions.create({ ...p, temperature: -2 });
    check(false, 'temperature -2 rejected');
  } catch (e) {
    check(e.status === 400 && /temperature/.test(e.message), 'client sees 400 naming temperature', e.message);
  }
  if (failures) { console.error(failures + ' check(s) failed'); process.exit(1); }
  console.log('all openai client checks passed');
}
main().catch(e => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
