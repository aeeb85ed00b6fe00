// The official openai npm client's tool calling against `folio serve` on a scripted model
// (tests/server/make_tool_model.py: its answer is fixed by the question): message.tool_calls
// and finish_reason "tool_calls", the same calls streamed (name first, then the arguments; no
// markup in any content delta), runTools' whole loop (call, tool result, answer) plain and
// streamed, parallel calls and parallel_tool_calls: false, tool_choice none / required /
// named, a malformed call returned as content, the tool calls of a conversation rendered back
// with their arguments as objects, and 400s for tools the server cannot take.
// usage: NODE_PATH=<node_modules> node tools_client.js BASE_URL SCRIPT_JSON
'use strict';
const fs = require('fs');
const OpenAI = require('openai');
const base = process.argv[2];
const script = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'sk-test', maxRetries: 0 });
const fmt = script.format;
let failures = 0;
const check = (ok, what, detail) => {
  if (ok) console.log('ok: ' + fmt + ': ' + what);
  else { failures++; console.error('FAIL: ' + fmt + ': ' + what + (detail ? ': ' + detail : '')); }
};
const J = JSON.stringify;

const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const tools = [{ type: 'function',
                 function: { name: 'get_weather', description: 'The weather in a city', parameters: schema } }];
const ask = (q, extra = {}) => ({ model: 'tools', messages: [{ role: 'user', content: script.questions[q] }],
                                  tools, ...extra });
const MARKUP = /<tool_call>|<\/tool_call>|\[TOOL_CALLS\]|<\|python_tag\|>|"name":/;
const callsOf = (m) => (m.tool_calls || []).map(c => [c.function.name, JSON.parse(c.function.arguments)]);
const PARIS = [['get_weather', { city: 'Paris' }]];
const BOTH = [['get_weather', { city: 'Paris' }], ['get_weather', { city: 'London' }]];
const idOk = (c) => typeof c.id === 'string' && c.id.length === script.id_len && c.type === 'function';

// A stream read chunk by chunk: per choice, the content, the tool-call deltas in order and the
// finish reason (choice 0's returned; all of them in .choices).
async function streamed(params) {
  const s = await client.chat.completions.create({ ...params, stream: true });
  const choices = [];
  for await (const ch of s) for (const c of ch.choices) {
    const o = choices[c.index] || (choices[c.index] = { content: '', deltas: [], finish: null });
    if (c.delta.content) o.content += c.delta.content;
    for (const t of c.delta.tool_calls || []) o.deltas.push(t);
    if (c.finish_reason) o.finish = c.finish_reason;
  }
  return { ...choices[0], choices };
}

// Deltas as OpenAI streams them: per call, a first one with index, id, type, name and
// arguments "", then argument fragments; reassembled into [name, arguments].
function reassemble(deltas) {
  const calls = [];
  let shape = true;
  for (const d of deltas) {
    if (!calls[d.index]) {
      shape = shape && idOk(d) && typeof d.function.name === 'string' && d.function.arguments === '';
      calls[d.index] = { name: d.function.name, args: '' };
    } else {
      shape = shape && d.id === undefined && d.function.name === undefined;
      calls[d.index].args += d.function.arguments;
    }
  }
  return { shape, calls: calls.map(c => [c.name, JSON.parse(c.args)]) };
}

async function main() {
  // one call
  const a = await client.chat.completions.create(ask('weather'));
  const am = a.choices[0].message;
  check(a.choices[0].finish_reason === 'tool_calls' && am.content === null && am.tool_calls.length === 1 &&
        idOk(am.tool_calls[0]) && J(callsOf(am)) === J(PARIS), 'one call: message.tool_calls, finish tool_calls', J(a.choices[0]));
  const as = await streamed(ask('weather'));
  const ar = reassemble(as.deltas);
  check(as.finish === 'tool_calls' && as.content === '' && ar.shape && J(ar.calls) === J(PARIS),
        'one call streamed: name first, then arguments; no content', J(as));

  // n = 2: each choice its own parse and its own ids
  const two = await client.chat.completions.create(ask('weather', { n: 2 }));
  const twos = await streamed(ask('weather', { n: 2 }));
  check(two.choices.length === 2 && two.choices.every(c => c.finish_reason === 'tool_calls' &&
        J(callsOf(c.message)) === J(PARIS)) &&
        two.choices[0].message.tool_calls[0].id !== two.choices[1].message.tool_calls[0].id &&
        twos.choices.length === 2 && twos.choices.every(c => c.finish === 'tool_calls' &&
        J(reassemble(c.deltas).calls) === J(PARIS)), 'n = 2: a call in each choice', J([two.choices, twos.choices]));

  // the stream helper reassembles the same message
  const st = client.beta.chat.completions.stream(ask('weather'));
  let leaked = false;
  st.on('content', (d) => { if (MARKUP.test(d)) leaked = true; });
  const fin = await st.finalChatCompletion();
  check(!leaked && fin.choices[0].finish_reason === 'tool_calls' && J(callsOf(fin.choices[0].message)) === J(PARIS),
        'stream helper: finalChatCompletion has the call', J(fin.choices[0]));

  // runTools: the model calls the tool, the result goes back as a tool message, the model answers
  for (const stream of [false, true]) {
    const seen = [];
    const runner = client.beta.chat.completions.runTools({
      model: 'tools', messages: [{ role: 'user', content: script.questions.weather }], stream,
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: schema, parse: JSON.parse,
                                              function: (args) => { seen.push(args); return script.tool_result; } } }],
    });
    const final = await runner.finalContent();
    const msgs = runner.messages.map(m => m.role);
    check(final === script.answer && J(seen) === J([{ city: 'Paris' }]) &&
          J(msgs) === J(['user', 'assistant', 'tool', 'assistant']),
          'runTools' + (stream ? ' (streamed)' : '') + ': call, tool result, answer', J([final, seen, msgs]));
  }

  // parallel calls, and parallel_tool_calls: false
  const b = await client.chat.completions.create(ask('both'));
  const bm = b.choices[0].message;
  check(b.choices[0].finish_reason === 'tool_calls' && bm.content === script.both_content &&
        J(callsOf(bm)) === J(BOTH) && bm.tool_calls[0].id !== bm.tool_calls[1].id, 'two calls', J(bm));
  const bs = await streamed(ask('both'));
  const br = reassemble(bs.deltas);
  check(br.shape && J(br.calls) === J(BOTH) && bs.content === (script.both_content || '') && bs.finish === 'tool_calls',
        'two calls streamed, indexes 0 and 1', J(bs));
  const b1 = await client.chat.completions.create(ask('both', { parallel_tool_calls: false }));
  const b1s = await streamed(ask('both', { parallel_tool_calls: false }));
  check(J(callsOf(b1.choices[0].message)) === J(PARIS) && J(reassemble(b1s.deltas).calls) === J(PARIS),
        'parallel_tool_calls false: the first call only', J([b1.choices[0].message, b1s.deltas]));

  // tool_choice none: nothing is parsed, the output is content
  const n = await client.chat.completions.create(ask('weather', { tool_choice: 'none' }));
  check(n.choices[0].finish_reason === 'stop' && !n.choices[0].message.tool_calls &&
        n.choices[0].message.content.includes('get_weather'), 'tool_choice none: the call is text', J(n.choices[0]));

  // a malformed call comes back as content, verbatim, streamed the same
  const m = await client.chat.completions.create(ask('broken'));
  const ms = await streamed(ask('broken'));
  check(m.choices[0].finish_reason === 'stop' && m.choices[0].message.content === script.text.broken &&
        !m.choices[0].message.tool_calls && ms.content === script.text.broken && ms.deltas.length === 0,
        'malformed call: content, not an error', J([m.choices[0], ms]));

  // required, when the model answers in text: vLLM's answer, the text and tool_calls []
  const r = await client.chat.completions.create(ask('hello', { tool_choice: 'required' }));
  check(r.choices[0].message.content === 'Hello there!' && J(r.choices[0].message.tool_calls) === '[]' &&
        r.choices[0].finish_reason === 'stop', 'required without a call: content, tool_calls []', J(r.choices[0]));
  const h = await client.chat.completions.create(ask('hello'));
  check(h.choices[0].message.content === 'Hello there!' && !h.choices[0].message.tool_calls &&
        h.choices[0].finish_reason === 'stop', 'auto, answered in text', J(h.choices[0]));

  // a named function: finish_reason stop, as OpenAI
  const nm = await client.chat.completions.create(
    ask('weather', { tool_choice: { type: 'function', function: { name: 'get_weather' } } }));
  check(nm.choices[0].finish_reason === 'stop' && J(callsOf(nm.choices[0].message)) === J(PARIS),
        'named tool_choice: the call, finish stop', J(nm.choices[0]));

  // the conversation renders back: tool_calls' arguments (a JSON string) become an object
  const tok = await fetch(base + '/tokenize', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: J({ tools, messages: [{ role: 'user', content: script.questions.weather }, am,
                                { role: 'tool', tool_call_id: am.tool_calls[0].id, content: script.tool_result }] }) });
  const ids = (await tok.json()).tokens;
  const det = await fetch(base + '/detokenize', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                                  body: J({ tokens: ids }) });
  const text = (await det.json()).prompt;
  check(text.includes(script.rendered) && text.includes(script.tool_result) && text.includes('"get_weather"'),
        'tool calls and results render through the template', text);

  // requests the server refuses
  const bad = async (params, what, re) => {
    try {
      await client.chat.completions.create(params);
      check(false, what + ' refused');
    } catch (e) {
      check(e.status === 400 && re.test(e.message), what + ': 400', e.message);
    }
  };
  await bad(ask('weather', { tool_choice: { type: 'function', function: { name: 'nope' } } }), 'unknown named function', /tool_choice/);
  await bad(ask('weather', { tool_choice: 'sometimes' }), 'bad tool_choice', /tool_choice/);
  await bad({ model: 'tools', messages: [{ role: 'user', content: 'hi' }], tool_choice: 'required' }, 'required without tools', /tool_choice/);
  await bad(ask('weather', { tools: [{ type: 'function', function: { description: 'no name' } }] }), 'a tool without a name', /tools\[0\]/);
  await bad({ model: 'tools', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function',
             function: { name: 'f', arguments: '{not json' } }] }, { role: 'user', content: 'hi' }] },
            'tool call arguments that are not JSON', /arguments/);

  if (failures) { console.error(failures + ' check(s) failed'); process.exit(1); }
  console.log('all tool-calling checks passed (' + fmt + ')');
}
main().catch(e => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
