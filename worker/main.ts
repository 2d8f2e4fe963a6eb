/**
 * The headless worker: joins a Handoff signaling server as a serving peer, so a machine running
 * Ollama, llama.cpp or vLLM (or the demo provider) serves prompts that browsers delegate to it.
 *
 *   handoff-worker --signaling ws://127.0.0.1:8083 --provider openai \
 *     --base-url http://127.0.0.1:11434/v1 --model llama3 [--api-key-env OPENAI_API_KEY] …
 *   handoff-worker --signaling ws://127.0.0.1:8083 --provider demo [--words-per-second 40]
 *
 * Logs are JSON lines on stdout. Exit codes: 0 after SIGTERM/SIGINT (it leaves the server first),
 * 1 on a runtime failure, 2 when it refuses to start (bad flags, unreachable server, missing model).
 */
import { createHandoff, type Handoff } from '../machines/create-handoff.ts';
import { createDemoProvider } from '../machines/providers/demo-provider.ts';
import { createOpenAICompatibleProvider } from '../machines/providers/openai-compatible.ts';
import { capabilitiesOf, type MeasuredProvider, withPerformance } from '../machines/providers/performance.ts';
import type { AIProvider } from '../machines/providers/provider.ts';
import { SecurityManager } from '../machines/security/security-manager.ts';
import type { QuotaStatus } from '../protocol/index.ts';
import { createLogger, type Logger } from '../signaling/logger.ts';
import { ConfigError, resolveWorkerConfig, usage, type WorkerConfig } from './config.ts';
import { type NodeEnvironment, nodeEnvironment } from './node-environment.ts';
import { probeOpenAIServer } from './probe.ts';

const EXIT_FAILED = 1;
const EXIT_REFUSED = 2;
/** How long a leaving worker waits for the server to acknowledge its close (1000). */
const LEAVE_TIMEOUT_MS = 2_000;

/** Thrown for anything that should stop the worker before it starts serving: exit 2. */
class RefusedError extends Error {
  /** A mistake in the flags: point at --help. */
  readonly showHelp: boolean;
  constructor(message: string, showHelp = false) {
    super(message);
    this.showHelp = showHelp;
  }
}

/** Takes the secrets out of anything the worker writes; set once the configuration is read. */
let redact: (text: string) => string = (text) => text;

/** The signaling URL as logged: no query string (it may carry a resume or access token). */
function loggableUrl(url: string): string {
  const parsed = new URL(url);
  parsed.search = '';
  return parsed.toString();
}

/** Replaces every secret in `text` (a belt-and-braces filter on every line the worker writes). */
function redactor(secrets: (string | undefined)[]): (text: string) => string {
  const present = secrets.filter((secret): secret is string => Boolean(secret));
  return (text) => present.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
}

/** The provider this worker serves with, timed, and offering exactly the configured model. */
async function buildProvider(config: WorkerConfig, log: Logger): Promise<MeasuredProvider> {
  let provider: AIProvider;
  if (config.provider === 'openai') {
    const baseUrl = config.baseUrl as string;
    const probe = await probeOpenAIServer({
      baseUrl,
      model: config.model,
      apiKey: config.apiKey,
      apiKeyEnv: config.apiKeyEnv,
      timeoutMs: config.probeTimeoutMs,
    });
    if (!probe.ok) throw new RefusedError(probe.message);
    if (probe.warning) log.warn('model list unavailable', { detail: probe.warning });
    const openai = createOpenAICompatibleProvider({
      baseUrl,
      model: config.model,
      ...(config.apiKey ? { apiKey: config.apiKey } : {}),
    });
    // Offer only the model the operator chose, not every model the server happens to have.
    provider = {
      id: openai.id,
      label: openai.label,
      isDemo: openai.isDemo,
      models: async () => [config.model],
      stream: (request) => openai.stream(request),
    };
  } else {
    provider = createDemoProvider({ wordsPerSecond: config.wordsPerSecond, model: config.model });
  }
  return withPerformance(provider);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return;
  }

  let handoff: Handoff | undefined;
  let environment: NodeEnvironment | undefined;
  let stopping = false;
  let log: Logger | undefined;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      log?.warn('stopped without leaving', { signal });
      process.exit(EXIT_FAILED);
    }
    stopping = true;
    log?.info('stopping', { signal });
    if (handoff) {
      handoff.stop(); // leaves the server (close 1000: peers hear `peer-left` at once) and stops every actor
      const left = await (environment as NodeEnvironment).socketsClosed(LEAVE_TIMEOUT_MS);
      log?.info('stopped', { left });
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  let config: WorkerConfig;
  try {
    config = resolveWorkerConfig(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new RefusedError(error.message, true);
    throw error;
  }
  redact = redactor([config.apiKey, config.token]);
  log = createLogger(config.logLevel, (line) => process.stdout.write(redact(line)));

  const provider = await buildProvider(config, log);
  if (stopping) return;
  const models = await provider.models();
  environment = nodeEnvironment(config.bindAddress ? { bindAddress: config.bindAddress } : {});
  // The security manager is the serving policy: --max-concurrent is its slot count; --quota (the
  // quota monitor, announced to peers) is the daily bound, so its own daily request cap is lifted.
  const security = new SecurityManager({
    now: Date.now,
    limiter: { maxConcurrent: config.maxConcurrent, dailyRequests: Number.POSITIVE_INFINITY },
  });
  handoff = await createHandoff({
    environment,
    provider,
    security,
    maxConcurrentServes: config.maxConcurrent,
    ...(config.quota ? { quota: { totalQuota: config.quota } } : {}),
    ...(config.token ? { connection: { token: config.token } } : {}),
  });
  const { actor } = handoff;
  const quota = () => actor.system.get('quota')?.getSnapshot().context.quota as QuotaStatus | undefined;
  // What connect() announces: hasAI, the model, the starting quota; performance once runs are measured.
  handoff.announce(capabilitiesOf(provider, models, quota()));

  log.info('started', {
    provider: provider.id,
    label: provider.label,
    models,
    ...(config.baseUrl ? { baseUrl: config.baseUrl } : {}),
    signaling: loggableUrl(config.signalingUrl),
    maxConcurrent: config.maxConcurrent,
    quota: config.quota ?? null,
    bindAddress: config.bindAddress ?? null,
    // Where the secrets come from, never the secrets.
    apiKeyFrom: config.apiKey ? config.apiKeyEnv : null,
    tokenFrom: config.token ? config.tokenEnv : null,
  });

  followConnection(handoff, config, log, () => stopping);
  followServes(handoff, log);

  handoff.connect(config.signalingUrl).catch(() => {
    // A connection that fails for good is logged and ends the worker (followConnection).
  });
}

/** Logs the signaling session's life: connected, reconnecting, disconnected; exits if it fails for good. */
function followConnection(
  handoff: Handoff,
  config: WorkerConfig,
  log: Logger,
  stopping: () => boolean,
): void {
  const connection = handoff.actor.system.get('connection');
  if (!connection) throw new Error('the client has no connection actor');
  let last = 'disconnected';
  /** The peer id of the latest session (the connection forgets it when it leaves). */
  let lastPeerId: string | undefined;
  connection.subscribe(
    (snapshot: {
      value: unknown;
      hasTag(tag: string): boolean;
      context: { peerId?: string; attempt: number; lastError?: string };
    }) => {
      const state = snapshot.hasTag('online')
        ? 'connected'
        : typeof snapshot.value === 'string'
          ? snapshot.value
          : (Object.keys(snapshot.value as object)[0] ?? 'unknown');
      if (state === last) return;
      const was = last;
      last = state;
      const { peerId, attempt, lastError } = snapshot.context;
      switch (state) {
        case 'connected':
          log.info('connected', {
            peerId,
            signaling: loggableUrl(config.signalingUrl),
            ...(lastPeerId && lastPeerId !== peerId ? { previousPeerId: lastPeerId } : {}),
          });
          lastPeerId = peerId;
          break;
        case 'reconnecting':
          // No error recorded: the server said `reconnect` (it is shutting down or restarting).
          log.warn('reconnecting', { attempt, reason: lastError ?? 'the server asked us to reconnect' });
          break;
        case 'disconnected':
          log.info('disconnected', { peerId: peerId ?? lastPeerId ?? null });
          break;
        case 'failed':
          log.error('failed', { reason: lastError ?? 'the signaling server refused us for good', was });
          if (!stopping()) {
            handoff.stop();
            process.exit(EXIT_FAILED);
          }
          break;
      }
    },
  );
}

/** Logs every task served: its id, requester, outcome, characters streamed and time taken. */
function followServes(handoff: Handoff, log: Logger): void {
  const startedAt = new Map<string, number>();
  const keyOf = (peerId: string, taskId: string) => `${peerId} ${taskId}`;
  handoff.actor.subscribe((snapshot) => {
    for (const key of Object.keys(snapshot.context.serves)) {
      if (startedAt.has(key)) continue;
      startedAt.set(key, performance.now());
      const [requesterPeerId, taskId] = key.split(' ');
      log.debug('task started', { taskId, requesterPeerId });
    }
  });
  handoff.actor.on('handoff.serveDone', ({ output }) => {
    const key = keyOf(output.requesterPeerId, output.taskId);
    const started = startedAt.get(key);
    startedAt.delete(key);
    log.info('task served', {
      taskId: output.taskId,
      requesterPeerId: output.requesterPeerId,
      outcome: output.outcome,
      chars: output.chars,
      ms: started === undefined ? 0 : Math.round(performance.now() - started),
      ...(output.usage
        ? { inputTokens: output.usage.inputTokens, outputTokens: output.usage.outputTokens }
        : {}),
      ...(output.error ? { error: output.error } : {}),
    });
  });
}

main().catch((error: unknown) => {
  const refused = error instanceof RefusedError;
  process.stderr.write(redact(`handoff-worker: ${(error as Error)?.message ?? String(error)}\n`));
  if (refused && error.showHelp) process.stderr.write('Run handoff-worker --help for the flags.\n');
  process.exit(refused ? EXIT_REFUSED : EXIT_FAILED);
});
