// The official OpenAI SDK through the gateway (t/055-sdk.t).
//   TP_BASE=http://127.0.0.1:N/trueportai-services/openai/v1 TP_KEY=sk-...
//   TP_BAD_KEY=sk-... node t/sdk/openai.mjs
import OpenAI, { AuthenticationError } from 'openai';
import { env, run } from './lib.mjs';

const base = env('TP_BASE');
// TP_REPLY: the mock's reply (x-mock-reply), to check the text comes back whole
const defaultHeaders = process.env.TP_REPLY ? { 'x-mock-reply': process.env.TP_REPLY } : {};
const client = new OpenAI({ baseURL: base, apiKey: env('TP_KEY'), maxRetries: 0, timeout: 10000,
                            defaultHeaders });
const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] };

async function streamed(extra) {
  const stream = await client.chat.completions.create({ ...body, stream: true, ...extra });
  let text = '';
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { chunks, text, usage, finish };
}

await run({
  async chat() {
    const { data, response } = await client.chat.completions.create(body).withResponse();
    return { content: data.choices[0].message.content, finish: data.choices[0].finish_reason,
             usage: data.usage, object: data.object,
             requestId: response.headers.get('x-trueport-request-id') };
  },
  stream: () => streamed({}),
  stream_usage: () => streamed({ stream_options: { include_usage: true } }),
  async invalid_key() {
    const bad = new OpenAI({ baseURL: base, apiKey: env('TP_BAD_KEY'), maxRetries: 0, timeout: 10000 });
    try {
      await bad.chat.completions.create(body);
      return { threw: null };
    } catch (e) {
      return { threw: { class: e.constructor.name, auth: e instanceof AuthenticationError,
                        status: e.status, message: e.message, code: e.code, type: e.type } };
    }
  },
  async models() {
    const page = await client.models.list();
    return { ids: page.data.map((m) => m.id) };
  },
});
