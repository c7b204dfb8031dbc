// The OpenAI API of `qwen3moe serve` driven by the official openai npm package, as a user's
// program drives it. usage: node openai_sdk.mjs BASE_URL MODEL_NAME (exit 0: all passed).
import OpenAI from 'openai';

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
let passed = 0, failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
    ++passed;
  } catch (e) {
    console.log(`FAIL ${name}: ${e.stack || e}`);
    ++failed;
  }
}
function expect(cond, what) {
  if (!cond) throw new Error(what);
}
async function metric(name, labels = '') {
  const text = await (await fetch(baseURL.replace(/\/v1$/, '') + '/metrics')).text();
  for (const line of text.split('\n')) {
    if (line.startsWith(name + '{') && line.includes(labels)) return Number(line.split(' ').pop());
  }
  return NaN;
}
const greedy = { temperature: 0, max_tokens: 12 };

await check('models.list names the served model', async () => {
  const models = await client.models.list();
  expect(models.data.length === 1 && models.data[0].id === model, JSON.stringify(models.data));
});

await check('completion: usage counts and a length finish', async () => {
  const r = await client.completions.create({ model, prompt: 'Hello there', ...greedy });
  expect(r.object === 'text_completion' && r.choices.length === 1, JSON.stringify(r));
  expect(r.choices[0].finish_reason === 'length', r.choices[0].finish_reason);
  expect(r.usage.completion_tokens === 12, JSON.stringify(r.usage));
  expect(r.usage.prompt_tokens === 2, JSON.stringify(r.usage));  // "Hello", " there"
  expect(r.usage.total_tokens === 14, JSON.stringify(r.usage));
});

await check('completion: streamed text equals the whole text (greedy)', async () => {
  const whole = await client.completions.create({ model, prompt: 'The sky is', ...greedy });
  const stream = await client.completions.create({
    model, prompt: 'The sky is', ...greedy, stream: true, stream_options: { include_usage: true },
  });
  let text = '', usage = null, finish = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    if (c.choices.length) {
      text += c.choices[0].text;
      finish = c.choices[0].finish_reason ?? finish;
    }
  }
  expect(text === whole.choices[0].text, `${JSON.stringify(text)} vs ${JSON.stringify(whole.choices[0].text)}`);
  expect(finish === 'length', finish);
  expect(usage && usage.completion_tokens === 12, JSON.stringify(usage));
});

await check('completion: token-id prompt; a seed reproduces a sampled output, no seed varies', async () => {
  const ask = (seed) => client.completions.create({
    model, prompt: [9707, 11, 847], max_tokens: 32, temperature: 1, ignore_eos: true, seed,
  });
  const [a, b] = await Promise.all([ask(7), ask(7)]);
  expect(a.choices[0].text === b.choices[0].text, 'two runs of one seed differ');
  // 32 tokens drawn at temperature 1 from a random model's near-flat distribution: two fresh
  // seeds giving the same text would mean the seed is fixed.
  const [c, d] = await Promise.all([ask(undefined), ask(undefined)]);
  expect(c.choices[0].text !== d.choices[0].text, 'two unseeded requests gave the same text');
});

await check('completion: a stop string ends the text before it', async () => {
  const whole = await client.completions.create({ model, prompt: 'One two three', temperature: 0, max_tokens: 24, ignore_eos: true });
  const text = whole.choices[0].text;
  let at = 3;
  while (at + 1 < text.length && !/^[ -~]{2}$/.test(text.substr(at, 2))) ++at;
  if (at + 1 >= text.length) return;  // no ASCII pair in this random model's text
  const stop = text.substr(at, 2);
  const cut = await client.completions.create({ model, prompt: 'One two three', temperature: 0, max_tokens: 24, ignore_eos: true, stop: [stop] });
  expect(cut.choices[0].finish_reason === 'stop', cut.choices[0].finish_reason);
  expect(cut.choices[0].text === text.slice(0, text.indexOf(stop)), JSON.stringify(cut.choices[0].text));
});

await check('completion: logprobs of each token, top ones sorted', async () => {
  const r = await client.completions.create({ model, prompt: 'Hi', ...greedy, logprobs: 3 });
  const lp = r.choices[0].logprobs;
  expect(lp.tokens.length === 12 && lp.token_logprobs.length === 12, JSON.stringify(lp));
  for (let i = 0; i < 12; ++i) {
    const top = Object.values(lp.top_logprobs[i]);
    expect(top.length >= 1 && top.length <= 3, JSON.stringify(lp.top_logprobs[i]));
    // Greedy: the chosen token is the most likely one.
    expect(Math.abs(lp.token_logprobs[i] - Math.max(...top)) < 1e-6, `token ${i}`);
    expect(lp.token_logprobs[i] <= 0, 'a logprob above 0');
  }
});

await check('chat: thinking off gives the answer as content only', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Say hi' }], ...greedy,
    chat_template_kwargs: { enable_thinking: false },
  });
  const m = r.choices[0].message;
  expect(r.object === 'chat.completion' && m.role === 'assistant', JSON.stringify(r));
  expect(typeof m.content === 'string' && m.content.length > 0, JSON.stringify(m));
  expect(!m.reasoning_content, 'reasoning with thinking off');
  expect(r.usage.completion_tokens === 12, JSON.stringify(r.usage));
});

await check('chat: streamed deltas join to the whole message (greedy, tools offered)', async () => {
  const body = {
    model, ...greedy, max_completion_tokens: 16,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"celsius": 21}' },
    ],
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
  };
  const whole = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({ ...body, stream: true });
  let content = '', reasoning = '', role = null, finish = null;
  for await (const c of stream) {
    const d = c.choices[0]?.delta ?? {};
    role = d.role ?? role;
    content += d.content ?? '';
    reasoning += d.reasoning_content ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  const m = whole.choices[0].message;
  expect(role === 'assistant', role);
  expect(content === (m.content ?? ''), `${JSON.stringify(content)} vs ${JSON.stringify(m.content)}`);
  expect(reasoning === (m.reasoning_content ?? ''), 'reasoning differs');
  expect(finish === whole.choices[0].finish_reason, `${finish} vs ${whole.choices[0].finish_reason}`);
  expect(whole.usage.completion_tokens === 16, JSON.stringify(whole.usage));
});

await check('chat: logprobs and top_logprobs', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'hi' }], ...greedy, logprobs: true, top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  expect(content.length === 12, JSON.stringify(r.choices[0].logprobs));
  for (const t of content) {
    expect(t.top_logprobs.length === 2 && Array.isArray(t.bytes), JSON.stringify(t));
    expect(Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6, JSON.stringify(t));
  }
});

await check('bad values are 400s naming the field', async () => {
  const cases = [
    [{ prompt: 'x', temperature: -1 }, 'temperature'],
    [{ prompt: 'x', top_p: 1.5 }, 'top_p'],
    [{ prompt: 'x', max_tokens: 0 }, 'max_tokens'],
    [{ prompt: 'x', max_tokens: 100000 }, 'max_tokens'],
    [{ prompt: 'x', n: 2 }, 'n'],
    [{ prompt: 'x', presence_penalty: 5 }, 'presence_penalty'],
    [{ prompt: 'x', temperature: 'hot' }, 'temperature'],
    [{ prompt: [] }, 'prompt'],
    [{ prompt: [1, 99999999] }, 'prompt'],
    [{ prompt: 'x', logprobs: 50 }, 'logprobs'],
    [{ prompt: 'x', stop: [''] }, 'stop'],
  ];
  for (const [body, param] of cases) {
    try {
      await client.completions.create({ model, ...body });
      throw new Error(`accepted ${JSON.stringify(body)}`);
    } catch (e) {
      expect(e.status === 400, `${JSON.stringify(body)}: status ${e.status}`);
      expect(e.param === param, `${JSON.stringify(body)}: param ${e.param} (${e.message})`);
    }
  }
  for (const [body, param] of [
    [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'user', content: 'x' }], tool_choice: 'required', tools: [] }, 'tool_choice'],
    [{ messages: [{ role: 'user', content: 'x' }], top_logprobs: 3 }, 'top_logprobs'],
  ]) {
    try {
      await client.chat.completions.create({ model, ...body });
      throw new Error(`accepted ${JSON.stringify(body)}`);
    } catch (e) {
      expect(e.status === 400, `${JSON.stringify(body)}: status ${e.status} ${e.message}`);
      expect(e.param === param, `${JSON.stringify(body)}: param ${e.param} (${e.message})`);
    }
  }
});

await check('an unknown model is a 404', async () => {
  try {
    await client.completions.create({ model: 'gpt-17', prompt: 'x' });
    throw new Error('accepted');
  } catch (e) {
    expect(e.status === 404 && e.code === 'model_not_found', `${e.status} ${e.code}`);
  }
});

await check('a client that leaves a stream cancels its request', async () => {
  const before = await metric('qwen3moe:request_success_total', 'finished_reason="cancelled"');
  const stream = await client.completions.create({
    model, prompt: 'x', temperature: 0, max_tokens: 3000, ignore_eos: true, stream: true,
  });
  let n = 0;
  for await (const c of stream) if (++n === 3) break;  // closes the connection
  let after = before, running = 1;
  for (let i = 0; i < 100 && (after === before || running !== 0); ++i) {
    await new Promise((r) => setTimeout(r, 50));
    after = await metric('qwen3moe:request_success_total', 'finished_reason="cancelled"');
    running = await metric('qwen3moe:num_requests_running');
  }
  expect(after === before + 1, `cancelled ${before} -> ${after}`);
  expect(running === 0, `still running: ${running}`);
});

await check('a client that aborts a whole request cancels it', async () => {
  const before = await metric('qwen3moe:request_success_total', 'finished_reason="cancelled"');
  const ctl = new AbortController();
  const pending = client.completions.create(
    { model, prompt: 'x', temperature: 0, max_tokens: 3000, ignore_eos: true },
    { signal: ctl.signal });
  // Abort once the engine runs it (not before it was even sent).
  for (let i = 0; i < 200 && (await metric('qwen3moe:num_requests_running')) !== 1; ++i)
    await new Promise((r) => setTimeout(r, 10));
  ctl.abort();
  try {
    await pending;
  } catch (e) { /* aborted */ }
  let after = before;
  for (let i = 0; i < 100 && after === before; ++i) {
    await new Promise((r) => setTimeout(r, 50));
    after = await metric('qwen3moe:request_success_total', 'finished_reason="cancelled"');
  }
  expect(after === before + 1, `cancelled ${before} -> ${after}`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
