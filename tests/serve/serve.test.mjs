// End-to-end tests of `brisk serve` with OpenAI's official Node client (and raw HTTP for the
// error paths) on the shared sotu-llama model. Run by ctest (label serve):
//   BRISK_BIN=build/tools/brisk/brisk BRISK_SHARED_DIR=../shared node --test tests/serve/serve.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import OpenAI from 'openai';

const BRISK = process.env.BRISK_BIN;
const SHARED = process.env.BRISK_SHARED_DIR;
assert.ok(BRISK && SHARED, 'set BRISK_BIN and BRISK_SHARED_DIR');
const LLAMA = path.join(SHARED, 'models', 'sotu-llama');
const KEY = 'sk-brisk-test';

// Starts `brisk serve --port 0 ...` and resolves once it prints "listening on http://host:port".
function startServer(modelDir, extraArgs = []) {
  const proc = spawn(BRISK, ['serve', '-m', modelDir, '--port', '0', '-t', '2', ...extraArgs],
                     { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let started = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 60000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/[^\s]+)/);
      if (m && !started) {
        started = true;
        clearTimeout(timer);
        const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
        resolve({
          url: m[1], proc, exited, log: () => log,
          async stop() { proc.kill('SIGTERM'); return exited; },
        });
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}:\n${log}`)));
  });
}

function client(server, apiKey = KEY) {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
}

async function post(server, route, body, headers = { Authorization: `Bearer ${KEY}` }) {
  const res = await fetch(`${server.url}${route}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: the assertion below says so */ }
  return { status: res.status, headers: res.headers, json, text };
}

function assertOpenAIError(r, status, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error, `not an OpenAI error body: ${r.text}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.message.length > 0);
  assert.equal(typeof r.json.error.type, 'string');
  assert.ok('param' in r.json.error && 'code' in r.json.error);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
}

async function streamText(openai, params) {
  const stream = await openai.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish };
}

// Prometheus text: comments, or "name{labels} value".
function parseMetrics(text) {
  const values = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\S+)$/);
    assert.ok(m, `bad metrics line: ${line}`);
    assert.ok(!Number.isNaN(Number(m[3])), `bad value: ${line}`);
    values[m[1]] = Number(m[3]);
  }
  return values;
}

describe('brisk serve on sotu-llama', { timeout: 600000 }, () => {
  let server;
  let openai;
  before(async () => {
    server = await startServer(LLAMA, ['--api-key', KEY, '--ctx', '256', '--max-batch', '64']);
    openai = client(server);
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0, `graceful shutdown exits 0:\n${server.log()}`);
  });

  test('logit_bias: -100 bans the greedy choice, +100 forces a token (greedy and sampled)', async () => {
    const base = { prompt: 'The Congress', max_tokens: 6, temperature: 0 };
    const plain = await openai.completions.create({ ...base, logprobs: 0 });
    const first = plain.choices[0].logprobs.tokens[0];
    const ids = (await post(server, '/tokenize', { prompt: first, add_special_tokens: false })).json.tokens;
    const banned = await openai.completions.create({ ...base, logprobs: 0, logit_bias: { [ids[0]]: -100 } });
    assert.notEqual(banned.choices[0].logprobs.tokens[0], first);
    for (const temperature of [0, 1]) {
      const forced = await openai.completions.create({ ...base, temperature, seed: 3, logit_bias: { [ids[0]]: 100 } });
      assert.equal(forced.choices[0].text, first.repeat(6), `temperature ${temperature}`);
    }
  });

  test('echo + logprobs scores a prompt exactly as brisk perplexity does (lm-evaluation-harness)', async () => {
    const text = 'The Congress shall have the power to lay and collect taxes, and to provide for the common defence.';
    const ids = (await post(server, '/tokenize', { prompt: text, add_special_tokens: false })).json.tokens;
    // lm-eval's loglikelihood request: context + continuation as token ids, echo, no new tokens.
    const scored = await openai.completions.create({ prompt: ids, echo: true, max_tokens: 0, logprobs: 1 });
    const lp = scored.choices[0].logprobs;
    assert.equal(scored.choices[0].text, text);
    assert.equal(lp.tokens.length, ids.length);
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(scored.usage.completion_tokens, 0);
    const apiSum = lp.token_logprobs.slice(1).reduce((a, b) => a + b, 0);
    // brisk perplexity over the same tokens: one window of exactly their length.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brisk-echo-'));
    fs.writeFileSync(path.join(dir, 'text.txt'), text);
    const ppl = spawnSync(BRISK, ['perplexity', '-m', LLAMA, '-f', path.join(dir, 'text.txt'), '--ctx', String(ids.length),
                                  '-t', '2', '--json'], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(ppl.status, 0, ppl.stderr);
    const report = JSON.parse(ppl.stdout);
    assert.equal(report.scored, ids.length - 1);
    assert.ok(Math.abs(apiSum + report.nll_sum) < 1e-4, `API ${apiSum} vs perplexity ${-report.nll_sum}`);
    // A multiple-choice item scored the lm-eval way: each continuation's logprob sum after the context.
    const context = (await post(server, '/tokenize', { prompt: 'The Congress shall', add_special_tokens: false })).json.tokens;
    const score = async (continuation) => {
      const cont = (await post(server, '/tokenize', { prompt: continuation, add_special_tokens: false })).json.tokens;
      const r = await openai.completions.create({ prompt: [...context, ...cont], echo: true, max_tokens: 0, logprobs: 0 });
      return r.choices[0].logprobs.token_logprobs.slice(context.length).reduce((a, b) => a + b, 0);
    };
    const [likely, unlikely] = [await score(' have'), await score(' zebra')];
    assert.ok(likely > unlikely, `${likely} vs ${unlikely}`);
    // Streamed echo: the prompt first, then the completion; together the non-streamed text.
    const whole = await openai.completions.create({ prompt: 'The Congress', echo: true, max_tokens: 4, temperature: 0 });
    const streamed = await streamText(openai, { prompt: 'The Congress', echo: true, max_tokens: 4, temperature: 0 });
    assert.equal(streamed.text, whole.choices[0].text);
    assert.ok(whole.choices[0].text.startsWith('The Congress'));
  });

  test('best_of returns the n candidates with the highest mean logprob', async () => {
    const body = { prompt: 'The economy', max_tokens: 8, temperature: 1.2, seed: 11, logprobs: 0 };
    // The same seeds as best_of's candidates (seed + j), generated one by one.
    const candidates = [];
    for (let j = 0; j < 4; ++j) candidates.push((await openai.completions.create({ ...body, seed: 11 + j })).choices[0]);
    const mean = (c) => c.logprobs.token_logprobs.reduce((a, b) => a + b, 0) / c.logprobs.token_logprobs.length;
    const ranked = candidates.map((c, j) => [mean(c), j]).sort((a, b) => b[0] - a[0]);
    const best = await openai.completions.create({ ...body, best_of: 4, n: 2 });
    assert.equal(best.choices.length, 2);
    const want = ranked.slice(0, 2).map(([, j]) => j).sort().map((j) => candidates[j].text);
    assert.deepEqual(best.choices.map((c) => c.text), want);
    assert.equal(best.usage.completion_tokens, 4 * 8);  // every candidate was generated
  });

  test('lists the model', async () => {
    const models = await openai.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['sotu-llama']);
  });

  test('completion, greedy: usage, finish reason, stream equals non-stream', async () => {
    const params = { model: 'sotu-llama', prompt: 'The State of the Union is', max_tokens: 24, temperature: 0 };
    const full = await openai.completions.create(params);
    assert.equal(full.object, 'text_completion');
    assert.equal(full.choices.length, 1);
    assert.ok(full.choices[0].text.length > 0);
    assert.ok(['length', 'stop'].includes(full.choices[0].finish_reason));
    assert.equal(full.usage.prompt_tokens, 6);
    assert.ok(full.usage.completion_tokens > 0 && full.usage.completion_tokens <= 24);
    assert.equal(full.usage.total_tokens, full.usage.prompt_tokens + full.usage.completion_tokens);
    const streamed = await streamText(openai, params);
    assert.equal(streamed.text, full.choices[0].text);
    assert.equal(streamed.finish, full.choices[0].finish_reason);
  });

  test('stream_options.include_usage adds a last chunk with usage', async () => {
    const stream = await openai.completions.create({
      prompt: 'We the people', max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 8);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  });

  test('stop strings, n, seed and logprobs', async () => {
    const greedy = await openai.completions.create({ prompt: 'The State of the Union is', max_tokens: 24, temperature: 0 });
    const text = greedy.choices[0].text;
    const cut = text.indexOf(' ', 4);
    assert.ok(cut > 0, text);
    const stopAt = text.slice(cut, cut + 3);
    const stopped = await openai.completions.create({ prompt: 'The State of the Union is', max_tokens: 24, temperature: 0, stop: [stopAt] });
    assert.equal(stopped.choices[0].text, text.slice(0, text.indexOf(stopAt)));
    assert.equal(stopped.choices[0].finish_reason, 'stop');

    const sampled = { prompt: 'Our nation', max_tokens: 12, temperature: 1, top_p: 0.9, seed: 11, n: 3 };
    const a = await openai.completions.create(sampled);
    const b = await openai.completions.create(sampled);
    assert.equal(a.choices.length, 3);
    assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
    assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text), 'same seed, same samples');
    assert.equal(a.usage.prompt_tokens, 3);  // counted once for the n choices

    const lp = await openai.completions.create({ prompt: 'We the people', max_tokens: 6, temperature: 0, logprobs: 2 });
    const logprobs = lp.choices[0].logprobs;
    assert.equal(logprobs.tokens.length, lp.usage.completion_tokens);
    assert.equal(logprobs.token_logprobs.length, logprobs.tokens.length);
    assert.equal(logprobs.tokens.join(''), lp.choices[0].text);
    for (let i = 0; i < logprobs.tokens.length; ++i) {
      assert.ok(logprobs.token_logprobs[i] <= 0);
      assert.equal(Object.keys(logprobs.top_logprobs[i]).length, 2);
      // Greedy: the chosen token is the most likely one.
      const best = Math.max(...Object.values(logprobs.top_logprobs[i]));
      assert.ok(Math.abs(best - logprobs.token_logprobs[i]) < 1e-4);
    }
  });

  test('chat without a chat template is a clear 400', async () => {
    await assert.rejects(
      openai.chat.completions.create({ model: 'sotu-llama', messages: [{ role: 'user', content: 'Hello' }] }),
      (err) => err.status === 400 && /chat template/.test(err.message) && err.param === 'messages');
  });

  test('64 concurrent streaming clients each get their non-streamed greedy text', async () => {
    const prompts = Array.from({ length: 64 }, (_, i) =>
      `In ${1900 + i} the President told the Congress that the state of the ${['economy', 'nation', 'army', 'union'][i % 4]}`);
    const params = (prompt) => ({ prompt, max_tokens: 24, temperature: 0 });
    const expected = [];
    for (const prompt of prompts) expected.push((await openai.completions.create(params(prompt))).choices[0].text);
    const streamed = await Promise.all(prompts.map((prompt) => streamText(openai, params(prompt))));
    for (let i = 0; i < prompts.length; ++i) assert.equal(streamed[i].text, expected[i], `client ${i}`);
  });

  test('raw HTTP errors: 401, 400s, 404', async () => {
    const good = { prompt: 'Hello', max_tokens: 4 };
    assertOpenAIError(await post(server, '/v1/completions', good, {}), 401);
    assertOpenAIError(await post(server, '/v1/completions', good, { Authorization: 'Bearer wrong' }), 401);
    await assert.rejects(client(server, 'wrong').models.list(), (err) => err.status === 401);
    assertOpenAIError(await post(server, '/v1/completions', '{"prompt": "Hello", '), 400);
    assertOpenAIError(await post(server, '/v1/completions', '[1,2]'), 400);
    assertOpenAIError(await post(server, '/v1/completions', { prompt: 42 }), 400, 'prompt');
    assertOpenAIError(await post(server, '/v1/completions', { prompt: '' }), 400, 'prompt');
    assertOpenAIError(await post(server, '/v1/completions', { prompt: 'Hi', max_tokens: 0 }), 400, 'max_tokens');
    assertOpenAIError(await post(server, '/v1/completions', { prompt: 'Hi', max_tokens: -3 }), 400, 'max_tokens');
    assertOpenAIError(await post(server, '/v1/completions', { prompt: 'Hi', max_tokens: '5' }), 400, 'max_tokens');
    assertOpenAIError(await post(server, '/v1/completions', { prompt: 'Hi', temperature: 'hot' }), 400, 'temperature');
    assertOpenAIError(await post(server, '/v1/completions', { prompt: 'Hi', max_tokens: 1000000 }), 400, 'max_tokens');
    const long = 'the people of the United States '.repeat(100);  // far beyond --ctx 256
    const tooLong = await post(server, '/v1/completions', { prompt: long });
    assertOpenAIError(tooLong, 400, 'prompt');
    assert.equal(tooLong.json.error.code, 'context_length_exceeded');
    assertOpenAIError(await post(server, '/v1/chat/completions', { messages: 'hi' }), 400, 'messages');
    const unknownModel = await post(server, '/v1/completions', { model: 'gpt-4o', prompt: 'Hi' });
    assertOpenAIError(unknownModel, 404, 'model');
    assert.equal(unknownModel.json.error.code, 'model_not_found');
    assertOpenAIError(await post(server, '/v1/nothing', good), 404);
    // Fields without effect are accepted; unknown or unimplemented ones are refused by name.
    const extra = await post(server, '/v1/completions', { ...good, best_of: 1, user: 'x' });
    assert.equal(extra.status, 200, extra.text);
    assertOpenAIError(await post(server, '/v1/completions', { ...good, frobnicate: { a: [1] } }), 400, 'frobnicate');
    assertOpenAIError(await post(server, '/v1/completions', { ...good, suffix: 'x' }), 400, 'suffix');
    assertOpenAIError(await post(server, '/v1/completions', { ...good, logit_bias: { 99999999: 10 } }), 400, 'logit_bias');
    // No key needed for health and metrics.
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });

  test('a client that disconnects cancels its request', async () => {
    const controller = new AbortController();
    const stream = await openai.completions.create(
      { prompt: 'The Congress', max_tokens: 200, temperature: 0, ignore_eos: true, stream: true },
      { signal: controller.signal });
    let chunks = 0;
    try {
      for await (const _ of stream) if (++chunks === 2) controller.abort();
    } catch (err) {
      assert.ok(err.name === 'AbortError' || err.constructor.name === 'APIUserAbortError', String(err));
    }
    assert.ok(chunks < 200, 'the stream stopped when the client aborted');
    // The cancelled request is counted with status 499 once the server notices.
    let metrics = {};
    for (let i = 0; i < 100; ++i) {
      metrics = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
      if (metrics['brisk_requests_total{endpoint="completions",status="499"}'] >= 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(metrics['brisk_requests_total{endpoint="completions",status="499"}'] >= 1);
    assert.ok(metrics['brisk_generation_tokens_total'] < 1e9);
  });

  test('/metrics parses and counts', async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    const m = parseMetrics(await res.text());
    assert.ok(m['brisk_requests_total{endpoint="completions",status="200"}'] > 64);
    assert.ok(m['brisk_requests_total{endpoint="completions",status="400"}'] >= 8);
    assert.ok(m['brisk_time_to_first_token_seconds_count'] > 64);
    assert.ok(m['brisk_inter_token_latency_seconds_count'] > 64);
    assert.ok(m['brisk_generation_tokens_total'] > 64 * 20);
    for (const g of ['brisk_queue_depth', 'brisk_running_batch', 'brisk_kv_blocks_used', 'brisk_kv_blocks_free'])
      assert.ok(g in m, g);
  });

  test('never crashes on garbage: raw bytes and mutated bodies', async () => {
    const raw = (bytes) => new Promise((resolve) => {
      const { hostname, port } = new URL(server.url);
      const sock = net.connect(Number(port), hostname, () => sock.end(bytes));
      sock.on('data', () => {});
      sock.on('error', () => resolve());
      sock.on('close', () => resolve());
      sock.setTimeout(5000, () => sock.destroy());
    });
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const junk = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    await raw(junk(300));
    await raw('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n');
    await raw('POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{"pro');
    await raw(`POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer ${KEY}\r\n\r\nzz\r\n`);
    await raw(`POST /v1/completions HTTP/1.1\r\nHost: x\r\n${'X-A: b\r\n'.repeat(2000)}\r\n`);
    const base = JSON.stringify({ prompt: 'Hello there', max_tokens: 2, stop: ['x'], logprobs: 1, n: 2, stream: false });
    const alphabet = '{}[]":,0123456789.eE+-truefalsnul \\\u00ff\n';
    for (let i = 0; i < 150; ++i) {
      const chars = [...base];
      for (let e = 0; e < 1 + Math.floor(rand() * 6); ++e) {
        const at = Math.floor(rand() * chars.length);
        if (rand() < 0.5) chars[at] = alphabet[Math.floor(rand() * alphabet.length)];
        else chars.splice(at, 1 + Math.floor(rand() * 3));
      }
      const r = await post(server, i % 2 ? '/v1/completions' : '/v1/chat/completions', chars.join(''));
      assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500 && r.json && r.json.error), `${r.status}: ${r.text}`);
    }
    for (let i = 0; i < 50; ++i) await raw(junk(1 + Math.floor(rand() * 2000)));
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });
});

// Two replicas, each speculating by prompt lookup or with its own draft model (sotu-qwen2 shares
// sotu-llama's tokenizer): the texts are those of one plain server (asked once, for both).
const dpPrompts = Array.from({ length: 16 }, (_, i) => `In ${1950 + i} the President said that`);
const dpParams = (prompt, i) => ({ prompt, max_tokens: 32, ...(i % 2 ? { temperature: 0.8, seed: i } : { temperature: 0 }) });
let dpPlainTexts;
async function plainServerTexts() {
  if (dpPlainTexts) return dpPlainTexts;
  const alone = await startServer(LLAMA, ['--ctx', '256']);
  try {
    const one = client(alone);
    const texts = [];
    for (let i = 0; i < dpPrompts.length; ++i) texts.push((await one.completions.create(dpParams(dpPrompts[i], i))).choices[0].text);
    dpPlainTexts = texts;
  } finally {
    await alone.stop();
  }
  return dpPlainTexts;
}
for (const source of [['--lookup', '3'], ['--draft', path.join(SHARED, 'models', 'sotu-qwen2')]]) {
  describe(`data parallel and speculation: serve --dp 2 ${source[0]}`, { timeout: 300000 }, () => {
    let server;
    let openai;
    before(async () => {
      server = await startServer(LLAMA, ['--api-key', KEY, '--ctx', '256', '--dp', '2', ...source]);
      openai = client(server);
    });
    after(async () => {
      const { code } = await server.stop();
      assert.equal(code, 0, `graceful shutdown exits 0:\n${server.log()}`);
    });

    test('16 concurrent clients (greedy and seeded) over two replicas each get the plain server\'s text', async () => {
      const expected = await plainServerTexts();
      const streamed = await Promise.all(dpPrompts.map((prompt, i) => streamText(openai, dpParams(prompt, i))));
      for (let i = 0; i < dpPrompts.length; ++i) assert.equal(streamed[i].text, expected[i], `client ${i}`);
      const m = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
      const taken = [0, 1].map((r) => m[`brisk_replica_requests_total{replica="${r}"}`]);
      assert.equal(taken[0] + taken[1], 16, JSON.stringify(taken));
      assert.ok(taken[0] >= 4 && taken[1] >= 4, `both replicas serve: ${JSON.stringify(taken)}`);
      assert.ok(m['brisk_speculated_tokens_total'] > 0, 'tokens were proposed');
      assert.ok(m['brisk_speculated_tokens_accepted_total'] > 0, 'some were accepted');
      assert.match(server.log(), /\/v1\/completions 200 .* speculated=\d+ accepted=\d+/, 'the request log says what was speculated');
    });
  });
}

test('--dp that cannot be placed is refused by name', () => {
  const r = spawnSync(BRISK, ['serve', '-m', LLAMA, '--dp', '4', '-t', '2'], { encoding: 'utf8', timeout: 60000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--dp 4 needs at least one CPU thread per replica; -t gives 2/);
});

describe('queue limits', { timeout: 300000 }, () => {
  test('a full queue answers 429 with Retry-After', async () => {
    const server = await startServer(LLAMA, ['--max-batch', '1', '--max-queue', '1']);
    try {
      const body = { prompt: 'The economy', max_tokens: 150, temperature: 0, ignore_eos: true };
      const results = await Promise.all(Array.from({ length: 8 }, () => post(server, '/v1/completions', body, {})));
      const statuses = results.map((r) => r.status);
      assert.ok(statuses.includes(429), `statuses: ${statuses}`);
      assert.ok(statuses.includes(200), `statuses: ${statuses}`);
      for (const r of results) {
        if (r.status === 429) {
          assertOpenAIError(r, 429);
          assert.ok(Number(r.headers.get('retry-after')) >= 1);
        } else {
          assert.equal(r.status, 200, r.text);
        }
      }
    } finally {
      await server.stop();
    }
  });

  test('SIGTERM lets an in-flight stream finish, then exits 0', async () => {
    const server = await startServer(LLAMA, []);
    const openai = client(server, 'unused');
    const stream = await openai.completions.create({ prompt: 'The State', max_tokens: 64, temperature: 0, ignore_eos: true, stream: true });
    let tokens = 0;
    let finish = null;
    const consumed = (async () => {
      for await (const chunk of stream) {
        if (++tokens === 1) server.proc.kill('SIGTERM');
        if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      }
    })();
    await consumed;
    assert.equal(finish, 'length');
    const { code } = await server.exited;
    assert.equal(code, 0);
  });
});

describe('chat on a model with a chat template', { timeout: 300000 }, () => {
  let dir;
  let server;
  before(async () => {
    // A copy of sotu-llama whose tokenizer_config.json carries a simple template.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brisk-chat-'));
    for (const name of fs.readdirSync(LLAMA)) {
      if (name !== 'tokenizer_config.json') fs.symlinkSync(path.join(LLAMA, name), path.join(dir, name));
    }
    const config = JSON.parse(fs.readFileSync(path.join(LLAMA, 'tokenizer_config.json'), 'utf8'));
    config.chat_template = "{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}: " +
      "{{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    server = await startServer(dir, []);
  });
  after(async () => {
    if (server) await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('chat completion, stream equals non-stream', async () => {
    const openai = client(server, 'unused');
    const params = { model: path.basename(dir), messages: [{ role: 'system', content: 'You are the President.' },
                                                          { role: 'user', content: 'How is the Union?' }],
                     max_tokens: 16, temperature: 0 };
    const full = await openai.chat.completions.create(params);
    assert.equal(full.object, 'chat.completion');
    assert.equal(full.choices[0].message.role, 'assistant');
    assert.ok(full.choices[0].message.content.length > 0);
    assert.ok(full.usage.prompt_tokens > 10);
    const stream = await openai.chat.completions.create({ ...params, stream: true });
    let text = '';
    let role = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      const delta = chunk.choices[0].delta;
      if (delta.role) role = delta.role;
      text += delta.content ?? '';
    }
    assert.equal(role, 'assistant');
    assert.equal(text, full.choices[0].message.content);
  });
});

// /v1/embeddings on an encoder (a random-weight BertModel from `brisk synth --shape bert-mini`),
// through the official client (which asks for base64 and decodes it) and raw HTTP.
describe('embeddings on an encoder', { timeout: 300000 }, () => {
  let server;
  let openai;
  let dir;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brisk-bert-'));
    const model = path.join(dir, 'bert-mini');
    await new Promise((resolve, reject) => {
      const p = spawn(BRISK, ['synth', '--shape', 'bert-mini', '--dtype', 'f32', '-o', model], { stdio: 'ignore' });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`synth exited ${code}`))));
    });
    server = await startServer(model, ['--api-key', KEY]);
    openai = client(server);
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0, `graceful shutdown exits 0:\n${server.log()}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('client: a batch of strings, base64 decoded, equal to one at a time', async () => {
    const batch = await openai.embeddings.create({ model: 'bert-mini', input: ['The Union is strong', 'hello'] });
    assert.equal(batch.object, 'list');
    assert.equal(batch.model, 'bert-mini');
    assert.equal(batch.data.length, 2);
    for (const [i, d] of batch.data.entries()) {
      assert.equal(d.object, 'embedding');
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, 128);
      assert.ok(d.embedding.every(Number.isFinite));
    }
    assert.ok(batch.usage.prompt_tokens > 0);
    assert.equal(batch.usage.total_tokens, batch.usage.prompt_tokens);
    const one = await openai.embeddings.create({ model: 'bert-mini', input: 'hello' });
    assert.deepEqual(one.data[0].embedding, batch.data[1].embedding);
    assert.notDeepEqual(batch.data[0].embedding, batch.data[1].embedding);
  });

  test('float format and token-id input agree with base64 and text', async () => {
    const floats = await post(server, '/v1/embeddings', { input: 'hello', encoding_format: 'float' });
    assert.equal(floats.status, 200, floats.text);
    const decoded = await openai.embeddings.create({ model: 'bert-mini', input: 'hello' });
    const a = floats.json.data[0].embedding;
    const b = decoded.data[0].embedding;
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; ++i) assert.ok(Math.abs(a[i] - b[i]) <= 1e-6 * (1 + Math.abs(b[i])));
    const tokens = await post(server, '/v1/embeddings', { input: [104, 101, 108, 108, 111], encoding_format: 'float' });
    assert.equal(tokens.status, 200, tokens.text);
    assert.deepEqual(tokens.json.data[0].embedding, a);  // the byte-level tokenizer: "hello" is its 5 bytes
  });

  test('errors name the field; an encoder does not complete', async () => {
    assertOpenAIError(await post(server, '/v1/embeddings', { input: 'x', dimensions: 64 }), 400, 'dimensions');
    assertOpenAIError(await post(server, '/v1/embeddings', { input: [] }), 400, 'input');
    assertOpenAIError(await post(server, '/v1/embeddings', { input: [[1, 2], 'x', {}] }), 400, 'input');
    assertOpenAIError(await post(server, '/v1/embeddings', { input: 'x', encoding_format: 'int8' }), 400,
                      'encoding_format');
    assertOpenAIError(await post(server, '/v1/embeddings', { input: 'x', model: 'gpt-4' }), 404, 'model');
    assertOpenAIError(await post(server, '/v1/embeddings', { input: 'word '.repeat(600) }), 400, 'input');
    const completion = await post(server, '/v1/completions', { prompt: 'hello', max_tokens: 4 });
    assert.equal(completion.status, 400, completion.text);
  });
});

describe('tokenize, detokenize and model aliases (the bundled model)', { timeout: 300000 }, () => {
  const TINY = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'models', 'sotu-tiny');
  let server;
  before(async () => {
    server = await startServer(TINY, ['--served-model-name', 'tiny', '--served-model-name', 'tiny-alias',
                                      '--api-key', KEY]);
  });
  after(async () => { if (server) await server.stop(); });

  test('/tokenize round-trips through /detokenize and counts what generation counts', async () => {
    const text = 'The Congress shall have power: 12,345 caf\u00e9s.';
    const tok = await post(server, '/tokenize', { prompt: text, add_special_tokens: false });
    assert.equal(tok.status, 200, tok.text);
    assert.equal(tok.json.count, tok.json.tokens.length);
    assert.ok(tok.json.max_model_len > 0);
    const detok = await post(server, '/detokenize', { tokens: tok.json.tokens });
    assert.equal(detok.json.prompt, text);
    // The prompt tokens generation reports equal /tokenize's count (with the same special tokens).
    const withSpecial = await post(server, '/tokenize', { prompt: text });
    const done = await client(server).completions.create({ model: 'tiny', prompt: text, max_tokens: 1 });
    assert.equal(done.usage.prompt_tokens, withSpecial.json.count);
    // Chat messages are rendered by the model's template, as /v1/chat/completions renders them.
    const chat = await post(server, '/tokenize', { messages: [{ role: 'user', content: 'Hi' }] });
    const reply = await client(server).chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 });
    assert.equal(reply.usage.prompt_tokens, chat.json.count);
    assertOpenAIError(await post(server, '/detokenize', { tokens: [1, 99999999] }), 400, 'tokens');
    assertOpenAIError(await post(server, '/tokenize', { prompt: 'x', messages: [] }), 400, 'prompt');
    assert.equal((await post(server, '/tokenize', { prompt: 'x' }, {})).status, 401);
  });

  test('a chat template per request (chat_template, chat_template_kwargs, add_generation_prompt)', async () => {
    const messages = [{ role: 'user', content: 'Hello' }];
    const override = { chat_template: '{{ greeting }}{% for m in messages %}{{ m.content }}{% endfor %}',
                       chat_template_kwargs: { greeting: 'Q: ' } };
    const rendered = await post(server, '/tokenize', { messages, ...override, add_generation_prompt: false });
    const plain = await post(server, '/tokenize', { prompt: 'Q: Hello', add_special_tokens: false });
    assert.deepEqual(rendered.json.tokens, plain.json.tokens);
    const reply = await post(server, '/v1/chat/completions', { messages, ...override, max_tokens: 1 });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.json.usage.prompt_tokens, plain.json.count);
    assertOpenAIError(await post(server, '/v1/chat/completions', { messages, chat_template: '{% for %}' }), 400,
                      'chat_template');
    assertOpenAIError(await post(server, '/v1/chat/completions', { messages, chat_template_kwargs: { messages: [] } }),
                      400, 'chat_template_kwargs');
  });

  test('--served-model-name: every alias is listed and answers; responses carry the first', async () => {
    const openai = client(server);
    const ids = (await openai.models.list()).data.map((m) => m.id);
    assert.deepEqual(ids, ['tiny', 'tiny-alias']);
    const r = await openai.completions.create({ model: 'tiny-alias', prompt: 'Hello', max_tokens: 2 });
    assert.equal(r.model, 'tiny');
    await assert.rejects(openai.completions.create({ model: 'other', prompt: 'Hello', max_tokens: 2 }),
      (err) => err.status === 404 && err.param === 'model');
  });
});

describe('structured output and tool calling (the bundled model)', { timeout: 300000 }, () => {
  const TINY = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'models', 'sotu-tiny');
  const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'chat');
  const ajv = new Ajv({ strict: false });
  let server;
  let openai;
  before(async () => {
    server = await startServer(TINY, ['--api-key', KEY]);
    openai = client(server);
  });
  after(async () => { if (server) await server.stop(); });

  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 24 },
      year: { type: 'integer' },
      tags: { type: 'array', items: { enum: ['war', 'peace', 'tax'] }, minItems: 1, maxItems: 3 },
      address: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/place' }] },
    },
    required: ['name', 'year', 'tags', 'address'],
    additionalProperties: false,
    $defs: { place: { type: 'object', properties: { city: { type: 'string', maxLength: 16 } }, required: ['city'] } },
  };

  test('response_format json_object and json_schema: every output parses and validates, streamed too', async () => {
    const validate = ajv.compile(schema);
    const format = { type: 'json_schema', json_schema: { name: 'speech', schema } };
    for (let seed = 0; seed < 6; ++seed) {
      const r = await openai.chat.completions.create({
        messages: [{ role: 'user', content: 'Describe a speech as JSON.' }], response_format: format, seed, max_tokens: 300,
      });
      assert.equal(r.choices[0].finish_reason, 'stop');
      const value = JSON.parse(r.choices[0].message.content);
      assert.ok(validate(value), JSON.stringify(validate.errors) + r.choices[0].message.content);
    }
    const stream = await openai.chat.completions.create({
      messages: [{ role: 'user', content: 'JSON please' }], response_format: format, seed: 9, max_tokens: 300, stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.ok(validate(JSON.parse(text)), text);
    // json_object has no length limits, and this small model writes speeches into its strings:
    // a bias towards '"' and '}' (applied after the mask) lets objects close within max_tokens.
    const quote = (await post(server, '/tokenize', { prompt: '"', add_special_tokens: false })).json.tokens;
    const brace = (await post(server, '/tokenize', { prompt: '}', add_special_tokens: false })).json.tokens;
    assert.equal(quote.length + brace.length, 2);
    let closed = 0;
    for (let seed = 1; seed <= 5; ++seed) {
      const object = await openai.completions.create({
        prompt: '{"', response_format: { type: 'json_object' }, max_tokens: 200, seed,
        logit_bias: { [quote[0]]: 6, [brace[0]]: 8 },
      });
      const choice = object.choices[0];
      assert.ok(choice.text.startsWith('{'), choice.text);
      if (choice.finish_reason !== 'stop') continue;  // cut by max_tokens: incomplete by request
      assert.equal(typeof JSON.parse(choice.text), 'object');
      ++closed;
    }
    assert.ok(closed >= 1);
  });

  test('grammar (GBNF, as llama-server takes it) constrains a completion', async () => {
    const r = await post(server, '/v1/completions', {
      prompt: 'The answer is', max_tokens: 40, seed: 1, grammar: 'root ::= ("yes" | "no") ", " [0-9]{2,3} "%"',
    });
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.choices[0].text, /^(yes|no), [0-9]{2,3}%$/);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
  });

  const weather = {
    type: 'function',
    function: {
      name: 'get_weather', description: 'Current weather',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['c', 'f'] } },
                    required: ['city', 'unit'], additionalProperties: false },
    },
  };
  const clock = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };
  const mistralTemplate = '{{ bos_token }}{% if tools %}[AVAILABLE_TOOLS] {{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}' +
    '{% for m in messages %}{% if m.role == "user" %}[INST] {{ m.content }}[/INST]' +
    '{% elif m.role == "assistant" and m.tool_calls %}[TOOL_CALLS] {{ m.tool_calls | map(attribute="function") | list | tojson }}' +
    '{% elif m.role == "tool" %}[TOOL_RESULTS] {{ m.content }}[/TOOL_RESULTS]{% else %}{{ m.content }}{% endif %}{% endfor %}';
  const formats = {
    hermes: fs.readFileSync(path.join(FIXTURES, 'qwen2.5-instruct.jinja'), 'utf8'),
    llama3_json: fs.readFileSync(path.join(FIXTURES, 'llama-3.1-instruct.jinja'), 'utf8'),
    mistral: mistralTemplate,
  };

  for (const [format, chatTemplate] of Object.entries(formats)) {
    test(`tools (${format}): required and named calls, streamed deltas assemble to valid arguments`, async () => {
      const validate = ajv.compile(weather.function.parameters);
      const messages = [{ role: 'user', content: 'Weather in Oslo?' }];
      const base = { messages, tools: [weather, clock], chat_template: chatTemplate, max_tokens: 120, parallel_tool_calls: false };
      const required = await openai.chat.completions.create({ ...base, tool_choice: 'required', seed: 1 });
      const choice = required.choices[0];
      assert.equal(choice.finish_reason, 'tool_calls', JSON.stringify(choice));
      assert.equal(choice.message.tool_calls.length, 1);
      const call = choice.message.tool_calls[0];
      assert.ok(['get_weather', 'get_time'].includes(call.function.name));
      assert.match(call.id, /^call_/);
      JSON.parse(call.function.arguments);
      const named = { ...base, tool_choice: { type: 'function', function: { name: 'get_weather' } } };
      for (let seed = 0; seed < 3; ++seed) {
        const r = await openai.chat.completions.create({ ...named, seed });
        const c = r.choices[0].message.tool_calls[0];
        assert.equal(c.function.name, 'get_weather');
        assert.ok(validate(JSON.parse(c.function.arguments)), c.function.arguments);
      }
      // Streamed: OpenAI's delta shape, assembled as clients do.
      const stream = await openai.chat.completions.create({ ...named, seed: 5, stream: true });
      const calls = [];
      let finish = null;
      let argumentDeltas = 0;
      for await (const chunk of stream) {
        const c = chunk.choices[0];
        if (!c) continue;
        if (c.finish_reason) finish = c.finish_reason;
        for (const d of c.delta.tool_calls ?? []) {
          calls[d.index] ??= { id: '', name: '', arguments: '' };
          if (d.id) calls[d.index].id = d.id;
          if (d.function?.name) calls[d.index].name += d.function.name;
          if (d.function?.arguments) {
            calls[d.index].arguments += d.function.arguments;
            ++argumentDeltas;
          }
        }
      }
      assert.equal(finish, 'tool_calls');
      assert.equal(calls.length, 1);
      assert.equal(calls[0].name, 'get_weather');
      assert.ok(validate(JSON.parse(calls[0].arguments)), calls[0].arguments);
      assert.ok(argumentDeltas >= 2, `arguments arrive as they are written (${argumentDeltas} deltas)`);
      const whole = await openai.chat.completions.create({ ...named, seed: 5 });
      assert.equal(whole.choices[0].message.tool_calls[0].function.arguments, calls[0].arguments);
      // tool_choice auto: the model's own text is parsed; a grammar makes it write a call here.
      const callText = {
        hermes: '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
        llama3_json: '{"name": "get_time", "parameters": {}}',
        mistral: '[TOOL_CALLS] [{"name": "get_time", "arguments": {}}]',
      }[format];
      const auto = await post(server, '/v1/chat/completions', {
        ...base, tool_choice: 'auto', max_tokens: 60, grammar: `root ::= ${JSON.stringify(callText)}`,
      });
      assert.equal(auto.status, 200, auto.text);
      // ([TOOL_CALLS] is plain text for this tokenizer, so the grammar can spell it.)
      assert.equal(auto.json.choices[0].message.tool_calls[0].function.name, 'get_time', auto.text);
      assert.equal(auto.json.choices[0].message.content, null);
      assert.equal(auto.json.choices[0].finish_reason, 'tool_calls');
    });
  }

  test('tool results in the history are rendered by the template', async () => {
    const messages = [
      { role: 'user', content: 'Weather in Oslo?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'get_weather', arguments: '{"city": "Oslo", "unit": "c"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'minus 4 degrees' },
    ];
    const chatTemplate = formats.hermes;
    const rendered = await post(server, '/tokenize', { messages, chat_template: chatTemplate });
    assert.equal(rendered.status, 200, rendered.text);
    const text = (await post(server, '/detokenize', { tokens: rendered.json.tokens })).json.prompt;
    assert.match(text, /<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "Oslo", "unit": "c"\}\}\n<\/tool_call>/);
    assert.match(text, /<tool_response>\nminus 4 degrees\n<\/tool_response>/);
    const r = await openai.chat.completions.create({ messages, tools: [weather], chat_template: chatTemplate, max_tokens: 8 });
    assert.ok(r.choices[0].message.role === 'assistant');
  });

  test('what cannot be enforced is refused by name', async () => {
    const messages = [{ role: 'user', content: 'x' }];
    const bad = async (body, param) => assertOpenAIError(await post(server, '/v1/chat/completions', { messages, ...body }), 400, param);
    await bad({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a' } } } },
              'response_format.json_schema.schema');
    await bad({ response_format: { type: 'yaml' } }, 'response_format.type');
    await bad({ grammar: 'root ::= undefined-rule' }, 'grammar');
    await bad({ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice');
    await bad({ tools: [weather], tool_choice: 'required', response_format: { type: 'json_object' } }, 'tool_choice');
    await bad({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', minProperties: 1 } } }],
                tool_choice: 'required' }, 'tools[0].function.parameters');
    await bad({ grammar: 'root ::= "a"', ignore_eos: true }, 'ignore_eos');
  });
});
