// Shared by the SDK scripts: run named cases, print one JSON object
// {case: result | {threw: {...}}} on stdout for t/055-sdk.t to check.
export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

// What an SDK error carries that the test looks at.
export const errorOf = (e) => ({
  class: e && e.constructor ? e.constructor.name : typeof e,
  status: e && e.status,
  message: e && e.message,
  error: e && e.error,
  requestId: e && e.headers && typeof e.headers.get === 'function'
    ? e.headers.get('x-trueport-request-id') : undefined,
});

export async function run(cases) {
  const out = {};
  for (const [name, fn] of Object.entries(cases)) {
    try {
      out[name] = await fn();
    } catch (e) {
      out[name] = { threw: errorOf(e) };
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
