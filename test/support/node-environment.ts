/**
 * Node's WebSocket (`ws`) and WebRTC (node-datachannel's W3C polyfill), as the headless worker uses
 * them (one implementation: worker/node-environment.ts). `bindAddress` keeps ICE on 127.0.0.1, which
 * is what works inside the tests' loopback-only network namespace.
 */
export { loopbackNodeEnvironment as nodeEnvironment } from '../../worker/node-environment.ts';
