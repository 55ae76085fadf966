// Module resolution hook for flow processes (plain JS: it runs in Node's loader thread).
// A flow module in a directory without its own node_modules (a quick script next to the
// agent) may import "@ferry/sdk" or "zod": when normal resolution of a bare specifier
// fails, resolve it again from the agent's installation of the SDK.
let fallbackParent;

export function initialize(data) {
  fallbackParent = data?.fallbackParent;
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const bare = !/^(\.|\/|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);
    if (!bare || !fallbackParent || err?.code !== "ERR_MODULE_NOT_FOUND" || context.parentURL === fallbackParent) throw err;
    return nextResolve(specifier, { ...context, parentURL: fallbackParent });
  }
}
