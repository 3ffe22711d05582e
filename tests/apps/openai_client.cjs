// The official `openai` npm client against `lmlab serve` (run by cli_test.sh): chat streamed and not,
// n > 1, stop strings, completions, the model list, and an error the client surfaces as an APIError.
// Usage: node openai_client.cjs <path to the openai package> <base URL> <api key>
const OpenAI = require(process.argv[2]);
const client = new OpenAI({ baseURL: process.argv[3], apiKey: process.argv[4], maxRetries: 0 });
let fails = 0;
const ok = (what) => console.log(`ok: openai client: ${what}`);
const bad = (what) => { console.log(`FAIL: openai client: ${what}`); fails++; };
const check = (cond, what) => (cond ? ok(what) : bad(what));

(async () => {
  const models = await client.models.list();
  check(models.data.length === 1 && typeof models.data[0].id === 'string', 'models.list');

  const messages = [{ role: 'system', content: 'A' }, { role: 'user', content: 'hi' }];
  const r = await client.chat.completions.create({ model: models.data[0].id, messages, max_tokens: 3, temperature: 0 });
  const text = r.choices[0].message.content;
  check(r.object === 'chat.completion' && typeof text === 'string' && r.usage.completion_tokens >= 1, 'chat.completions.create');

  const stream = await client.chat.completions.create({ model: 'x', messages, max_tokens: 3, temperature: 0, stream: true });
  let streamed = '', finish = null;
  for await (const chunk of stream) {
    streamed += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  check(streamed === text && finish !== null, `streamed chat equals the whole answer (${JSON.stringify(streamed)})`);

  const n2 = await client.chat.completions.create({ model: 'x', messages, max_tokens: 2, n: 2, seed: 5 });
  check(n2.choices.length === 2 && n2.choices[1].index === 1, 'n = 2');

  const c = await client.completions.create({ model: 'x', prompt: 'The jury', max_tokens: 3, temperature: 0 });
  check(c.object === 'text_completion' && typeof c.choices[0].text === 'string', 'completions.create');

  try {
    await client.chat.completions.create({ model: 'x', messages: [], max_tokens: 3 });
    bad('an empty messages list was accepted');
  } catch (e) {
    check(e.status === 400 && /messages/.test(e.message), `a bad request is an APIError 400 (${e.message})`);
  }
  process.exit(fails ? 1 : 0);
})().catch((e) => {
  console.log(`FAIL: openai client: ${e}`);
  process.exit(1);
});
