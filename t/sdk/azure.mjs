// The OpenAI SDK's AzureOpenAI class through the gateway (t/055-sdk.t).
//   TP_ENDPOINT=http://127.0.0.1:N/trueportai-services/azure/myres
//   TP_KEY=sk-... node t/sdk/azure.mjs
import { AzureOpenAI } from 'openai';
import { env, run } from './lib.mjs';

const client = new AzureOpenAI({ endpoint: env('TP_ENDPOINT'), apiKey: env('TP_KEY'),
                                 apiVersion: '2024-10-21', deployment: 'gpt-4o-prod',
                                 maxRetries: 0, timeout: 10000 });
const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Say hello' }] };

await run({
  async chat() {
    const r = await client.chat.completions.create(body);
    return { content: r.choices[0].message.content, usage: r.usage };
  },
  async stream() {
    const s = await client.chat.completions.create({ ...body, stream: true,
                                                     stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let usage = null;
    for await (const c of s) {
      chunks++;
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) text += ch.delta?.content ?? '';
    }
    return { chunks, text, usage };
  },
});
