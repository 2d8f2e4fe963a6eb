import { describe, expect, it } from 'vitest';
import {
  DEMO_ORIGINS,
  defaultConfig,
  resolveConfig,
  SETTINGS,
  type SignalingConfig,
  usage,
  validateConfig,
} from '../../signaling/config.ts';

describe('resolveConfig', () => {
  it('with no flags and no environment gives the defaults (with a fresh random resume secret)', () => {
    const { resumeSecret, ...config } = resolveConfig([], {});
    const { resumeSecret: otherSecret, ...defaults } = defaultConfig();
    expect(config).toEqual(defaults);
    expect(config.allowedOrigins).toEqual(DEMO_ORIGINS);
    expect(resumeSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(resumeSecret).not.toBe(otherSecret);
  });

  it('takes environment variables over defaults, and flags over both', () => {
    const env = { HANDOFF_SIGNALING_PORT: '9000', HANDOFF_HEARTBEAT_MS: '7000', HANDOFF_LOG_LEVEL: 'warn' };
    const config = resolveConfig(['--port', '9100', '--log-level=debug'], env);
    expect(config.port).toBe(9100);
    expect(config.logLevel).toBe('debug');
    expect(config.heartbeatIntervalMs).toBe(7000);
    expect(config.heartbeatTimeoutMs).toBe(defaultConfig().heartbeatTimeoutMs);
  });

  it('ignores environment variables set to the empty string', () => {
    expect(resolveConfig([], { HANDOFF_SIGNALING_PORT: '' }).port).toBe(defaultConfig().port);
  });

  it('reads lists comma-separated, trimmed, without empty items', () => {
    const config = resolveConfig(['--allowed-origins', ' https://a.example , ,https://b.example,'], {
      HANDOFF_STUN_URLS: 'stun:one.example:3478,stun:two.example:3478',
    });
    expect(config.allowedOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(config.stunUrls).toEqual(['stun:one.example:3478', 'stun:two.example:3478']);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('reads the boolean %j as %s', (raw, expected) => {
    expect(resolveConfig(['--allow-no-origin', raw], {}).allowNoOrigin).toBe(expected);
  });

  it('maps every setting to its own key, flag and environment variable', () => {
    const keys = SETTINGS.map((s) => s.key);
    const flags = SETTINGS.map((s) => s.flag);
    const envs = SETTINGS.map((s) => s.env);
    for (const names of [keys, flags, envs]) expect(new Set(names).size).toBe(SETTINGS.length);
    for (const key of keys) expect(key in defaultConfig()).toBe(true);
  });

  it('sets TURN from a secret and URLs together', () => {
    const config = resolveConfig(['--turn-urls', 'turn:turn.example:3478', '--turn-secret', 's3cret'], {
      HANDOFF_TURN_TTL: '600',
    });
    expect(config).toMatchObject({
      turnUrls: ['turn:turn.example:3478'],
      turnSecret: 's3cret',
      turnTtlSeconds: 600,
    });
  });
});

describe('bad configuration is refused with a message that says what to fix', () => {
  it.each([
    [['--port', 'eighty'], {}, '--port (HANDOFF_SIGNALING_PORT) must be a whole number, got "eighty"'],
    [[], { HANDOFF_RATE_LIMIT: '-5' }, '--rate-limit (HANDOFF_RATE_LIMIT) must be a whole number, got "-5"'],
    [
      [],
      { HANDOFF_COALESCE_MS: '2.5' },
      '--coalesce-ms (HANDOFF_COALESCE_MS) must be a whole number, got "2.5"',
    ],
    [['--allow-no-origin', 'yes'], {}, '--allow-no-origin must be true or false, got "yes"'],
    [['--log-level', 'verbose'], {}, '--log-level must be one of debug, info, warn, error, silent'],
    [['--port', '70000'], {}, 'port 70000 is out of range'],
    [['--rate-limit', '0'], {}, 'messagesPerSecond must be positive'],
    [['--heartbeat-ms', '0'], {}, 'heartbeatIntervalMs must be positive'],
    [['--turn-urls', 'turn:turn.example:3478'], {}, '--turn-urls needs --turn-secret'],
    [[], { HANDOFF_TURN_URLS: 'turn:turn.example:3478' }, '--turn-urls needs --turn-secret'],
    [['--stun-urls', 'http://stun.example'], {}, 'ICE server URLs: must be a stun: or turn: URL'],
  ] as const)('%j with %j: %s', (argv, env, message) => {
    expect(() => resolveConfig([...argv], env)).toThrow(message);
  });

  it('a flag that does not exist is refused, by name', () => {
    expect(() => resolveConfig(['--heartbeat', '5000'], {})).toThrow(/--heartbeat/);
  });

  it('a positional argument is refused', () => {
    expect(() => resolveConfig(['8083'], {})).toThrow(/8083/);
  });

  it('a congestion low-water mark at or above the high-water mark is refused', () => {
    const config: SignalingConfig = {
      ...defaultConfig(),
      congestionLowWaterBytes: 200_000,
      congestionHighWaterBytes: 200_000,
    };
    expect(() => validateConfig(config)).toThrow(
      'congestion low-water mark must be below the high-water mark',
    );
  });

  it('a high-water mark below two full frames is refused (uWS would drop a frame silently past 4×)', () => {
    const config: SignalingConfig = {
      ...defaultConfig(),
      congestionLowWaterBytes: 1_000,
      congestionHighWaterBytes: 100_000,
    };
    expect(() => validateConfig(config)).toThrow('congestion high-water mark must be at least 131072 bytes');
    expect(() => validateConfig({ ...config, congestionHighWaterBytes: 131_072 })).not.toThrow();
  });

  it('more ICE servers or URLs than a client accepts are refused', () => {
    const urls = Array.from({ length: 9 }, (_, i) => `stun:s${i}.example:3478`);
    expect(() => validateConfig({ ...defaultConfig(), stunUrls: urls })).toThrow(/^ICE server URLs: /);
  });
});

describe('usage', () => {
  it('lists every flag with its environment variable', () => {
    const text = usage();
    for (const setting of SETTINGS)
      expect(text).toMatch(new RegExp(`--${setting.flag}\\s+${setting.env}\\s`));
  });
});
