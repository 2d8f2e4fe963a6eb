/** The single source of wire truth for browsers, Node peers and the signaling server. */
export * from './close-codes.ts';
export * from './codec.ts';
export * from './error-codes.ts';
export * from './limits.ts';
export * from './primitives.ts';
export * from './ranking.ts';
export * from './signaling.ts';
export * from './signing.ts';
export * from './task.ts';
