// The official Anthropic SDK through the gateway (t/055-sdk.t).
//   TP_BASE=http://127.0.0.1:N/trueportai-services/anthropic TP_KEY=sk-...
//   TP_BAD_KEY=sk-... node t/sdk/anthropic.mjs
import Anthropic from '@anthropic-ai/sdk';
import { env, run } from './lib.mjs';

const base = env('TP_BASE');
const opts = { baseURL: base, maxRetries: 0, timeout: 10000 };
const body = { model: 'claude-3-5-haiku-latest', max_tokens: 64,
               messages: [{ role: 'user', content: 'Say hello' }] };

await run({
  async x_api_key() {
    const m = await new Anthropic({ ...opts, apiKey: env('TP_KEY') }).messages.create(body);
    return { text: m.content.map((c) => c.text).join(''), usage: m.usage, stop: m.stop_reason };
  },
  async bearer() {
    const m = await new Anthropic({ ...opts, apiKey: null, authToken: env('TP_KEY') }).messages.create(body);
    return { text: m.content.map((c) => c.text).join(''), usage: m.usage };
  },
  async stream() {
    const s = await new Anthropic({ ...opts, apiKey: env('TP_KEY') }).messages.create({ ...body, stream: true });
    let text = '';
    let events = 0;
    let input = null;
    let output = null;
    for await (const ev of s) {
      events++;
      if (ev.type === 'message_start') input = ev.message.usage.input_tokens;
      if (ev.type === 'content_block_delta') text += ev.delta.text ?? '';
      if (ev.type === 'message_delta') output = ev.usage.output_tokens;
    }
    return { events, text, input, output };
  },
  async invalid_key() {
    try {
      await new Anthropic({ ...opts, apiKey: env('TP_BAD_KEY') }).messages.create(body);
      return { threw: null };
    } catch (e) {
      return { threw: { class: e.constructor.name, auth: e instanceof Anthropic.AuthenticationError,
                        status: e.status, message: e.message } };
    }
  },
});
