import type * as UWS from 'uWebSockets.js';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * Loads uWebSockets.js's native binary and nothing else. The package we depend on silently falls
 * back to a pure-JS server when the binary does not load (or when UWS_USE_FALLBACK is set); that
 * fallback has none of the properties this server is built on, so we refuse it.
 */
export function loadNativeUws(): typeof UWS {
  const flag = process.env.UWS_USE_FALLBACK;
  if (flag && ['true', 'True', 'TRUE', '1'].includes(flag)) {
    throw new Error(
      `UWS_USE_FALLBACK=${flag} asks for the pure-JS fallback; the signaling server needs native uWebSockets.js`,
    );
  }
  const dir = require.resolve('uWebSockets.js/package.json').replace(/package\.json$/, '');
  const binary = `${dir}binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  let uws: typeof UWS;
  try {
    uws = require(binary) as typeof UWS;
  } catch (error) {
    throw new Error(
      `uWebSockets.js has no native binary for ${process.platform}-${process.arch} with Node ABI ${process.versions.modules} ` +
        `(Node ${process.versions.node}); use Node 16, 18 or 20. (${(error as Error).message.split('\n')[0]})`,
    );
  }
  if (!String(uws.App).includes('[native code]'))
    throw new Error('uWebSockets.js loaded, but it is not the native binary');
  return uws;
}
