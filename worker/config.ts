import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { MAX_MODEL_NAME_LENGTH } from '../protocol/index.ts';
import { LOG_LEVELS, type LogLevel } from '../signaling/config.ts';

export const PROVIDERS = ['openai', 'demo'] as const;
export type ProviderKind = (typeof PROVIDERS)[number];

/** Everything the headless worker can be told. `resolveWorkerConfig` fills the defaults. */
export interface WorkerConfig {
  /** The signaling server's WebSocket URL (ws: or wss:). */
  signalingUrl: string;
  provider: ProviderKind;
  /** The OpenAI-compatible API root (openai only), e.g. http://127.0.0.1:11434/v1. */
  baseUrl: string | undefined;
  /** The one model this worker offers and serves with. */
  model: string;
  /** Name of the environment variable holding the API key (openai only). */
  apiKeyEnv: string;
  /** The API key itself, read from `apiKeyEnv`; never from argv, never logged. */
  apiKey: string | undefined;
  /** Name of the environment variable holding the signaling access token. */
  tokenEnv: string;
  /** The signaling access token (`?token=`), read from `tokenEnv`; never from argv, never logged. */
  token: string | undefined;
  /** Requests served per day (the quota monitor, announced to peers); unset = unmetered. */
  quota: number | undefined;
  /** Tasks served at once; more wait in the security manager's queue. */
  maxConcurrent: number;
  /** The demo provider's pace (demo only); 0 = as fast as the requester reads. */
  wordsPerSecond: number;
  /** The interface WebRTC (ICE) binds to; unset = every interface. */
  bindAddress: string | undefined;
  /** How long the start-up check of `{baseUrl}/models` waits for an answer. */
  probeTimeoutMs: number;
  logLevel: LogLevel;
}

/** A configuration the worker refuses to start with; the CLI prints the message and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const DEFAULT_API_KEY_ENV = 'HANDOFF_API_KEY';
export const DEFAULT_TOKEN_ENV = 'HANDOFF_SIGNALING_TOKEN';
export const DEMO_MODEL = 'demo-1';

type Kind = 'string' | 'ws-url' | 'http-url' | 'count' | 'rate' | 'ip' | 'env-name' | 'provider' | 'level';
interface Setting {
  key: Exclude<keyof WorkerConfig, 'apiKey' | 'token'>;
  flag: string;
  kind: Kind;
  help: string;
  /** Shown in --help and the README. */
  fallback: string;
  /** Which provider the setting applies to; unset = every provider. */
  only?: ProviderKind;
}

/** Every setting and its flag; each also reads `HANDOFF_WORKER_<FLAG>` (flags win). */
export const SETTINGS: readonly Setting[] = [
  {
    key: 'signalingUrl',
    flag: 'signaling',
    kind: 'ws-url',
    fallback: '(required)',
    help: 'signaling server URL, ws:// or wss://',
  },
  { key: 'provider', flag: 'provider', kind: 'provider', fallback: '(required)', help: 'openai or demo' },
  {
    key: 'baseUrl',
    flag: 'base-url',
    kind: 'http-url',
    fallback: '(required for openai)',
    help: 'OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1',
    only: 'openai',
  },
  {
    key: 'model',
    flag: 'model',
    kind: 'string',
    fallback: `(required for openai; ${DEMO_MODEL} for demo)`,
    help: 'the one model this worker offers',
  },
  {
    key: 'apiKeyEnv',
    flag: 'api-key-env',
    kind: 'env-name',
    fallback: DEFAULT_API_KEY_ENV,
    help: 'environment variable holding the API key (unset variable = no key)',
    only: 'openai',
  },
  {
    key: 'tokenEnv',
    flag: 'token-env',
    kind: 'env-name',
    fallback: DEFAULT_TOKEN_ENV,
    help: "environment variable holding the signaling server's access token",
  },
  {
    key: 'quota',
    flag: 'quota',
    kind: 'count',
    fallback: '(unmetered)',
    help: 'requests served per day, announced to peers',
  },
  {
    key: 'maxConcurrent',
    flag: 'max-concurrent',
    kind: 'count',
    fallback: '2',
    help: 'tasks served at once',
  },
  {
    key: 'wordsPerSecond',
    flag: 'words-per-second',
    kind: 'rate',
    fallback: '40',
    help: "the demo provider's pace (0 = as fast as the requester reads)",
    only: 'demo',
  },
  {
    key: 'bindAddress',
    flag: 'bind-address',
    kind: 'ip',
    fallback: '(every interface)',
    help: 'IP address WebRTC binds to',
  },
  {
    key: 'probeTimeoutMs',
    flag: 'probe-timeout-ms',
    kind: 'count',
    fallback: '5000',
    help: 'how long the start-up check of {base-url}/models waits',
    only: 'openai',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    kind: 'level',
    fallback: 'info',
    help: 'debug, info, warn, error or silent',
  },
];

export const envName = (flag: string) => `HANDOFF_WORKER_${flag.toUpperCase().replace(/-/g, '_')}`;

/** Flags that would put a secret on the command line, where every user of the machine can read it (ps). */
const SECRET_FLAGS: Record<string, string> = {
  'api-key':
    'the API key is not accepted on the command line (every user can read it with ps): put it in an environment variable and name that variable with --api-key-env (default HANDOFF_API_KEY)',
  token:
    'the signaling access token is not accepted on the command line (every user can read it with ps): put it in an environment variable and name that variable with --token-env (default HANDOFF_SIGNALING_TOKEN)',
};

const MAX_CONCURRENT = 64;

function describe(setting: Setting): string {
  return `--${setting.flag} (${envName(setting.flag)})`;
}

function parseValue(setting: Setting, raw: string): unknown {
  const fail = (what: string) => new ConfigError(`${describe(setting)} ${what}, got "${raw}"`);
  switch (setting.kind) {
    case 'string':
      if (raw.trim() === '') throw fail('must not be empty');
      return raw;
    case 'ws-url':
    case 'http-url': {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw fail('must be an absolute URL');
      }
      const schemes = setting.kind === 'ws-url' ? ['ws:', 'wss:'] : ['http:', 'https:'];
      if (!schemes.includes(url.protocol)) throw fail(`must start with ${schemes.join('// or ')}//`);
      if (url.username || url.password) {
        throw new ConfigError(
          `${describe(setting)} must not contain a user name or password: put secrets in environment variables (--api-key-env, --token-env)`,
        );
      }
      if (setting.kind === 'ws-url' && url.searchParams.has('token')) {
        throw new ConfigError(
          `${describe(setting)} must not carry ?token=: put the access token in an environment variable named by --token-env (default ${DEFAULT_TOKEN_ENV})`,
        );
      }
      return raw;
    }
    case 'count': {
      if (!/^\d+$/.test(raw) || Number(raw) < 1) throw fail('must be a whole number ≥ 1');
      return Number(raw);
    }
    case 'rate': {
      if (!/^\d+(\.\d+)?$/.test(raw)) throw fail('must be a number ≥ 0');
      return Number(raw);
    }
    case 'ip':
      if (isIP(raw) === 0) throw fail('must be an IP address, e.g. 127.0.0.1 or ::1');
      return raw;
    case 'env-name':
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(raw)) throw fail('must be an environment variable name');
      return raw;
    case 'provider':
      if (!(PROVIDERS as readonly string[]).includes(raw)) throw fail(`must be ${PROVIDERS.join(' or ')}`);
      return raw;
    case 'level':
      if (!(LOG_LEVELS as readonly string[]).includes(raw))
        throw fail(`must be one of ${LOG_LEVELS.join(', ')}`);
      return raw;
  }
}

/** Node's parseArgs errors, in this CLI's words. */
function argvError(error: unknown): ConfigError {
  const { code, message } = error as { code?: string; message: string };
  const option = /'(-[^' ]*)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) {
    return new ConfigError(`unknown flag ${option}`);
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return new ConfigError(`unexpected argument ${/'([^']*)'/.exec(message)?.[1] ?? ''}`.trim());
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    return new ConfigError(`${option} needs a value`);
  }
  return new ConfigError(message);
}

/**
 * Defaults, then `HANDOFF_WORKER_*` environment variables, then command-line flags; validates the
 * result and reads the secrets from the environment variables they name. Throws `ConfigError`.
 */
export function resolveWorkerConfig(argv: string[], env: NodeJS.ProcessEnv): WorkerConfig {
  for (const arg of argv) {
    const flag = /^--([^=]+)/.exec(arg)?.[1];
    const refusal = flag ? SECRET_FLAGS[flag] : undefined;
    if (refusal) throw new ConfigError(refusal);
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(SETTINGS.map((setting) => [setting.flag, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw argvError(error);
  }

  const raw: Partial<Record<Setting['key'], unknown>> = {};
  /** Settings given explicitly (by flag or environment variable). */
  const given = new Set<Setting['key']>();
  for (const setting of SETTINGS) {
    const fromEnv = env[envName(setting.flag)];
    const fromFlag = values[setting.flag];
    const value = typeof fromFlag === 'string' ? fromFlag : fromEnv !== '' ? fromEnv : undefined;
    if (value === undefined) continue;
    raw[setting.key] = parseValue(setting, value);
    given.add(setting.key);
  }

  const missing = (setting: string, why = '') =>
    new ConfigError(`--${setting} (${envName(setting)}) is required${why}`);
  if (raw.signalingUrl === undefined) throw missing('signaling');
  if (raw.provider === undefined) throw missing('provider', ': openai or demo');
  const provider = raw.provider as ProviderKind;
  for (const setting of SETTINGS) {
    if (setting.only && setting.only !== provider && given.has(setting.key)) {
      throw new ConfigError(`${describe(setting)} applies only to --provider ${setting.only}`);
    }
  }
  if (provider === 'openai') {
    if (raw.baseUrl === undefined) throw missing('base-url', ' with --provider openai');
    if (raw.model === undefined) throw missing('model', ' with --provider openai');
  }
  const model = (raw.model as string | undefined) ?? DEMO_MODEL;
  if (model.length > MAX_MODEL_NAME_LENGTH) {
    throw new ConfigError(`--model must be at most ${MAX_MODEL_NAME_LENGTH} characters`);
  }
  const maxConcurrent = (raw.maxConcurrent as number | undefined) ?? 2;
  if (maxConcurrent > MAX_CONCURRENT) {
    throw new ConfigError(`--max-concurrent must be at most ${MAX_CONCURRENT}, got ${maxConcurrent}`);
  }

  const apiKeyEnv = (raw.apiKeyEnv as string | undefined) ?? DEFAULT_API_KEY_ENV;
  const tokenEnv = (raw.tokenEnv as string | undefined) ?? DEFAULT_TOKEN_ENV;
  // A variable named on purpose must be set; the default one may be absent (local servers need no key).
  const secret = (key: 'apiKeyEnv' | 'tokenEnv', name: string, flag: string): string | undefined => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (given.has(key))
      throw new ConfigError(`--${flag} names ${name}, but that environment variable is not set`);
    return undefined;
  };

  return {
    signalingUrl: raw.signalingUrl as string,
    provider,
    baseUrl: raw.baseUrl as string | undefined,
    model,
    apiKeyEnv,
    apiKey: provider === 'openai' ? secret('apiKeyEnv', apiKeyEnv, 'api-key-env') : undefined,
    tokenEnv,
    token: secret('tokenEnv', tokenEnv, 'token-env'),
    quota: raw.quota as number | undefined,
    maxConcurrent,
    wordsPerSecond: (raw.wordsPerSecond as number | undefined) ?? 40,
    bindAddress: raw.bindAddress as string | undefined,
    probeTimeoutMs: (raw.probeTimeoutMs as number | undefined) ?? 5_000,
    logLevel: (raw.logLevel as LogLevel | undefined) ?? 'info',
  };
}

export function usage(): string {
  const rows = SETTINGS.map(
    (s) => `  --${s.flag.padEnd(18)} ${envName(s.flag).padEnd(34)} ${s.help} [${s.fallback}]`,
  );
  return [
    'Usage: handoff-worker --signaling ws://HOST:PORT --provider openai --base-url URL --model NAME [options]',
    '       handoff-worker --signaling ws://HOST:PORT --provider demo [--words-per-second N]',
    '',
    'Joins a Handoff signaling server as a serving peer: browsers (and other peers) delegate prompts',
    'to it over WebRTC, and it answers with an OpenAI-compatible server (Ollama, llama.cpp, vLLM…).',
    '',
    `  ${'flag'.padEnd(20)} ${'environment variable'.padEnd(34)} meaning [default]`,
    ...rows,
    '',
    'Flags win over environment variables. Secrets are read only from environment variables (the',
    'command line is visible to every user): the API key from the variable --api-key-env names, the',
    'signaling access token from the one --token-env names. Neither is ever logged.',
    'Exit codes: 0 after SIGTERM/SIGINT, 1 on a runtime failure, 2 when it refuses to start.',
    '',
  ].join('\n');
}
