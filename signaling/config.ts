import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as v from 'valibot';
import { type IceServer, IceServers, MAX_FRAME_BYTES } from '../protocol/index.ts';

/** Everything the signaling server can be told. `resolveConfig` fills the defaults. */
export interface SignalingConfig {
  host: string;
  port: number;
  /** Origins allowed to open a socket; `['*']` allows any. */
  allowedOrigins: string[];
  /** Clients that send no Origin header (Node peers, workers) may connect. */
  allowNoOrigin: boolean;
  /** Shared-secret access token (`?token=`); unset = no check. */
  authToken: string | undefined;
  /** HMAC secret for signed access tokens (`?token=<exp>.<sig>`); unset = no check. */
  authHmacSecret: string | undefined;
  maxConnectionsPerIp: number;
  /** Per-socket message budget: sustained rate and burst. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Per-socket relay budget in payload bytes: sustained rate and burst. */
  relayBytesPerSecond: number;
  relayBurstBytes: number;
  /** Rejected (rate-limited) messages tolerated within `abuseWindowMs` before closing with 1008. */
  maxRateLimitStrikes: number;
  /** Invalid messages tolerated within `abuseWindowMs` before closing with 1008. */
  maxViolations: number;
  abuseWindowMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  resumeGraceMs: number;
  /** Signs resume tokens. Give the same secret to a restarted server and sessions survive the restart. */
  resumeSecret: string;
  resumeTokenMaxAgeMs: number;
  /** Capability updates within this window go out together, latest per peer. */
  coalesceMs: number;
  congestionHighWaterBytes: number;
  congestionLowWaterBytes: number;
  maxCongestedMs: number;
  stunUrls: string[];
  turnUrls: string[];
  /** coturn `static-auth-secret` (use-auth-secret); when set, clients get time-limited TURN credentials. */
  turnSecret: string | undefined;
  turnTtlSeconds: number;
  /** How long to keep retrying a port held only by the previous run's TIME_WAIT connections. */
  bindRetryMs: number;
  /** After SIGTERM: how long clients get to close before the server drops them. */
  shutdownGraceMs: number;
  /** What clients are told to wait before reconnecting after a shutdown. */
  reconnectAfterMs: number;
  logLevel: LogLevel;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEMO_ORIGINS = ['http://127.0.0.1:8082', 'http://localhost:8082', 'http://[::1]:8082'];

export function defaultConfig(): SignalingConfig {
  return {
    host: '127.0.0.1',
    port: 8083,
    allowedOrigins: DEMO_ORIGINS,
    allowNoOrigin: true,
    authToken: undefined,
    authHmacSecret: undefined,
    maxConnectionsPerIp: 256,
    messagesPerSecond: 100,
    messageBurst: 200,
    relayBytesPerSecond: 512 * 1024,
    relayBurstBytes: 1024 * 1024,
    maxRateLimitStrikes: 50,
    maxViolations: 10,
    abuseWindowMs: 10_000,
    heartbeatIntervalMs: 5_000,
    heartbeatTimeoutMs: 5_000,
    resumeGraceMs: 5_000,
    resumeSecret: randomBytes(32).toString('base64url'),
    resumeTokenMaxAgeMs: 24 * 60 * 60 * 1000,
    coalesceMs: 25,
    congestionHighWaterBytes: 256 * 1024,
    congestionLowWaterBytes: 64 * 1024,
    maxCongestedMs: 15_000,
    stunUrls: [],
    turnUrls: [],
    turnSecret: undefined,
    turnTtlSeconds: 24 * 60 * 60,
    bindRetryMs: 65_000,
    shutdownGraceMs: 2_000,
    reconnectAfterMs: 500,
    logLevel: 'info',
  };
}

type Kind = 'string' | 'int' | 'list' | 'bool' | 'level';
interface Setting {
  key: keyof SignalingConfig;
  flag: string;
  env: string;
  kind: Kind;
  help: string;
}

/** Every setting, its flag and its environment variable. The README's configuration table mirrors this. */
export const SETTINGS: readonly Setting[] = [
  {
    key: 'host',
    flag: 'host',
    env: 'HANDOFF_SIGNALING_HOST',
    kind: 'string',
    help: 'interface to listen on',
  },
  { key: 'port', flag: 'port', env: 'HANDOFF_SIGNALING_PORT', kind: 'int', help: 'port (0 = any free port)' },
  {
    key: 'allowedOrigins',
    flag: 'allowed-origins',
    env: 'HANDOFF_ALLOWED_ORIGINS',
    kind: 'list',
    help: 'comma-separated Origin allowlist, * for any',
  },
  {
    key: 'allowNoOrigin',
    flag: 'allow-no-origin',
    env: 'HANDOFF_ALLOW_NO_ORIGIN',
    kind: 'bool',
    help: 'accept clients without an Origin header',
  },
  {
    key: 'authToken',
    flag: 'auth-token',
    env: 'HANDOFF_AUTH_TOKEN',
    kind: 'string',
    help: 'shared secret clients pass as ?token=',
  },
  {
    key: 'authHmacSecret',
    flag: 'auth-hmac-secret',
    env: 'HANDOFF_AUTH_HMAC_SECRET',
    kind: 'string',
    help: 'secret for signed ?token=<exp>.<sig> tokens',
  },
  {
    key: 'maxConnectionsPerIp',
    flag: 'max-connections-per-ip',
    env: 'HANDOFF_MAX_CONNECTIONS_PER_IP',
    kind: 'int',
    help: 'open sockets per client IP',
  },
  {
    key: 'messagesPerSecond',
    flag: 'rate-limit',
    env: 'HANDOFF_RATE_LIMIT',
    kind: 'int',
    help: 'messages per second per socket',
  },
  {
    key: 'messageBurst',
    flag: 'rate-burst',
    env: 'HANDOFF_RATE_BURST',
    kind: 'int',
    help: 'message burst per socket',
  },
  {
    key: 'relayBytesPerSecond',
    flag: 'relay-bytes-per-second',
    env: 'HANDOFF_RELAY_BYTES_PER_SECOND',
    kind: 'int',
    help: 'relayed payload bytes per second per socket',
  },
  {
    key: 'relayBurstBytes',
    flag: 'relay-burst-bytes',
    env: 'HANDOFF_RELAY_BURST_BYTES',
    kind: 'int',
    help: 'relayed payload burst per socket',
  },
  {
    key: 'maxRateLimitStrikes',
    flag: 'max-rate-limit-strikes',
    env: 'HANDOFF_MAX_RATE_LIMIT_STRIKES',
    kind: 'int',
    help: 'rate-limited messages per window before close 1008',
  },
  {
    key: 'maxViolations',
    flag: 'max-violations',
    env: 'HANDOFF_MAX_VIOLATIONS',
    kind: 'int',
    help: 'invalid messages per window before close 1008',
  },
  {
    key: 'abuseWindowMs',
    flag: 'abuse-window-ms',
    env: 'HANDOFF_ABUSE_WINDOW_MS',
    kind: 'int',
    help: 'window for the two limits above',
  },
  {
    key: 'heartbeatIntervalMs',
    flag: 'heartbeat-ms',
    env: 'HANDOFF_HEARTBEAT_MS',
    kind: 'int',
    help: 'server heartbeat interval',
  },
  {
    key: 'heartbeatTimeoutMs',
    flag: 'heartbeat-timeout-ms',
    env: 'HANDOFF_HEARTBEAT_TIMEOUT_MS',
    kind: 'int',
    help: 'time to answer a heartbeat',
  },
  {
    key: 'resumeGraceMs',
    flag: 'resume-grace-ms',
    env: 'HANDOFF_RESUME_GRACE_MS',
    kind: 'int',
    help: 'how long a dropped session can be resumed',
  },
  {
    key: 'resumeSecret',
    flag: 'resume-secret',
    env: 'HANDOFF_RESUME_SECRET',
    kind: 'string',
    help: 'signs resume tokens (random per process if unset)',
  },
  {
    key: 'coalesceMs',
    flag: 'coalesce-ms',
    env: 'HANDOFF_COALESCE_MS',
    kind: 'int',
    help: 'capability-update coalescing window',
  },
  {
    key: 'stunUrls',
    flag: 'stun-urls',
    env: 'HANDOFF_STUN_URLS',
    kind: 'list',
    help: 'comma-separated stun: URLs handed to clients',
  },
  {
    key: 'turnUrls',
    flag: 'turn-urls',
    env: 'HANDOFF_TURN_URLS',
    kind: 'list',
    help: 'comma-separated turn: URLs handed to clients',
  },
  {
    key: 'turnSecret',
    flag: 'turn-secret',
    env: 'HANDOFF_TURN_SECRET',
    kind: 'string',
    help: 'coturn static-auth-secret for REST credentials',
  },
  {
    key: 'turnTtlSeconds',
    flag: 'turn-ttl',
    env: 'HANDOFF_TURN_TTL',
    kind: 'int',
    help: 'TURN credential lifetime in seconds',
  },
  {
    key: 'bindRetryMs',
    flag: 'bind-retry-ms',
    env: 'HANDOFF_BIND_RETRY_MS',
    kind: 'int',
    help: "how long to retry a port held by the previous run's TIME_WAIT",
  },
  {
    key: 'shutdownGraceMs',
    flag: 'shutdown-grace-ms',
    env: 'HANDOFF_SHUTDOWN_GRACE_MS',
    kind: 'int',
    help: 'time clients get to close on SIGTERM',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'HANDOFF_LOG_LEVEL',
    kind: 'level',
    help: 'debug, info, warn, error or silent',
  },
];

function parseValue(setting: Setting, raw: string): unknown {
  switch (setting.kind) {
    case 'string':
      return raw;
    case 'int': {
      if (!/^\d+$/.test(raw))
        throw new Error(`--${setting.flag} (${setting.env}) must be a whole number, got "${raw}"`);
      return Number(raw);
    }
    case 'list':
      return raw
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean);
    case 'bool': {
      if (!['true', 'false', '1', '0'].includes(raw))
        throw new Error(`--${setting.flag} must be true or false, got "${raw}"`);
      return raw === 'true' || raw === '1';
    }
    case 'level': {
      if (!(LOG_LEVELS as readonly string[]).includes(raw))
        throw new Error(`--${setting.flag} must be one of ${LOG_LEVELS.join(', ')}`);
      return raw;
    }
  }
}

/** Defaults, then environment variables, then command-line flags; validates the result. */
export function resolveConfig(argv: string[] = [], env: NodeJS.ProcessEnv = {}): SignalingConfig {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(SETTINGS.map((setting) => [setting.flag, { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  });
  for (const setting of SETTINGS) {
    const fromEnv = env[setting.env];
    if (fromEnv !== undefined && fromEnv !== '') config[setting.key] = parseValue(setting, fromEnv);
    const fromFlag = values[setting.flag];
    if (typeof fromFlag === 'string') config[setting.key] = parseValue(setting, fromFlag);
  }
  return validateConfig(config as unknown as SignalingConfig);
}

export function validateConfig(config: SignalingConfig): SignalingConfig {
  if (config.port > 65_535) throw new Error(`port ${config.port} is out of range`);
  // uWS drops what passes 4× the high-water mark; the router refuses at 1×. At least two full
  // frames of room keeps every forwarded frame either delivered or refused with an error.
  if (config.congestionHighWaterBytes < 2 * MAX_FRAME_BYTES) {
    throw new Error(`congestion high-water mark must be at least ${2 * MAX_FRAME_BYTES} bytes`);
  }
  if (config.congestionLowWaterBytes >= config.congestionHighWaterBytes) {
    throw new Error('congestion low-water mark must be below the high-water mark');
  }
  for (const key of [
    'messagesPerSecond',
    'messageBurst',
    'relayBytesPerSecond',
    'heartbeatIntervalMs',
  ] as const) {
    if (config[key] <= 0) throw new Error(`${key} must be positive`);
  }
  if (config.turnUrls.length > 0 && !config.turnSecret) throw new Error('--turn-urls needs --turn-secret');
  const stun: IceServer[] = config.stunUrls.length ? [{ urls: config.stunUrls }] : [];
  const check = v.safeParse(IceServers, [
    ...stun,
    ...(config.turnUrls.length ? [{ urls: config.turnUrls }] : []),
  ]);
  if (!check.success) throw new Error(`ICE server URLs: ${check.issues[0]?.message}`);
  return config;
}

export function usage(): string {
  const lines = SETTINGS.map((s) => `  --${s.flag.padEnd(24)} ${s.env.padEnd(32)} ${s.help}`);
  return `Usage: npm run signaling -- [options]\n\n  flag                       environment variable             meaning\n${lines.join('\n')}\n`;
}
