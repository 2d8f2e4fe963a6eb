/**
 * What the bench page (bench/browser/main.ts) exposes as `window.handoffBench`, for the Node side
 * (bench/browser.bench.ts) to drive with `page.evaluate`. Types only: nothing here runs.
 *
 * Times named `…Ms` are durations measured within one page. Times named `…At` are epoch
 * milliseconds (`performance.timeOrigin + performance.now()`), so that runs spanning two pages
 * can be put on one axis (within one page they are exact; across pages they carry the processes'
 * clock offset).
 */

export type Role = 'requester' | 'server';

export interface LinkSetupSample {
  /** Asked for the link (the delegation, or createOffer) → the requester's data channel open. */
  openMs: number;
  /** Handoff: the delegation → the first answer chunk over the fresh link. Bare: new RTCPeerConnection → open. */
  otherMs: number;
  /**
   * When the link's signals passed the actors (epoch ms; `t0` = delegatePrompt). Bare: the same
   * keys where they have a match (offer set, answer set, channel open; `t0` = createOffer).
   */
  trace?: Record<string, number>;
}

/** One delegation, timed at the requester. */
export interface DelegationRun {
  prompt: string;
  /** delegatePrompt called. */
  t0At: number;
  /** The first chunk out of `task.chunks`. */
  firstAt: number;
  /** `task.result` resolved (completed). */
  endAt: number;
  chars: number;
  /** Chunks out of `task.chunks` (= prompt-response messages with text). */
  messages: number;
  /** The text is exactly what the provider streamed. */
  exact: boolean;
}

/** What the bench provider saw of one run, inside the serving peer. */
export interface ProviderRun {
  startedAt: number;
  firstTokenAt: number;
}

export interface ThroughputSample {
  /** Request sent → the last byte of the answer received and the text checked. */
  ms: number;
  chars: number;
  /** Data-channel messages carrying the answer's text. */
  messages: number;
  exact: boolean;
}

export interface MicroSample {
  what: string;
  perOpUs: number;
  ops: number;
}

export interface HandoffBenchApi {
  ready: true;
  /** `performance.now()` resolution seen in this page (ms) and whether it is cross-origin isolated. */
  clock(): { resolutionMs: number; crossOriginIsolated: boolean };
  /** Two fresh Handoff clients in this page (no link yet); B serves. One trial, then both are stopped. */
  linkSetupHandoff(options: { signalingUrl: string; timeoutMs: number }): Promise<LinkSetupSample>;
  /** Two bare RTCPeerConnections in this page, offer/answer/ICE handed over directly (trickle). */
  linkSetupBare(options: { timeoutMs: number }): Promise<LinkSetupSample>;
  /** Starts this page's long-lived Handoff client for `role`; resolves with its peer id. */
  startClient(options: { role: Role; signalingUrl: string; timeoutMs: number }): Promise<string>;
  /** Requester: discovers `serverId` and opens the link with one delegation (nothing measured). */
  warm(options: { serverId: string; timeoutMs: number }): Promise<void>;
  /**
   * Requester: one delegation to the server over the open link. `ttft <ms> <gapMs>` asks for a short
   * answer whose first token comes after <ms> and the next <gapMs> later; `bulk <chunkChars>
   * <totalChars>` for that much text in pieces of that size.
   */
  delegate(options: { ask: string; timeoutMs: number }): Promise<DelegationRun>;
  /** Starts recording when task messages first pass each actor of this page's clients (XState inspection). */
  startTrace(): void;
  /** Server: what the provider recorded for `prompt` (and forgets it). */
  providerRun(prompt: string): ProviderRun | undefined;
  /** Stops recording; the trace: `<role> <event>[ <message type>]` → first time (epoch ms). */
  takeTrace(): Record<string, number>;
  /** Bare pair, step 1 (requester page): a connection, its channel and a complete offer. */
  bareOffer(options: { timeoutMs: number }): Promise<string>;
  /** Bare pair, step 2 (server page): the answer; the channel it receives serves `ping` and `bulk`. */
  bareAnswer(options: { sdp: string; timeoutMs: number }): Promise<string>;
  /** Bare pair, step 3 (requester page): applies the answer and waits for the channel to open. */
  bareFinish(options: { sdp: string; timeoutMs: number }): Promise<void>;
  /** Requester: a small request and its reply over the bare channel. */
  roundTripBare(options: { timeoutMs: number }): Promise<{ rttMs: number }>;
  /**
   * Requester: the serving page's clock minus this page's (epoch ms), from the bare channel's
   * quickest of `probes` round trips (the remote is assumed to read its clock halfway through).
   */
  clockOffset(options: { probes: number; timeoutMs: number }): Promise<{ rttMs: number; offsetMs: number }>;
  /** Requester: the bare channel's serving end streams `totalChars` in `chunkChars` messages. */
  throughputBare(options: {
    chunkChars: number;
    totalChars: number;
    timeoutMs: number;
  }): Promise<ThroughputSample>;
  /** Stops this page's long-lived clients and bare connections. */
  closeAll(): Promise<void>;
  /** Per-message costs in this browser: Ed25519 sign/verify, canonical JSON, encode/decode. */
  micro(options: { chunkChars: number; ops: number }): Promise<MicroSample[]>;
  /** Profiling only: replaces WebCrypto's Ed25519 sign/verify with instant stubs (or restores them). */
  stubEd25519(on: boolean): void;
  /**
   * Profiling only: times every RTCDataChannel.send call in this page (the main thread is held for
   * its duration) from `on` until off; off returns the tally.
   */
  measureSends(on: boolean): { calls: number; totalMs: number; maxMs: number; chars: number } | undefined;
  /** Requester: its link's byte counters (everything received and sent on it, pings included). */
  linkCounters(): { bytesSent: number; bytesReceived: number } | undefined;
}

declare global {
  interface Window {
    handoffBench?: HandoffBenchApi;
  }
}
